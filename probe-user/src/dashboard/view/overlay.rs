//! Overlays drawn over the panes: the key help and a violation's detail.

use ratatui::{
    Frame,
    layout::{Constraint, Flex, Layout, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Borders, Clear, Paragraph, Wrap},
};

use super::format::age;
use crate::dashboard::snapshot::{Inventory, Snapshot, ViolationEntry};

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let [row] = Layout::vertical([Constraint::Length(height.min(area.height))]).flex(Flex::Center).areas(area);
    let [cell] = Layout::horizontal([Constraint::Length(width.min(area.width))]).flex(Flex::Center).areas(row);
    cell
}

/// Each line fits an 80-column terminal next to its key column.
pub const KEYS: [(&str, &str); 13] = [
    ("q  Esc  Ctrl-C", "quit (Esc closes a dialog or clears the filter first)"),
    ("?", "this help"),
    ("Tab  Shift-Tab  1-5", "next / previous pane, or pane by number"),
    ("j k  ↓ ↑  PgDn PgUp", "move the selection (scrolls a detail)"),
    ("g G  Home End", "first / last row"),
    ("Enter", "violation detail: explanation, bug, events, stack"),
    ("s  S", "sort by the next column / reverse the order"),
    ("/", "filter: a pid, or part of comm, callback or rule"),
    ("Space", "pause (live: display freezes, events still counted)"),
    ("r", "reset counters, rates, violation list (not losses)"),
    ("n  .", "replay: one event forward"),
    ("+  ]", "replay: twice as fast"),
    ("-  [", "replay: half as fast"),
];

pub fn help(frame: &mut Frame, area: Rect) {
    let lines: Vec<Line> = KEYS
        .iter()
        .map(|(keys, what)| {
            Line::from(vec![
                Span::styled(format!(" {keys:<20} "), Style::default().add_modifier(Modifier::BOLD)),
                Span::raw(*what),
            ])
        })
        .collect();
    let rect = centered(area, 78, lines.len() as u16 + 2);
    frame.render_widget(Clear, rect);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" keys (any key closes) ")
        .title_bottom(" logs go to the log file, never to this screen ");
    frame.render_widget(Paragraph::new(lines).block(block).wrap(Wrap { trim: false }), rect);
}

/// Every line of a violation's detail, in reading order.
/// For a violation about an mm: the stuck tasks the last inventory walk tied to that mm, or,
/// for an interval-tree leak, every task stuck in an interval-tree wait (the walk can tie a
/// task to an mm only while that mm still has a task of its own).
fn stuck_lines(v: &crate::checker::Violation, s: &Snapshot) -> Option<Vec<Line<'static>>> {
    let Inventory::Read { stuck, .. } = &s.inventory else { return None };
    let mm = v.mm?;
    let leak = v.rule == crate::checker::RuleId::ItreeLeak;
    let lines: Vec<Line<'static>> = stuck
        .iter()
        .filter(|t| t.mm == Some(mm) || (leak && t.mm.is_none() && t.wait.starts_with("mmu_interval_")))
        .map(|t| Line::styled(format!("  {}", t.describe()), Style::default().fg(Color::Red)))
        .collect();
    (!lines.is_empty()).then_some(lines)
}

pub fn detail_lines(entry: &ViolationEntry, s: &Snapshot) -> Vec<Line<'static>> {
    let v = &entry.violation;
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let heading = |text: &str| Line::styled(text.to_owned(), bold.fg(Color::Cyan));
    let mut out = Vec::new();
    let severity_color = if v.severity == crate::checker::Severity::Error { Color::Red } else { Color::Yellow };
    out.push(Line::from(vec![
        Span::styled(format!("{} ", v.rule), bold.fg(severity_color)),
        Span::raw(format!("{} · {} ago (ts {})", v.severity, age(s.now_ts.saturating_sub(v.ts)), v.ts)),
    ]));
    let mut facts = Vec::new();
    if let Some(t) = &v.task {
        facts.push(format!("task {} ({})", t.tid, s.process_of(v).label()));
    }
    if let Some(mm) = v.mm {
        facts.push(format!("mm {mm}"));
    }
    if let Some(r) = &v.range {
        let mut range = String::from("range");
        if let Some(p) = r.ptr {
            range.push_str(&format!(" {p}"));
        }
        if let (Some(a), Some(b)) = (r.start, r.end) {
            range.push_str(&format!(" [{a}, {b})"));
        }
        if let Some(e) = r.event {
            range.push_str(&format!(" {e}"));
        }
        if let Some(b) = r.blockable {
            range.push_str(if b { " blockable" } else { " non-blockable" });
        }
        facts.push(range);
    }
    if let Some(cb) = &v.callback {
        facts.push(format!("callback {cb}"));
    }
    if let Some(sub) = v.subscriber {
        facts.push(format!("subscriber {sub}"));
    }
    out.extend(facts.into_iter().map(Line::from));
    out.push(Line::raw(""));
    out.push(heading("What happened"));
    out.push(Line::raw(v.explanation.clone()));
    out.push(Line::raw(""));
    out.push(heading("Known bug"));
    out.push(Line::raw(v.hint.clone().unwrap_or_else(|| "no known kernel bug matches this pattern".into())));
    for note in &v.notes {
        out.push(Line::raw(format!("note: {note}")));
    }
    if let Some(lines) = stuck_lines(v, s) {
        out.push(Line::raw(""));
        out.push(heading("Stuck because of it (from the inventory)"));
        out.extend(lines);
    }
    out.push(Line::raw(""));
    out.push(heading("Events involved (oldest first)"));
    if entry.sequence.is_empty() {
        out.push(Line::raw("none recorded"));
    }
    for (id, text) in &entry.sequence {
        match text {
            Some(text) => out.push(Line::raw(format!("#{id:<7} {text}"))),
            None => out.push(Line::styled(
                format!("#{id:<7} (no longer in the recent-event window)"),
                Style::default().fg(Color::DarkGray),
            )),
        }
    }
    out.push(Line::raw(""));
    out.push(heading("Kernel stack"));
    match &v.stack {
        Some(frames) if !frames.is_empty() => out.extend(frames.iter().map(|f| Line::raw(format!("  {f}")))),
        _ => out.push(Line::raw("not captured")),
    }
    out
}

pub fn detail(frame: &mut Frame, area: Rect, entry: &ViolationEntry, scroll: u16, s: &Snapshot) {
    let rect = centered(area, area.width.saturating_sub(4).max(40), area.height.saturating_sub(2).max(10));
    frame.render_widget(Clear, rect);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" violation: {} ", entry.violation.rule))
        .title_bottom(" j/k scroll · Esc close ");
    let text = Paragraph::new(detail_lines(entry, s)).block(block).wrap(Wrap { trim: false }).scroll((scroll, 0));
    frame.render_widget(text, rect);
}
