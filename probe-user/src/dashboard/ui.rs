//! What the person at the keyboard has chosen: pane, selection, sort, filter, overlays,
//! pause. Keys map to changes here or to [`Command`]s for the data source. Pure, so every key
//! is testable without a terminal.

use std::sync::Arc;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::{
    rows::{self, Filter, NOTIFIER_COLUMNS, PROCESS_COLUMNS, Sort, VIOLATION_COLUMNS},
    snapshot::{Inventory, Snapshot, ViolationEntry},
};

probe_common::named_enum! {
    /// A pane of the dashboard, by its title.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Pane {
        Violations => "Violations",
        Notifiers => "Notifiers",
        Processes => "Processes",
        Events => "Events",
        Inventory => "Inventory",
    }
}

impl Pane {
    fn index(self) -> usize {
        self as usize
    }

    /// Column names `s` cycles through; empty for panes without a table.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Pane::Violations => &VIOLATION_COLUMNS,
            Pane::Notifiers => &NOTIFIER_COLUMNS,
            Pane::Processes => &PROCESS_COLUMNS,
            Pane::Events | Pane::Inventory => &[],
        }
    }
}

/// What a key asks of the data source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Quit,
    /// Live: freeze the display; replay: stop feeding events.
    TogglePause,
    Reset,
    /// Replay: one event forward.
    Step,
    Faster,
    Slower,
}

#[derive(Clone, Debug, Default)]
pub enum Overlay {
    #[default]
    None,
    Help,
    Detail {
        entry: Arc<ViolationEntry>,
        scroll: u16,
    },
}

#[derive(Clone, Debug)]
pub struct Ui {
    pub pane: Pane,
    selected: [usize; Pane::ALL.len()],
    sort: [Sort; Pane::ALL.len()],
    pub filter: Filter,
    /// The filter being typed after `/`.
    pub input: Option<String>,
    pub overlay: Overlay,
    /// Live mode: the display is frozen (events are still ingested).
    pub frozen: bool,
}

impl Default for Ui {
    fn default() -> Self {
        let sort = |column, descending| Sort { column, descending };
        Ui {
            pane: Pane::Violations,
            selected: [0; Pane::ALL.len()],
            // Newest violations, busiest callbacks and processes first.
            sort: [sort(0, false), sort(2, true), sort(7, true), sort(0, false), sort(0, false)],
            filter: Filter::default(),
            input: None,
            overlay: Overlay::None,
            frozen: false,
        }
    }
}

/// Rows a pane lists after filtering (what j/k move over).
pub fn row_count(pane: Pane, s: &Snapshot, ui: &Ui) -> usize {
    match pane {
        Pane::Violations => rows::violations(s, &ui.filter, ui.sort(pane)).len(),
        Pane::Notifiers => rows::notifiers(s, &ui.filter, ui.sort(pane)).len(),
        Pane::Processes => rows::processes(s, &ui.filter, ui.sort(pane)).len(),
        Pane::Events => s.open_ranges.len(),
        Pane::Inventory => match &s.inventory {
            Inventory::Read { mms, .. } => rows::inventory(mms, &ui.filter).len(),
            _ => 0,
        },
    }
}

impl Ui {
    pub fn sort(&self, pane: Pane) -> Sort {
        self.sort.get(pane.index()).copied().unwrap_or(Sort { column: 0, descending: false })
    }

    /// The selected row of `pane`, kept within `rows`.
    pub fn selected(&self, pane: Pane, rows: usize) -> usize {
        self.selected.get(pane.index()).copied().unwrap_or(0).min(rows.saturating_sub(1))
    }

    fn select(&mut self, pane: Pane, row: usize) {
        if let Some(s) = self.selected.get_mut(pane.index()) {
            *s = row;
        }
    }

