//! The redraw loop: a fresh snapshot and a frame ten times a second, keys in between. The
//! loop never touches events; sources ingest on their own threads.

use std::{
    io,
    time::{Duration, Instant},
};

use ratatui::{
    DefaultTerminal,
    crossterm::event::{self, Event},
};

use super::{
    snapshot::Snapshot,
    terminal::{TerminalGuard, draw, panic_if_asked, terminate_requested, wait_for_input},
    ui::{Command, Ui},
    view,
};

/// Time between redraws.
pub const FRAME: Duration = Duration::from_millis(100);

/// Where frames come from: the live tracer or a recording.
pub trait Source {
    /// The state to draw now.
    fn snapshot(&mut self) -> Snapshot;
    /// Carries out `command`; false when the source has no use for it (the UI then handles
    /// a pause by freezing the display).
    fn command(&mut self, command: Command) -> bool;
}

/// Takes over the terminal, runs the dashboard over `source`, and gives the terminal back.
pub fn show(source: &mut dyn Source) -> anyhow::Result<()> {
    use anyhow::Context;
    let mut term = TerminalGuard::enter().context("setting up the terminal")?;
    Ok(run(term.terminal(), source)?)
}

/// Runs until the person quits, a termination signal arrives or the terminal goes away (an
/// error).
pub fn run(terminal: &mut DefaultTerminal, source: &mut dyn Source) -> io::Result<()> {
    let mut ui = Ui::default();
    let mut snapshot = source.snapshot();
    let mut next_frame = Instant::now();
    let mut first_frame = true;
    loop {
        if terminate_requested() {
            return Ok(());
        }
        if Instant::now() >= next_frame {
            if !ui.frozen {
                snapshot = source.snapshot();
            }
            draw(terminal, |f| view::draw(f, &ui, &snapshot))?;
            next_frame = Instant::now() + FRAME;
            if std::mem::take(&mut first_frame) {
                panic_if_asked("redraw");
            }
        }
        if !wait_for_input(next_frame.saturating_duration_since(Instant::now()))? {
            continue;
        }
        // One read can carry several keys: take every event crossterm has, checking the
        // terminal is still there before each look.
        while event::poll(Duration::ZERO)? {
            if handle(event::read()?, terminal, source, &mut ui, &mut snapshot)? == Flow::Quit {
                return Ok(());
            }
            wait_for_input(Duration::ZERO)?;
        }
    }
}

#[derive(PartialEq)]
enum Flow {
    Continue,
    Quit,
}

fn handle(
    event: Event,
    terminal: &mut DefaultTerminal,
    source: &mut dyn Source,
    ui: &mut Ui,
    snapshot: &mut Snapshot,
) -> io::Result<Flow> {
    match event {
        Event::Key(key) => {
            if let Some(command) = ui.handle_key(key, snapshot) {
                match command {
                    Command::Quit => return Ok(Flow::Quit),
                    Command::TogglePause => {
                        if !source.command(command) {
                            ui.frozen = !ui.frozen;
                        }
                    }
                    Command::Reset | Command::Step | Command::Faster | Command::Slower => {
                        source.command(command);
                    }
                }
                if !ui.frozen || command == Command::Reset {
                    *snapshot = source.snapshot();
                }
            }
            draw(terminal, |f| view::draw(f, ui, snapshot))?;
        }
        Event::Resize(..) => {
            draw(terminal, |f| view::draw(f, ui, snapshot))?;
        }
        _ => {}
    }
    Ok(Flow::Continue)
}
