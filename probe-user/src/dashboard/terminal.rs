//! Owning the terminal: raw mode and the alternate screen while the dashboard runs, and the
//! terminal given back on every way out (return, error, panic, SIGTERM/SIGINT/SIGHUP).

use std::{
    io,
    sync::atomic::{AtomicBool, Ordering},
};

use ratatui::DefaultTerminal;

static TERMINATE: AtomicBool = AtomicBool::new(false);
/// Set by the panic hook: ratatui's part of the hook has already restored the terminal, so
/// the redraw loop must stop drawing (a panic on the ingest thread leaves the UI running).
static PANICKED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_terminate(_signal: libc::c_int) {
    // Only an atomic store: the redraw loop notices within one frame and unwinds normally,
    // so the terminal is restored by the guard's Drop and not from inside a signal handler.
    TERMINATE.store(true, Ordering::Relaxed);
}

/// Whether a termination signal arrived, or a thread panicked, since the dashboard started.
pub fn terminate_requested() -> bool {
    TERMINATE.load(Ordering::Relaxed) || PANICKED.load(Ordering::Relaxed)
}

fn catch_termination_signals() {
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(signal, on_terminate as *const () as libc::sighandler_t) };
    }
}

/// The terminal in dashboard mode; dropping it restores the terminal.
pub struct TerminalGuard {
    terminal: DefaultTerminal,
}

impl TerminalGuard {
    /// Enters raw mode and the alternate screen. A panic from here on restores the terminal
    /// before its message is printed (ratatui's panic hook).
    pub fn enter() -> io::Result<TerminalGuard> {
        catch_termination_signals();
        let terminal = ratatui::try_init()?;
        let restore_and_report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICKED.store(true, Ordering::Relaxed);
            log::error!("{info}");
            restore_and_report(info);
        }));
        Ok(TerminalGuard { terminal })
    }

    pub fn terminal(&mut self) -> &mut DefaultTerminal {
        &mut self.terminal
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}
