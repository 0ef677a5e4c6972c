//! The most recent events, kept so a violation's detail can show the events it names
//! (violations carry only their ids). Bounded: older events are reported as not retained.

use std::collections::VecDeque;

use crate::{render::event_text, trace::Event};

/// Events kept for violation details.
pub const RECENT_EVENTS: usize = 8192;

#[derive(Debug, Default)]
pub struct RecentEvents {
    /// (id, event), ids increasing.
    events: VecDeque<(u64, Event)>,
}

impl RecentEvents {
    pub fn push(&mut self, id: u64, event: &Event) {
        if self.events.len() == RECENT_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back((id, event.clone()));
    }

    pub fn get(&self, id: u64) -> Option<&Event> {
        // Ids are line numbers or the decoder's sequence numbers, so the window is sorted, except
        // around loss records the session makes up (they are numbered by the checker's count).
        match self.events.binary_search_by_key(&id, |(i, _)| *i) {
            Ok(at) => self.events.get(at).map(|(_, e)| e),
            Err(_) => self.events.iter().rev().find(|(i, _)| *i == id).map(|(_, e)| e),
        }
    }

    /// The events `ids` name, as text, `None` for those no longer kept.
    pub fn describe(&self, ids: &[u64]) -> Vec<(u64, Option<String>)> {
        ids.iter().map(|&id| (id, self.get(id).map(event_text))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{EventBody, TaskExit};

    #[test]
    fn finds_kept_events_and_reports_evicted_ones() {
        let mut r = RecentEvents::default();
        for id in 1..=(RECENT_EVENTS as u64 + 10) {
            r.push(id, &Event::new(id * 1000, EventBody::TaskExit(TaskExit { tid: id as u32 })));
        }
        let d = r.describe(&[5, RECENT_EVENTS as u64 + 10]);
        assert_eq!(d[0], (5, None));
        assert!(d[1].1.as_deref().is_some_and(|t| t.contains("task_exit")), "{d:?}");
    }
}
