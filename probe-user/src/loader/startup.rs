//! Where a tracer's start-up time goes. Starting is the part of a run a user waits through
//! (and, in an emulated guest, the part that takes seconds), so the stream says how long it
//! took and which step took it.
use std::{
    fmt,
    time::{Duration, Instant},
};

/// Wall time of each start-up step, in order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StartupTimings {
    /// The kernel's facts: BTF offsets and kallsyms.
    pub kernel: Duration,
    /// Loading the eBPF object (maps created, relocations, programs not yet verified).
    pub load: Duration,
    /// Verifying and attaching every hook.
    pub hooks: Duration,
    /// The inventory of registered subscribers and probing their callbacks.
    pub subscribers: Duration,
}

impl StartupTimings {
    pub fn total(&self) -> Duration {
        self.kernel + self.load + self.hooks + self.subscribers
    }
}

impl fmt::Display for StartupTimings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |d: Duration| d.as_secs_f64();
        write!(
            f,
            "ready in {:.2} s (kernel facts {:.2} s, object {:.2} s, hooks {:.2} s, subscribers {:.2} s)",
            s(self.total()),
            s(self.kernel),
            s(self.load),
            s(self.hooks),
            s(self.subscribers)
        )
    }
}

/// Measures consecutive steps.
pub(super) struct Clock {
    last: Instant,
    timings: StartupTimings,
}

impl Clock {
    pub(super) fn start() -> Clock {
        Clock { last: Instant::now(), timings: StartupTimings::default() }
    }

    /// Ends a step: `record` stores the time since the previous lap.
    pub(super) fn lap(&mut self, record: impl FnOnce(&mut StartupTimings, Duration)) {
        let now = Instant::now();
        record(&mut self.timings, now - self.last);
        self.last = now;
    }

    pub(super) fn timings(&self) -> StartupTimings {
        self.timings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_every_step_and_their_sum() {
        let t = StartupTimings {
            kernel: Duration::from_millis(50),
            load: Duration::from_millis(200),
            hooks: Duration::from_millis(100),
            subscribers: Duration::from_millis(60),
        };
        assert_eq!(
            t.to_string(),
            "ready in 0.41 s (kernel facts 0.05 s, object 0.20 s, hooks 0.10 s, subscribers 0.06 s)"
        );
    }

    #[test]
    fn laps_fill_their_own_step_only() {
        let mut clock = Clock::start();
        clock.lap(|t, d| t.kernel = d);
        clock.lap(|t, d| t.load = d);
        let t = clock.timings();
        assert_eq!((t.hooks, t.subscribers), (Duration::ZERO, Duration::ZERO));
        assert_eq!(t.total(), t.kernel + t.load);
    }
}
