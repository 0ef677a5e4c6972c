//! The three tables: violations, notifiers, processes (mm).

use ratatui::{
    Frame,
    layout::{Constraint, Rect},
    style::{Color, Modifier, Style},
    text::Line,
    widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState},
};

use super::format::{age, count, duration};
use crate::{
    checker::Severity,
    dashboard::{
        rows::{self, Sort},
        snapshot::Snapshot,
        ui::{Pane, Ui},
    },
};

fn header_row(columns: &[&str], sort: Sort, right_aligned_from: usize) -> Row<'static> {
    let cells = columns.iter().enumerate().map(|(i, name)| {
        let marker = if i == sort.column { if sort.descending { "▼" } else { "▲" } } else { "" };
        let text = format!("{name}{marker}");
        let line = if i >= right_aligned_from { Line::from(text).right_aligned() } else { Line::from(text) };
        Cell::from(line)
    });
    Row::new(cells).style(Style::default().add_modifier(Modifier::BOLD | Modifier::UNDERLINED))
}

fn right(text: String) -> Cell<'static> {
    Cell::from(Line::from(text).right_aligned())
}

/// Draws `table` with the focused pane's selection, or `empty` when there are no rows.
fn draw_table(frame: &mut Frame, area: Rect, block: Block<'_>, table: Table<'_>, rows: usize, ui: &Ui, empty: &str) {
    if rows == 0 {
        let text = if ui.filter.is_empty() {
            empty.to_owned()
        } else {
            format!("nothing matches the filter {:?}", ui.filter.text())
        };
        frame.render_widget(
            Paragraph::new(format!(" {text}")).style(Style::default().fg(Color::DarkGray)).block(block),
            area,
        );
        return;
    }
    let mut state = TableState::default().with_selected(Some(ui.selected(ui.pane, rows)));
    let table =
        table.block(block).row_highlight_style(Style::default().add_modifier(Modifier::REVERSED)).highlight_symbol("›");
    frame.render_stateful_widget(table, area, &mut state);
}

pub(super) fn violations(frame: &mut Frame, area: Rect, block: Block<'_>, s: &Snapshot, ui: &Ui) {
    let sort = ui.sort(Pane::Violations);
    let list = rows::violations(s, &ui.filter, sort);
    let table_rows = list.iter().map(|e| {
        let v = &e.violation;
        let severity_style = match v.severity {
            Severity::Error => Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
            Severity::Warning => Style::default().fg(Color::Yellow),
        };
        Row::new(vec![
            Cell::from(age(s.now_ts.saturating_sub(v.ts))),
            Cell::from(v.severity.to_string()).style(severity_style),
            Cell::from(v.rule.as_str()),
            Cell::from(s.process_of(v).label()),
            Cell::from(v.callback.as_ref().map_or_else(|| "-".to_owned(), |c| c.to_string())),
        ])
    });
    let widths = [
        Constraint::Length(6),
        Constraint::Length(9),
        Constraint::Length(23),
        Constraint::Length(16),
        Constraint::Min(10),
    ];
    let table = Table::new(table_rows, widths).header(header_row(&rows::VIOLATION_COLUMNS, sort, usize::MAX));
    let empty = if s.pairing {
        "no violations so far".to_owned()
    } else {
        format!("no violations so far ({} rules are not checked in this mode)", s.not_checked)
    };
    draw_table(frame, area, block, table, list.len(), ui, &empty);
}

pub(super) fn notifiers(frame: &mut Frame, area: Rect, block: Block<'_>, s: &Snapshot, ui: &Ui) {
    let sort = ui.sort(Pane::Notifiers);
    let list = rows::notifiers(s, &ui.filter, sort);
    let table_rows = list.iter().map(|n| {
        let failed = if n.failures > 0 { Style::default().fg(Color::Red) } else { Style::default() };
        Row::new(vec![
            Cell::from(n.callback.to_string()),
            Cell::from(s.owner_of(&n.callback)),
            right(count(n.starts)),
            right(count(n.ends)),
            right(count(n.failures)).style(failed),
            right(count(n.open_now)),
            right(if n.durations.count > 0 { duration(n.durations.p50_ns) } else { "-".into() }),
            right(if n.durations.count > 0 { duration(n.durations.p99_ns) } else { "-".into() }),
        ])
    });
    let widths = [
        Constraint::Min(20),
        Constraint::Max(16),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Length(5),
        Constraint::Length(6),
        Constraint::Length(6),
    ];
    let table = Table::new(table_rows, widths).header(header_row(&rows::NOTIFIER_COLUMNS, sort, 2)).column_spacing(1);
    // Narrow terminals cut the callback column: the selected row is also spelled out in full.
    let block = match list.get(ui.selected(Pane::Notifiers, list.len())) {
        Some(n) => block.title_bottom(format!(" › {} · {} ", n.callback, s.owner_of(&n.callback))),
        None => block,
    };
    draw_table(frame, area, block, table, list.len(), ui, "no subscriber callback seen yet");
}

pub(super) fn processes(frame: &mut Frame, area: Rect, block: Block<'_>, s: &Snapshot, ui: &Ui) {
    let sort = ui.sort(Pane::Processes);
    let list = rows::processes(s, &ui.filter, sort);
    let table_rows = list.iter().map(|m| {
        Row::new(vec![
            Cell::from(m.pid.map_or_else(|| "?".to_owned(), |p| p.to_string())),
            Cell::from(m.comm.as_ref().map_or_else(|| "?".to_owned(), |c| c.to_string())),
            Cell::from(m.mm.map_or_else(|| "(other mms)".to_owned(), |a| a.to_string())),
            right(count(m.starts)),
            right(count(m.ends)),
            right(count(m.failures)),
            right(count(m.open_now)),
            right(count(m.subscriber_calls)),
        ])
    });
    let widths = [
        Constraint::Length(6),
        Constraint::Length(14),
        Constraint::Length(18),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Length(4),
        Constraint::Min(6),
    ];
    let table = Table::new(table_rows, widths).header(header_row(&rows::PROCESS_COLUMNS, sort, 3));
    draw_table(frame, area, block, table, list.len(), ui, "no process seen yet");
}

/// The block every pane is drawn in.
pub(super) fn pane_block(title: String) -> Block<'static> {
    Block::default().borders(Borders::ALL).title(title)
}
