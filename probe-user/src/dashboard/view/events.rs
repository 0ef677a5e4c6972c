//! The events pane: breakdown by type, sparklines of the event rate and of open ranges, and
//! the ranges open right now.

use ratatui::{
    Frame,
    layout::{Constraint, Layout, Rect},
    style::{Color, Modifier, Style},
    text::Line,
    widgets::{Block, Borders, Cell, Paragraph, Row, Sparkline, Table, TableState},
};

use super::format::{age, count};
use crate::dashboard::{
    snapshot::Snapshot,
    ui::{Pane, Ui},
};

pub(super) fn draw(frame: &mut Frame, area: Rect, block: Block<'_>, s: &Snapshot, ui: &Ui) {
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [left, right] = Layout::horizontal([Constraint::Length(37), Constraint::Min(20)]).areas(inner);
    breakdown(frame, left, s);
    let [rate, open, ranges] =
        Layout::vertical([Constraint::Length(4), Constraint::Length(4), Constraint::Min(3)]).areas(right);
    sparkline(frame, rate, &format!("events/s: {}", count(s.events_per_sec)), &s.rate_history, Color::Cyan);
    sparkline(frame, open, &format!("open ranges: {} now", count(s.open_now)), &s.open_history, Color::Magenta);
    open_ranges(frame, ranges, s, ui);
}

fn breakdown(frame: &mut Frame, area: Rect, s: &Snapshot) {
    let total: u64 = s.stats.by_type.values().sum();
    let rows = s.stats.by_type.iter().map(|(kind, n)| {
        let share = if total == 0 { 0.0 } else { *n as f64 * 100.0 / total as f64 };
        Row::new(vec![
            Cell::from(*kind),
            Cell::from(Line::from(count(*n)).right_aligned()),
            Cell::from(Line::from(format!("{share:.0}%")).right_aligned()),
        ])
    });
    let header = Row::new(["type", "events", "share"]).style(Style::default().add_modifier(Modifier::BOLD));
    let widths = [Constraint::Length(19), Constraint::Length(10), Constraint::Length(5)];
    let block = Block::default().borders(Borders::RIGHT).title("by type");
    if total == 0 {
        frame.render_widget(Paragraph::new(" no events yet").block(block), area);
    } else {
        frame.render_widget(Table::new(rows, widths).header(header).block(block), area);
    }
}

fn sparkline(frame: &mut Frame, area: Rect, what: &str, history: &[u64], color: Color) {
    // The newest seconds that fit, so the right edge is now.
    let width = usize::from(area.width.saturating_sub(1));
    let shown = history.get(history.len().saturating_sub(width)..).unwrap_or(history);
    let max = shown.iter().copied().max().unwrap_or(0);
    let title = format!(" {what} · max {} over {}s", count(max), shown.len());
    let widget = Sparkline::default()
        .block(Block::default().borders(Borders::BOTTOM).title(title))
        .data(shown)
        .style(Style::default().fg(color));
    frame.render_widget(widget, area);
}

fn open_ranges(frame: &mut Frame, area: Rect, s: &Snapshot, ui: &Ui) {
    let title = format!(" open ranges ({}), oldest first", s.open_ranges.len());
    let block = Block::default().title(title);
    if s.open_ranges.is_empty() {
        let text = if s.pairing { " none open" } else { " not tracked: no start/end probes" };
        frame.render_widget(Paragraph::new(text).style(Style::default().fg(Color::DarkGray)).block(block), area);
        return;
    }
    let rows = s.open_ranges.iter().map(|r| {
        let process = match r.pid {
            Some(_) => crate::dashboard::snapshot::Process { pid: r.pid, comm: r.comm.clone() }.label(),
            None => format!("tid {}", r.tid),
        };
        let span = match (r.start, r.end) {
            (Some(a), Some(b)) => format!("{a} +{}", size(b.0.saturating_sub(a.0))),
            _ => format!("struct {}", r.range),
        };
        let subscribers: Vec<&str> = r.open_subscribers.iter().map(|c| c.function()).collect();
        Row::new(vec![
            Cell::from(age(r.age_ns(s.now_ts))),
            Cell::from(process),
            Cell::from(span),
            Cell::from(r.event.map_or_else(|| "-".to_owned(), |e| e.to_string())),
            Cell::from(subscribers.join(" ")),
        ])
    });
    let header = Row::new(["age", "process", "range", "event", "owed ends"])
        .style(Style::default().add_modifier(Modifier::BOLD));
    let widths = [
        Constraint::Length(5),
        Constraint::Length(14),
        Constraint::Length(22),
        Constraint::Length(8),
        Constraint::Min(10),
    ];
    let mut state = TableState::default().with_selected(Some(ui.selected(Pane::Events, s.open_ranges.len())));
    let table = Table::new(rows, widths)
        .header(header)
        .block(block)
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    frame.render_stateful_widget(table, area, &mut state);
}

/// A range length: `4KiB`, `2MiB`, `1.5GiB`, or bytes when not a whole KiB.
fn size(bytes: u64) -> String {
    const KIB: u64 = 1024;
    match bytes {
        b if b % KIB != 0 || b < KIB => format!("{b}B"),
        b if b < KIB * KIB => format!("{}KiB", b / KIB),
        b if b < KIB * KIB * KIB => trimmed(b as f64 / (KIB * KIB) as f64, "MiB"),
        b => trimmed(b as f64 / (KIB * KIB * KIB) as f64, "GiB"),
    }
}

fn trimmed(value: f64, unit: &str) -> String {
    if value.fract() == 0.0 { format!("{value:.0}{unit}") } else { format!("{value:.1}{unit}") }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_like_page_counts() {
        assert_eq!(super::size(4096), "4KiB");
        assert_eq!(super::size(2 << 20), "2MiB");
        assert_eq!(super::size(3 << 29), "1.5GiB");
        assert_eq!(super::size(100), "100B");
    }
}
