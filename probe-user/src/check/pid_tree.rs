//! `check --pid-tree`: keep only the events of the command and its descendants.
//!
//! The kernel side reports no forks, so membership is decided in userspace. The primary source
//! is the kernel's process events connector ([`super::fork_watch`]): every fork whose parent is
//! mmnotif-trace (which forks nothing but the command) or a member makes the child a member, at
//! the moment of the fork, so even processes that exit before their first event is read are
//! placed. Fork notifications are queued by the kernel when the fork happens, so reading them
//! all before judging an event (whose process must have been forked earlier) leaves no race. A
//! fork by a non-member makes the child (maybe a reused pid) a non-member.
//!
//! Without the connector (a kernel without CONFIG_PROC_EVENTS), or after its queue overflowed,
//! a process not seen forking is placed by walking its parents in /proc up to mmnotif-trace.
//! mmnotif-trace makes itself a child subreaper, so a descendant whose parent exits is adopted by
//! it and stays in the tree. Such answers are cached per process and forgotten when its main
//! thread exits, so a reused pid is looked up again. A process already gone from /proc cannot
//! be placed that way: its events are left out and counted as "gone" in every report.

use std::collections::HashMap;

use serde::Serialize;

use crate::trace::{Event, EventBody};

/// Where a process sits relative to the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Membership {
    Inside,
    Outside,
    /// Exited before its ancestry could be read.
    Gone,
}

/// Parent lookup; [`ProcFs`] is the real one.
pub trait ProcessTable {
    /// The parent process id, or `None` when the process no longer exists.
    fn parent_of(&self, pid: u32) -> Option<u32>;
}

/// The running system's process table, read from `/proc/<pid>/stat`.
pub struct ProcFs;

impl ProcessTable for ProcFs {
    fn parent_of(&self, pid: u32) -> Option<u32> {
        parse_stat_ppid(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }
}

/// The `ppid` field of a `/proc/<pid>/stat` line. The command name before it is in parentheses
/// and may itself contain spaces and parentheses, so fields are counted from the last `)`.
pub fn parse_stat_ppid(stat: &str) -> Option<u32> {
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace();
    let _state = fields.next()?;
    fields.next()?.parse().ok()
}

/// Deeper than any real process tree; stops a walk over a corrupted or racing table.
const MAX_DEPTH: usize = 4096;

/// What the filter kept and left out, for the reports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PidTreeSummary {
    /// The process whose descendants form the tree (mmnotif-trace; the command is its child).
    pub root_pid: u32,
    /// `fork-events` (the process events connector) or `procfs` (parents read from /proc).
    pub membership_source: &'static str,
    /// Times fork notifications were dropped (their queue overflowed); /proc stood in.
    pub fork_events_lost: u64,
    pub processes_inside: u64,
    pub events_kept: u64,
    pub processes_outside: u64,
    pub events_outside: u64,
    pub processes_gone: u64,
    pub events_gone: u64,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    membership: Membership,
    /// Whether an event of it was judged yet (the summary counts processes once).
    counted: bool,
}

pub struct PidTree<T: ProcessTable = ProcFs> {
    table: T,
    known: HashMap<u32, Entry>,
    /// Every fork since the tree was made has been seen, so a process nobody saw being forked
    /// by a member is not one.
    forks_complete: bool,
    summary: PidTreeSummary,
}

impl<T: ProcessTable> PidTree<T> {
    /// The tree of `root`'s descendants (`root` itself excluded). With `fork_events`, the
    /// caller feeds every fork through [`PidTree::on_fork`] before the events after it.
    pub fn new(root: u32, table: T, fork_events: bool) -> Self {
        PidTree {
            table,
            known: HashMap::new(),
            forks_complete: fork_events,
            summary: PidTreeSummary {
                root_pid: root,
                membership_source: if fork_events { "fork-events" } else { "procfs" },
                ..PidTreeSummary::default()
            },
        }
    }

    /// A process forked `child` (their thread group ids).
    pub fn on_fork(&mut self, parent: u32, child: u32) {
        let inside = parent == self.summary.root_pid
            || self.known.get(&parent).is_some_and(|e| e.membership == Membership::Inside)
            || (!self.forks_complete && self.membership(parent) == Membership::Inside);
        if inside {
            self.known.insert(child, Entry { membership: Membership::Inside, counted: false });
        } else {
            self.known.remove(&child);
        }
    }

    /// Fork notifications were dropped: from now on a process not seen forking is placed
    /// from /proc.
    pub fn fork_events_lost(&mut self) {
        self.summary.fork_events_lost += 1;
        self.forks_complete = false;
    }

