//! The dashboard over a recorded trace, with time controls: events are fed at their
//! recorded pace times a speed factor, and can be paused and stepped one at a time.

use std::{
    fs::File,
    io::{BufRead, BufReader},
    path::Path,
    sync::{Arc, Condvar, Mutex, MutexGuard},
    thread,
    time::{Duration, Instant},
};

use anyhow::Result;

use super::{
    event_loop::{self, Source},
    logfile,
    model::Model,
    shared::SharedModel,
    snapshot::{Inventory, Snapshot},
    ui::Command,
};
use crate::{
    checker::Verdict,
    exit,
    trace::{Event, TraceError, TraceErrorKind, TraceReader},
};

pub const MIN_SPEED: f64 = 1.0 / 64.0;
pub const MAX_SPEED: f64 = 1_048_576.0;

/// Where the replay stands; shared by the feeding thread and the UI.
#[derive(Debug)]
pub struct Pace {
    pub paused: bool,
    /// Events still to feed while paused (`n`).
    pub steps: u64,
    pub speed: f64,
    /// Trace time and wall time the pace is measured from; reset on every change.
    anchor: Option<(u64, Instant)>,
    /// Line of the last event fed.
    pub line: u64,
    pub finished: bool,
    pub error: Option<String>,
    stop: bool,
}

impl Pace {
    pub fn new(speed: f64, paused: bool) -> Pace {
        Pace {
            paused,
            steps: 0,
            speed: speed.clamp(MIN_SPEED, MAX_SPEED),
            anchor: None,
            line: 0,
            finished: false,
            error: None,
            stop: false,
        }
    }

    /// Applies a time control; false for commands that are not about time.
    pub fn apply(&mut self, command: Command) -> bool {
        match command {
            Command::TogglePause => self.paused = !self.paused,
            // A step pauses first, so `n` works from a running replay too.
            Command::Step => {
                self.paused = true;
                self.steps += 1;
            }
            Command::Faster => self.speed = (self.speed * 2.0).min(MAX_SPEED),
            Command::Slower => self.speed = (self.speed / 2.0).max(MIN_SPEED),
            Command::Reset | Command::Quit => return false,
        }
        self.anchor = None;
        true
    }

    /// How long the event at trace time `ts` must still wait; `None`: feed it now.
    /// Consumes a step when paused.
    fn wait_for(&mut self, ts: u64, now: Instant) -> Option<Duration> {
        if self.paused {
            if self.steps > 0 {
                self.steps -= 1;
                return None;
            }
            return Some(Duration::from_millis(100));
        }
        let (from_ts, from_wall) = *self.anchor.get_or_insert((ts, now));
        let due = from_wall + Duration::from_secs_f64(ts.saturating_sub(from_ts) as f64 / 1e9 / self.speed);
        due.checked_duration_since(now).filter(|d| !d.is_zero())
    }

    pub fn status(&self) -> String {
        let speed =
            if self.speed >= 1.0 { format!("{}x", self.speed) } else { format!("1/{}x", (1.0 / self.speed).round()) };
        let state = if self.error.is_some() {
            "stopped"
        } else if self.finished {
            "finished"
        } else if self.paused {
            "paused (n: step, Space: play)"
        } else {
            "playing"
        };
        format!("replay line {} · {speed} · {state} · +/- speed", self.line)
    }
}

struct Control {
    pace: Mutex<Pace>,
    changed: Condvar,
}

impl Control {
    fn lock(&self) -> MutexGuard<'_, Pace> {
        self.pace.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Feeds every event at its pace; ends the model at the end of the input.
fn feed<R: BufRead>(reader: TraceReader<R>, model: &SharedModel, control: &Control) -> Result<(), TraceError> {
    let mut first = true;
    for event in reader {
        let event: Event = event?;
        let mut guard = control.lock();
        loop {
            if guard.stop {
                return Ok(());
            }
            match guard.wait_for(event.ts, Instant::now()) {
                None => break,
                Some(wait) => {
                    let (g, _) = control
                        .changed
                        .wait_timeout(guard, wait.min(Duration::from_millis(100)))
                        .unwrap_or_else(|p| p.into_inner());
                    guard = g;
                }
            }
        }
        let line = event.seq.unwrap_or(guard.line + 1);
        drop(guard);
        model.push(&event);
        if std::mem::take(&mut first) {
            super::terminal::panic_if_asked("replay-feed");
        }
        // The line moves only once its event is in the model: a frame (which reads the line
        // first) never shows a line ahead of the events counted.
        control.lock().line = line;
    }
    model.lock().finish();
    control.lock().finished = true;
    Ok(())
}

struct ReplaySource {
    model: SharedModel,
    control: Arc<Control>,
}

impl Source for ReplaySource {
    fn snapshot(&mut self) -> Snapshot {
        // The pace before the model: the model then holds at least the line's events.
        let (status, error) = {
            let pace = self.control.lock();
            (pace.status(), pace.error.clone())
        };
        let mut s = self.model.snapshot(None);
        s.inventory = Inventory::Unavailable("a recorded trace carries no inventory; it is read live only".into());
        s.status = Some(status);
        s.error = error;
        s
    }

