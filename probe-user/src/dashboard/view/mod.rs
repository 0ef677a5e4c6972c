//! Drawing: one function from (what the person chose, the frame's snapshot) to the screen.
//! Holds no state, so render tests draw any snapshot into a `TestBackend`.

mod events;
pub mod format;
mod header;
mod inventory;
pub mod overlay;
mod tables;

use ratatui::{
    Frame,
    layout::{Constraint, Layout, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::Paragraph,
};

use super::{
    snapshot::Snapshot,
    ui::{Overlay, Pane, Ui, row_count},
};

pub fn draw(frame: &mut Frame, ui: &Ui, s: &Snapshot) {
    let area = frame.area();
    let header = header::lines(s, ui, area.width);
    let [top, tabs_area, body, footer] = Layout::vertical([
        Constraint::Length(header.len() as u16),
        Constraint::Length(1),
        Constraint::Min(5),
        Constraint::Length(1),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(header), top);
    frame.render_widget(tabs(ui, s), tabs_area);
    pane(frame, body, ui, s);
    frame.render_widget(footer_line(ui, s), footer);
    match &ui.overlay {
        Overlay::None => {}
        Overlay::Help => overlay::help(frame, area),
        Overlay::Detail { entry, scroll } => overlay::detail(frame, area, entry, *scroll, s),
    }
}

fn tabs(ui: &Ui, s: &Snapshot) -> Line<'static> {
    let mut spans = Vec::new();
    for (i, p) in Pane::ALL.into_iter().enumerate() {
        let label = match p {
            Pane::Violations => format!(" {} {} ({}) ", i + 1, p.as_str(), s.violations.len()),
            _ => format!(" {} {} ", i + 1, p.as_str()),
        };
        let style = if p == ui.pane {
            Style::default().fg(Color::Black).bg(Color::Cyan).add_modifier(Modifier::BOLD)
        } else {
            Style::default()
        };
        spans.push(Span::styled(label, style));
        spans.push(Span::raw("│"));
    }
    Line::from(spans)
}

fn pane(frame: &mut Frame, area: Rect, ui: &Ui, s: &Snapshot) {
    let mut title = format!(" {} ", ui.pane.as_str());
    if let Some(column) = ui.pane.columns().get(ui.sort(ui.pane).column) {
        title.push_str(&format!("· sorted by {column} "));
    }
    let rows = row_count(ui.pane, s, ui);
    if rows > 0 {
        title.push_str(&format!("· {}/{rows} ", ui.selected(ui.pane, rows) + 1));
    }
    if !ui.filter.is_empty() {
        title.push_str(&format!("· filter {:?} ", ui.filter.text()));
    }
    let block = tables::pane_block(title);
    match ui.pane {
        Pane::Violations => tables::violations(frame, area, block, s, ui),
        Pane::Notifiers => tables::notifiers(frame, area, block, s, ui),
        Pane::Processes => tables::processes(frame, area, block, s, ui),
        Pane::Events => events::draw(frame, area, block, s, ui),
        Pane::Inventory => inventory::draw(frame, area, block, s, ui),
    }
}

fn footer_line(ui: &Ui, s: &Snapshot) -> Line<'static> {
    if let Some(text) = &ui.input {
        return Line::from(vec![
            Span::styled(" filter: ", Style::default().add_modifier(Modifier::BOLD)),
            Span::raw(format!("{text}▏")),
            Span::styled(
                "  (pid, comm, callback or rule; Enter apply, Esc cancel)",
                Style::default().fg(Color::DarkGray),
            ),
        ]);
    }
    let mut spans = Vec::new();
    if let Some(error) = &s.error {
        spans.push(Span::styled(format!(" {error} "), Style::default().fg(Color::White).bg(Color::Red)));
    } else if let Some(status) = &s.status {
        spans.push(Span::styled(format!(" {status} "), Style::default().fg(Color::Black).bg(Color::Gray)));
    }
    spans.push(Span::styled(
        " ? help  q quit  Tab pane  j/k move  Enter detail  s sort  / filter  Space pause  r reset",
        Style::default().fg(Color::DarkGray),
    ));
    Line::from(spans)
}