    /// Whether the event belongs to the tree. Loss records always pass: a narrowed view must
    /// still say that events were lost. So do `probes_live` records, which belong to no task
    /// and tell the checker from when a subscriber's pairing can be judged.
    pub fn keeps(&mut self, e: &Event) -> bool {
        if matches!(e.body, EventBody::Lost(_) | EventBody::ProbesLive(_)) {
            return true;
        }
        let Some(pid) = e.pid.or_else(|| e.tid()) else { return true };
        let membership = self.judge(pid);
        match membership {
            Membership::Inside => self.summary.events_kept += 1,
            Membership::Outside => self.summary.events_outside += 1,
            Membership::Gone => self.summary.events_gone += 1,
        }
        // A pid is reused only after its process is gone. Fork notifications correct reused
        // pids by themselves; answers from /proc must be forgotten.
        if let EventBody::TaskExit(t) = &e.body
            && t.tid == pid
            && (!self.forks_complete || membership != Membership::Inside)
        {
            self.known.remove(&pid);
        }
        membership == Membership::Inside
    }

    pub fn summary(&self) -> PidTreeSummary {
        self.summary.clone()
    }

    /// The membership of an event's process, counting the process the first time.
    fn judge(&mut self, pid: u32) -> Membership {
        let membership = self.membership(pid);
        if let Some(entry) = self.known.get_mut(&pid)
            && !entry.counted
        {
            entry.counted = true;
            match membership {
                Membership::Inside => self.summary.processes_inside += 1,
                Membership::Outside => self.summary.processes_outside += 1,
                Membership::Gone => self.summary.processes_gone += 1,
            }
        }
        membership
    }

    /// The cached answer, else one from the forks seen or from /proc (then cached).
    fn membership(&mut self, pid: u32) -> Membership {
        if let Some(entry) = self.known.get(&pid) {
            return entry.membership;
        }
        let m = if self.forks_complete {
            Membership::Outside
        } else {
            // A parent that exits during the walk gets its children adopted: walk once more.
            match self.resolve(pid) {
                Membership::Gone if self.table.parent_of(pid).is_some() => self.resolve(pid),
                m => m,
            }
        };
        self.known.insert(pid, Entry { membership: m, counted: false });
        m
    }

    fn resolve(&self, pid: u32) -> Membership {
        let root = self.summary.root_pid;
        if pid == root {
            return Membership::Outside;
        }
        let mut current = pid;
        for _ in 0..MAX_DEPTH {
            let Some(parent) = self.table.parent_of(current) else { return Membership::Gone };
            if parent == root {
                return Membership::Inside;
            }
            // init and kthreadd have parent 0: the walk left the tree's side of the table.
            if parent == 0 {
                return Membership::Outside;
            }
            match self.known.get(&parent).map(|e| e.membership) {
                Some(m @ (Membership::Inside | Membership::Outside)) => return m,
                _ => current = parent,
            }
        }
        Membership::Outside
    }
}