    fn command(&mut self, command: Command) -> bool {
        if command == Command::Reset {
            self.model.lock().reset();
            return true;
        }
        let handled = self.control.lock().apply(command);
        self.control.changed.notify_all();
        handled
    }
}

/// Options of `replay FILE --tui`.
pub struct ReplayOptions<'a> {
    pub file: &'a Path,
    pub speed: f64,
    pub start_paused: bool,
    pub log_file: Option<&'a Path>,
}

/// Shows the dashboard over a recording. The exit status is the replay's (0 pass, 1
/// otherwise) once the whole trace was checked, 0 if the person quit before the end.
pub fn run(opts: &ReplayOptions<'_>) -> Result<u8> {
    let path = opts.file;
    if !super::live::interactive_terminal() {
        anyhow::bail!("--tui needs a terminal on stdin and stdout; without --tui, replay prints its report");
    }
    // A missing file or a bad header is reported before the terminal is taken over.
    let file = File::open(path).map_err(|e| TraceError::new(0, TraceErrorKind::Io(e)).with_path(path))?;
    let reader =
        TraceReader::new(BufReader::with_capacity(1 << 16, file)).map_err(|e| e.with_path(path))?.with_path(path);
    let (log_path, log) = logfile::open(opts.log_file)?;
    logfile::install(log);
    log::info!("replaying {}", path.display());
    // The header names the file only: a long path would push the kernel off narrow screens.
    let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    let model = SharedModel::new(Model::new(reader.header(), format!("replay {name}"), None));
    super::terminal::watch_panics();
    let control =
        Arc::new(Control { pace: Mutex::new(Pace::new(opts.speed, opts.start_paused)), changed: Condvar::new() });
    let feeder = {
        let (model, control) = (model.clone(), Arc::clone(&control));
        thread::Builder::new().name("replay".into()).spawn(move || {
            let result = feed(reader, &model, &control);
            if let Err(e) = &result {
                log::error!("{e}");
                control.lock().error = Some(e.to_string());
            }
            result
        })?
    };
    let mut source = ReplaySource { model: model.clone(), control: Arc::clone(&control) };
    let shown = event_loop::show(&mut source);
    control.lock().stop = true;
    control.changed.notify_all();
    let fed = feeder.join().map_err(|_| crate::exit::ThreadPanicked("replay"))?;
    shown?;
    fed?;
    log::info!("log in {}", log_path.display());
    let snapshot = model.snapshot(None);
    Ok(match snapshot.verdict {
        Some(Verdict::Pass) | None => 0,
        Some(_) => exit::FAILED,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces_by_trace_time_times_speed() {
        let mut pace = Pace::new(2.0, false);
        let t0 = Instant::now();
        assert_eq!(pace.wait_for(1_000_000_000, t0), None, "the first event anchors the pace");
        // One trace second later at 2x: due half a second after the anchor.
        let wait = pace.wait_for(2_000_000_000, t0).expect("must wait");
        assert!(wait <= Duration::from_millis(500) && wait > Duration::from_millis(499), "{wait:?}");
        assert_eq!(pace.wait_for(2_000_000_000, t0 + Duration::from_millis(500)), None);
    }

    #[test]
    fn paused_replay_feeds_only_steps() {
        let mut pace = Pace::new(1.0, true);
        let now = Instant::now();
        assert!(pace.wait_for(5, now).is_some());
        assert!(pace.apply(Command::Step));
        assert!(pace.apply(Command::Step));
        assert_eq!(pace.wait_for(5, now), None);
        assert_eq!(pace.wait_for(6, now), None);
        assert!(pace.wait_for(7, now).is_some(), "two steps, two events");
        assert!(pace.apply(Command::TogglePause));
        assert_eq!(pace.wait_for(7, now), None, "playing again, re-anchored");
        assert!(!pace.apply(Command::Reset));
    }

    #[test]
    fn speed_stays_within_bounds() {
        let mut pace = Pace::new(1.0, false);
        for _ in 0..100 {
            pace.apply(Command::Faster);
        }
        assert_eq!(pace.speed, MAX_SPEED);
        for _ in 0..100 {
            pace.apply(Command::Slower);
        }
        assert_eq!(pace.speed, MIN_SPEED);
        assert!(pace.status().contains("1/64x"), "{}", pace.status());
    }
}
