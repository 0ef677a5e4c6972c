//! `--pid` / `--comm` filters on decoded events.

use crate::trace::{Event, EventBody};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Thread group ids to keep (empty: all).
    pub pids: Vec<u32>,
    /// Exact command names to keep (empty: all).
    pub comms: Vec<String>,
}

impl EventFilter {
    /// Loss records always pass: a filtered view must still say that events were lost. So do
    /// `probes_live` records: the checker needs them to judge what it is shown.
    pub fn matches(&self, e: &Event) -> bool {
        if matches!(e.body, EventBody::Lost(_) | EventBody::ProbesLive(_)) {
            return true;
        }
        let pid_ok = self.pids.is_empty() || e.pid.is_some_and(|p| self.pids.contains(&p));
        let comm_ok =
            self.comms.is_empty() || e.comm.as_ref().is_some_and(|c| self.comms.iter().any(|w| w == c.as_str()));
        pid_ok && comm_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{
        Comm,
        event::{Lost, TaskExit},
    };

    fn exit(pid: u32, comm: &str) -> Event {
        let mut e = Event::new(1, EventBody::TaskExit(TaskExit { tid: pid }));
        e.pid = Some(pid);
        e.comm = Some(Comm::new(comm));
        e
    }

    #[test]
    fn pid_and_comm_filters_combine_and_lost_always_passes() {
        let f = EventFilter { pids: vec![7], comms: vec!["qemu".into()] };
        assert!(f.matches(&exit(7, "qemu")));
        assert!(!f.matches(&exit(7, "bash")));
        assert!(!f.matches(&exit(8, "qemu")));
        assert!(f.matches(&Event::new(1, EventBody::Lost(Lost { count: 3 }))));
        assert!(EventFilter::default().matches(&exit(9, "x")));
        let only_comm = EventFilter { pids: vec![], comms: vec!["qemu".into()] };
        assert!(only_comm.matches(&exit(1, "qemu")) && !only_comm.matches(&exit(1, "qemu2")));
    }
}
