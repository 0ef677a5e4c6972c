//! The header: what is traced and how, the degraded banner, and the running totals.

use ratatui::{
    style::{Color, Modifier, Style},
    text::{Line, Span},
};

use super::format::{age, count};
use crate::{
    checker::{RuleId, Verdict},
    dashboard::{snapshot::Snapshot, ui::Ui},
};

/// Lays out groups of spans after `label` in lines of at most `width` columns, breaking
/// only between groups (a group is one fact, such as `lost 0`).
fn packed(label: &str, groups: Vec<Vec<Span<'static>>>, separator: &str, width: usize) -> Vec<Line<'static>> {
    let indent = label.chars().count();
    let mut lines = Vec::new();
    let mut spans = vec![Span::styled(label.to_owned(), Style::default().add_modifier(Modifier::BOLD))];
    let mut used = indent;
    for (i, group) in groups.into_iter().enumerate() {
        let len: usize = group.iter().map(|s| s.content.chars().count()).sum();
        let sep = if i == 0 { " " } else { separator };
        if used + sep.chars().count() + len > width && used > indent {
            lines.push(Line::from(std::mem::take(&mut spans)));
            spans.push(Span::raw(" ".repeat(indent)));
            used = indent;
            spans.push(Span::raw(" "));
            used += 1;
        } else {
            spans.push(Span::raw(sep.to_owned()));
            used += sep.chars().count();
        }
        spans.extend(group);
        used += len;
    }
    lines.push(Line::from(spans));
    lines
}

fn plain(items: Vec<String>, style: Style) -> Vec<Vec<Span<'static>>> {
    items.into_iter().map(|i| vec![Span::styled(i, style)]).collect()
}

pub(super) fn lines(s: &Snapshot, ui: &Ui, width: u16) -> Vec<Line<'static>> {
    let width = usize::from(width);
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let dim = Style::default().fg(Color::DarkGray);
    let kernel = if s.kernel.is_empty() { "unknown" } else { &s.kernel };
    let mut title = vec![
        vec![Span::raw(s.source.clone())],
        vec![Span::raw(format!("kernel {kernel}"))],
        vec![Span::raw(format!("up {}", age(s.uptime_ns)))],
    ];
    if let Some(verdict) = s.verdict {
        let color = match verdict {
            Verdict::Pass => Color::Green,
            Verdict::Fail => Color::Red,
            Verdict::Incomplete => Color::Yellow,
        };
        title.push(vec![Span::styled(format!("trace ended: {verdict}"), bold.fg(color))]);
    }
    if ui.frozen {
        title.push(vec![Span::styled("PAUSED", bold.fg(Color::Yellow))]);
    }
    let mut out = packed(" mmnotif-trace", title, " · ", width);
    if let Some(first) = out.first_mut().and_then(|l| l.spans.first_mut()) {
        first.style = bold.fg(Color::Cyan);
    }

    let attached: Vec<String> =
        s.hooks.iter().filter_map(|h| Some(format!("{}={}", h.hook, h.method.as_deref()?))).collect();
    let missing: Vec<String> = s.hooks.iter().filter(|h| h.method.is_none()).map(|h| h.hook.to_string()).collect();
    if attached.is_empty() {
        out.push(Line::from(Span::styled(" attached: nothing", Style::default().fg(Color::Red))));
    } else {
        out.extend(packed(" attached:", plain(attached, Style::default().fg(Color::Green)), " ", width));
    }
    if !missing.is_empty() {
        out.extend(packed(" unavailable:", plain(missing, dim), " ", width));
    }
    if !s.pairing {
        out.push(Line::from(Span::styled(
            format!(" DEGRADED: no start/end probes · {} of {} rules not checked ", s.not_checked, RuleId::ALL.len()),
            bold.fg(Color::Black).bg(Color::Yellow),
        )));
    }

    let lost_style = if s.lost > 0 { bold.fg(Color::White).bg(Color::Red) } else { Style::default() };
    let err_style = if s.errors > 0 { bold.fg(Color::Red) } else { Style::default() };
    let warn_style = if s.warnings > 0 { bold.fg(Color::Yellow) } else { Style::default() };
    let mut totals = vec![
        vec![Span::raw(format!("events {}", count(s.events)))],
        vec![Span::raw(format!("{}/s", count(s.events_per_sec)))],
        vec![Span::styled(format!("lost {}", count(s.lost)), lost_style)],
        vec![Span::raw(format!("open ranges {}", count(s.open_now)))],
        vec![
            Span::raw("violations: "),
            Span::styled(format!("{} error", count(s.errors)), err_style),
            Span::raw(" "),
            Span::styled(format!("{} warning", count(s.warnings)), warn_style),
        ],
    ];
    if let Some(at) = s.reset_ts {
        totals.push(vec![Span::styled(format!("(since reset {} ago)", age(s.now_ts.saturating_sub(at))), dim)]);
    }
    out.extend(packed("", totals, " · ", width));
    if s.lost > 0 {
        out.push(Line::from(Span::styled(
            format!(" {} kernel events were lost: pairing results around them are incomplete ", count(s.lost)),
            bold.fg(Color::White).bg(Color::Red),
        )));
    }
    out
}