    /// Applies one key; `s` is what is on screen. Returns what the data source must do.
    pub fn handle_key(&mut self, key: KeyEvent, s: &Snapshot) -> Option<Command> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(key.code, KeyCode::Char('c')) {
            return Some(Command::Quit);
        }
        if let Some(text) = self.input.as_mut() {
            match key.code {
                KeyCode::Enter => {
                    self.filter = Filter::new(text);
                    self.input = None;
                    self.selected = [0; Pane::ALL.len()];
                }
                KeyCode::Esc => self.input = None,
                KeyCode::Backspace => {
                    text.pop();
                }
                KeyCode::Char(c) if !ctrl => text.push(c),
                _ => {}
            }
            return None;
        }
        match &mut self.overlay {
            Overlay::Help => {
                if matches!(key.code, KeyCode::Char('q')) {
                    return Some(Command::Quit);
                }
                self.overlay = Overlay::None;
                return None;
            }
            Overlay::Detail { scroll, .. } => {
                match key.code {
                    KeyCode::Char('q') => return Some(Command::Quit),
                    KeyCode::Esc | KeyCode::Enter | KeyCode::Backspace => self.overlay = Overlay::None,
                    KeyCode::Char('j') | KeyCode::Down => *scroll = scroll.saturating_add(1),
                    KeyCode::Char('k') | KeyCode::Up => *scroll = scroll.saturating_sub(1),
                    KeyCode::PageDown => *scroll = scroll.saturating_add(10),
                    KeyCode::PageUp => *scroll = scroll.saturating_sub(10),
                    _ => {}
                }
                return None;
            }
            Overlay::None => {}
        }
        let rows = row_count(self.pane, s, self);
        let current = self.selected(self.pane, rows);
        match key.code {
            KeyCode::Char('q') => return Some(Command::Quit),
            // Esc first drops an active filter, as it closes everything else.
            KeyCode::Esc if !self.filter.is_empty() => {
                self.filter = Filter::default();
                self.selected = [0; Pane::ALL.len()];
            }
            KeyCode::Esc => return Some(Command::Quit),
            KeyCode::Char('?') => self.overlay = Overlay::Help,
            KeyCode::Tab => self.pane = Pane::ALL[(self.pane.index() + 1) % Pane::ALL.len()],
            KeyCode::BackTab => self.pane = Pane::ALL[(self.pane.index() + Pane::ALL.len() - 1) % Pane::ALL.len()],
            KeyCode::Char(c @ '1'..='5') => {
                if let Some(p) = Pane::ALL.get(c as usize - '1' as usize) {
                    self.pane = *p;
                }
            }
            KeyCode::Char('j') | KeyCode::Down => self.select(self.pane, (current + 1).min(rows.saturating_sub(1))),
            KeyCode::Char('k') | KeyCode::Up => self.select(self.pane, current.saturating_sub(1)),
            KeyCode::PageDown => self.select(self.pane, (current + 10).min(rows.saturating_sub(1))),
            KeyCode::PageUp => self.select(self.pane, current.saturating_sub(10)),
            KeyCode::Char('g') | KeyCode::Home => self.select(self.pane, 0),
            KeyCode::Char('G') | KeyCode::End => self.select(self.pane, rows.saturating_sub(1)),
            KeyCode::Enter if self.pane == Pane::Violations => {
                let list = rows::violations(s, &self.filter, self.sort(self.pane));
                if let Some(entry) = list.get(current) {
                    self.overlay = Overlay::Detail { entry: Arc::clone(entry), scroll: 0 };
                }
            }
            KeyCode::Char('s') | KeyCode::Char('S') => {
                let columns = self.pane.columns().len();
                if let Some(sort) = self.sort.get_mut(self.pane.index())
                    && columns > 0
                {
                    if key.code == KeyCode::Char('S') {
                        sort.descending = !sort.descending;
                    } else {
                        sort.column = (sort.column + 1) % columns;
                    }
                }
            }
            KeyCode::Char('/') => self.input = Some(self.filter.text().to_owned()),
            KeyCode::Char(' ') => return Some(Command::TogglePause),
            KeyCode::Char('r') => return Some(Command::Reset),
            KeyCode::Char('n') | KeyCode::Char('.') => return Some(Command::Step),
            KeyCode::Char('+') | KeyCode::Char('=') | KeyCode::Char(']') => return Some(Command::Faster),
            KeyCode::Char('-') | KeyCode::Char('[') => return Some(Command::Slower),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(ui: &mut Ui, code: KeyCode, modifiers: KeyModifiers) -> Option<Command> {
        ui.handle_key(KeyEvent::new(code, modifiers), &Snapshot::default())
    }

    fn key(ui: &mut Ui, code: KeyCode) -> Option<Command> {
        press(ui, code, KeyModifiers::NONE)
    }

    #[test]
    fn quit_keys_quit_but_not_while_typing_a_filter() {
        let mut ui = Ui::default();
        assert_eq!(key(&mut ui, KeyCode::Char('q')), Some(Command::Quit));
        assert_eq!(key(&mut ui, KeyCode::Esc), Some(Command::Quit));
        assert_eq!(press(&mut ui, KeyCode::Char('c'), KeyModifiers::CONTROL), Some(Command::Quit));
        assert_eq!(key(&mut ui, KeyCode::Char('/')), None);
        assert_eq!(key(&mut ui, KeyCode::Char('q')), None, "typed into the filter");
        assert_eq!(ui.input.as_deref(), Some("q"));
        assert_eq!(
            press(&mut ui, KeyCode::Char('c'), KeyModifiers::CONTROL),
            Some(Command::Quit),
            "Ctrl-C always quits"
        );
    }

    #[test]
    fn tab_cycles_panes_both_ways_and_digits_jump() {
        let mut ui = Ui::default();
        key(&mut ui, KeyCode::BackTab);
        assert_eq!(ui.pane, Pane::Inventory);
        key(&mut ui, KeyCode::Tab);
        assert_eq!(ui.pane, Pane::Violations);
        key(&mut ui, KeyCode::Char('3'));
        assert_eq!(ui.pane, Pane::Processes);
    }

    #[test]
    fn time_and_counter_keys_become_commands() {
        let mut ui = Ui::default();
        assert_eq!(key(&mut ui, KeyCode::Char(' ')), Some(Command::TogglePause));
        assert_eq!(key(&mut ui, KeyCode::Char('r')), Some(Command::Reset));
        assert_eq!(key(&mut ui, KeyCode::Char('n')), Some(Command::Step));
        assert_eq!(key(&mut ui, KeyCode::Char('+')), Some(Command::Faster));
        assert_eq!(key(&mut ui, KeyCode::Char('-')), Some(Command::Slower));
    }

    #[test]
    fn sort_cycles_columns_and_reverses() {
        let mut ui = Ui::default();
        key(&mut ui, KeyCode::Char('2'));
        let before = ui.sort(Pane::Notifiers);
        key(&mut ui, KeyCode::Char('s'));
        assert_eq!(ui.sort(Pane::Notifiers).column, (before.column + 1) % NOTIFIER_COLUMNS.len());
        key(&mut ui, KeyCode::Char('S'));
        assert_eq!(ui.sort(Pane::Notifiers).descending, !before.descending);
        key(&mut ui, KeyCode::Char('4'));
        key(&mut ui, KeyCode::Char('s'));
        assert_eq!(ui.sort(Pane::Events), Ui::default().sort(Pane::Events), "nothing to sort there");
    }
}