/// Makes this process adopt its orphaned descendants (`PR_SET_CHILD_SUBREAPER`).
pub fn become_subreaper() -> std::io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Reaps adopted descendants that have exited. Call only once the command itself was waited
/// for, or this could take its exit status.
pub fn reap_adopted() {
    loop {
        let mut status = 0;
        // SAFETY: a valid out-pointer; WNOHANG never blocks.
        if unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } <= 0 {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::process::{Command, Stdio};

    use super::*;
    use crate::trace::{
        Comm,
        event::{Lost, TaskExit},
    };

    /// A process table given as (pid, parent) pairs.
    struct Table(Vec<(u32, u32)>);

    impl ProcessTable for Table {
        fn parent_of(&self, pid: u32) -> Option<u32> {
            self.0.iter().find(|(p, _)| *p == pid).map(|(_, parent)| *parent)
        }
    }

    fn event_of(pid: u32, tid: u32) -> Event {
        let mut e = Event::new(1, EventBody::TaskExit(TaskExit { tid }));
        e.pid = Some(pid);
        e.comm = Some(Comm::new("x"));
        e
    }

    #[test]
    fn stat_lines_parse_even_with_odd_command_names() {
        assert_eq!(parse_stat_ppid("1234 (bash) S 1000 1234 1234 0 -1"), Some(1000));
        assert_eq!(parse_stat_ppid("77 (a) b (c)) R 42 77 77"), Some(42));
        assert_eq!(parse_stat_ppid("77 (no closing paren S 42"), None);
        assert_eq!(parse_stat_ppid("77 (x) S"), None);
    }

    #[test]
    fn descendants_are_inside_everything_else_outside_and_vanished_ones_gone() {
        // 100 is mmnotif-trace, 200 the command, 300 its child, 400 a grandchild adopted by 100
        // after 300 exited; 2 is kthreadd and 61 a kernel thread; 500 is unrelated.
        let table =
            Table(vec![(1, 0), (2, 0), (61, 2), (100, 50), (50, 1), (200, 100), (300, 200), (400, 100), (500, 1)]);
        let mut tree = PidTree::new(100, table, false);
        for pid in [200, 300, 400] {
            assert!(tree.keeps(&event_of(pid, pid)), "pid {pid}");
        }
        for pid in [100, 50, 1, 61, 500] {
            assert!(!tree.keeps(&event_of(pid, pid + 1)), "pid {pid}");
        }
        assert!(!tree.keeps(&event_of(999, 999)), "not in the table: gone");
        assert!(tree.keeps(&Event::new(2, EventBody::Lost(Lost { count: 3 }))));
        let s = tree.summary();
        assert_eq!((s.processes_inside, s.events_kept), (3, 3));
        assert_eq!((s.processes_outside, s.events_outside), (5, 5));
        assert_eq!((s.processes_gone, s.events_gone), (1, 1));
    }

    #[test]
    fn a_process_keeps_its_answer_until_its_main_thread_exits() {
        let mut tree = PidTree::new(100, Table(vec![(200, 100)]), false);
        assert!(tree.keeps(&event_of(200, 201)), "a thread's exit keeps the process cached");
        tree.table = Table(vec![(200, 1), (1, 0)]);
        assert!(tree.keeps(&event_of(200, 202)), "cached, not looked up again");
        assert!(tree.keeps(&event_of(200, 200)), "the main thread's exit is still judged as inside");
        assert!(!tree.keeps(&event_of(200, 200)), "then the pid is looked up again (reused)");
        assert_eq!(tree.summary().processes_inside, 1);
        assert_eq!(tree.summary().processes_outside, 1);
    }

    #[test]
    fn forks_place_processes_that_are_gone_before_their_first_event() {
        // An empty process table: every process has exited by the time its events are read.
        let mut tree = PidTree::new(100, Table(vec![]), true);
        tree.on_fork(100, 200); // the command
        tree.on_fork(200, 300); // its child
        tree.on_fork(300, 400); // a grandchild
        tree.on_fork(1, 500); // unrelated
        for pid in [200, 300, 400] {
            assert!(tree.keeps(&event_of(pid, pid)), "pid {pid}");
        }
        assert!(!tree.keeps(&event_of(500, 500)));
        assert!(!tree.keeps(&event_of(61, 61)), "never seen forking: outside");
        // A member's pid reused by an unrelated process: its fork says so.
        tree.on_fork(1, 300);
        assert!(!tree.keeps(&event_of(300, 301)));
        let s = tree.summary();
        assert_eq!((s.membership_source, s.processes_inside, s.events_kept), ("fork-events", 3, 3));
        assert_eq!((s.processes_outside, s.events_outside, s.events_gone), (3, 3, 0));
        // After an overflow, /proc stands in for processes not seen forking.
        tree.fork_events_lost();
        tree.table = Table(vec![(600, 100)]);
        assert!(tree.keeps(&event_of(600, 600)));
        assert!(!tree.keeps(&event_of(700, 700)), "gone");
        assert_eq!((tree.summary().fork_events_lost, tree.summary().processes_gone), (1, 1));
    }

    #[test]
    fn the_real_process_table_places_a_grandchild_in_this_process_tree() {
        let mut child =
            Command::new("sh").args(["-c", "sleep 30 & echo $!; wait"]).stdout(Stdio::piped()).spawn().expect("sh");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().expect("stdout")), &mut line)
            .expect("read");
        let grandchild: u32 = line.trim().parse().expect("pid");
        let mut tree = PidTree::new(std::process::id(), ProcFs, false);
        let inside_child = tree.keeps(&event_of(child.id(), child.id()));
        let inside_grandchild = tree.keeps(&event_of(grandchild, grandchild));
        let outside_init = tree.keeps(&event_of(1, 1));
        // SAFETY: signalling the grandchild we started.
        unsafe { libc::kill(grandchild as i32, libc::SIGKILL) };
        let _ = child.wait();
        assert!(inside_child && inside_grandchild && !outside_init);
        assert_eq!(tree.summary().processes_gone, 0);
    }
}
