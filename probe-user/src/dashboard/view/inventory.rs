//! The inventory pane: every mm with notifier subscriptions, from the iterator audit.

use ratatui::{
    Frame,
    layout::Rect,
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Paragraph, Wrap},
};

use super::format::age;
use crate::{
    dashboard::{
        rows,
        snapshot::{Inventory, Snapshot},
        ui::{Pane, Ui},
    },
    inventory::MmInventory,
};

fn mm_lines(mm: &MmInventory, selected: bool) -> Vec<Line<'static>> {
    let mut head = vec![Span::styled(
        format!("pid {} {} mm {}", mm.pid, mm.comm, mm.mm),
        Style::default().add_modifier(if selected { Modifier::REVERSED | Modifier::BOLD } else { Modifier::BOLD }),
    )];
    let mut tree = format!("  itree {}", if mm.has_itree { "yes" } else { "no" });
    if let Some(seq) = mm.invalidate_seq {
        tree.push_str(&format!(" seq {seq}"));
    }
    if let Some(active) = mm.active_invalidate_ranges {
        tree.push_str(&format!(" active {active}"));
    }
    let tree_style = if mm.itree_invalidating() { Style::default().fg(Color::Yellow) } else { Style::default() };
    head.push(Span::styled(tree, tree_style));
    if mm.itree_invalidating() {
        head.push(Span::styled(" (invalidating)", tree_style));
    }
    let mut out = vec![Line::from(head)];
    if mm.subscribers.is_empty() && mm.intervals.is_empty() {
        out.push(Line::styled(
            "  no subscribers right now (the subscription struct stays until the mm exits)",
            Style::default().fg(Color::DarkGray),
        ));
    }
    for (i, sub) in mm.subscribers.iter().enumerate() {
        let callbacks: Vec<String> = sub.callbacks.iter().map(|(slot, sym)| format!("{slot}={sym}")).collect();
        out.push(Line::from(format!(
            "  [{i}] subscriber {} users {}: {}",
            sub.subscriber,
            sub.users,
            callbacks.join(" ")
        )));
        if let Some(kvm) = &sub.kvm {
            let style = if kvm.mn_active_invalidate_count.is_some_and(|a| a > 0) {
                Style::default().fg(Color::Yellow)
            } else if kvm.unavailable.is_some() {
                Style::default().fg(Color::DarkGray)
            } else {
                Style::default()
            };
            out.push(Line::from(Span::styled(format!("      {}", kvm.describe(" · ")), style)));
        }
    }
    for (i, iv) in mm.intervals.iter().enumerate() {
        let invalidating = mm.interval_invalidating(iv);
        let style = if invalidating { Style::default().fg(Color::Yellow) } else { Style::default() };
        out.push(Line::from(Span::styled(
            format!(
                "  [interval {i}] subscriber {} [{}, {}] seq {}{}",
                iv.subscriber,
                iv.start,
                iv.last,
                iv.invalidate_seq,
                if invalidating { " (invalidating)" } else { "" },
            ),
            style,
        )));
        out.push(Line::from(format!("      invalidate={}", iv.invalidate)));
    }
    if mm.truncated {
        out.push(Line::from(format!(
            "  (more subscribers than the {} per kind the walk reads)",
            probe_common::MAX_SUBSCRIBERS
        )));
    }
    out
}

pub(super) fn draw(frame: &mut Frame, area: Rect, block: Block<'_>, s: &Snapshot, ui: &Ui) {
    let dim = Style::default().fg(Color::DarkGray);
    let (block, lines) = match &s.inventory {
        Inventory::NotReadYet => (block, vec![Line::styled(" reading the inventory…", dim)]),
        Inventory::Unavailable(why) => (block, vec![Line::styled(format!(" {why}"), dim)]),
        Inventory::Failed(why) => {
            (block, vec![Line::styled(format!(" inventory failed: {why}"), Style::default().fg(Color::Red))])
        }
        Inventory::Read { mms, stuck, age_ns } => {
            let list = rows::inventory(mms, &ui.filter);
            let block =
                block.title_bottom(format!(" {} mms with subscriptions · read {} ago ", list.len(), age(*age_ns)));
            // Stuck tasks first, whatever the filter: they are why someone opens this pane.
            let alarm = Style::default().fg(Color::Red).add_modifier(Modifier::BOLD);
            let stuck_lines: Vec<Line> =
                stuck.iter().map(|t| Line::styled(format!(" stuck: {}", t.describe()), alarm)).collect();
            let (block, lines) = if list.is_empty() {
                let text = if ui.filter.is_empty() {
                    " no process has mmu notifier subscriptions"
                } else {
                    " nothing matches the filter"
                };
                (block, vec![Line::styled(text, dim)])
            } else {
                let selected = ui.selected(Pane::Inventory, list.len());
                // Start the view at the selected mm so j/k scroll through long inventories.
                let lines = list
                    .iter()
                    .enumerate()
                    .skip(selected.saturating_sub(1))
                    .flat_map(|(i, mm)| mm_lines(mm, i == selected))
                    .collect();
                (block, lines)
            };
            (block, stuck_lines.into_iter().chain(lines).collect())
        }
    };
    frame.render_widget(Paragraph::new(lines).block(block).wrap(Wrap { trim: false }), area);
}
