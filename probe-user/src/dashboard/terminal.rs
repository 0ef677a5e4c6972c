//! Owning the terminal: raw mode and the alternate screen while the dashboard runs, and the
//! terminal given back on every way out (return, error, panic, SIGTERM/SIGINT/SIGHUP).

use std::{
    io,
    sync::{
        Mutex, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, ThreadId},
    time::Duration,
};

use ratatui::{DefaultTerminal, Frame};

static TERMINATE: AtomicBool = AtomicBool::new(false);
/// Set by the panic hooks: the redraw loop must stop (a panic on a source's thread would
/// otherwise leave the UI running), and once the terminal is entered, ratatui's part of the
/// hook has already restored it.
static PANICKED: AtomicBool = AtomicBool::new(false);
/// Set once the panic hook has given the terminal back.
static RESTORED: AtomicBool = AtomicBool::new(false);
/// Held while a frame is drawn. A panic on another thread takes it before restoring the
/// terminal, or a frame finishing after the restore would land on the normal screen.
static DRAWING: Mutex<()> = Mutex::new(());
/// The thread that draws (a panic there already holds `DRAWING`, or does not need it).
static UI_THREAD: OnceLock<ThreadId> = OnceLock::new();

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

/// Draws one frame, unless a panic has given the terminal back (the caller then sees
/// [`terminate_requested`] and stops).
pub fn draw(terminal: &mut DefaultTerminal, render: impl FnOnce(&mut Frame)) -> io::Result<()> {
    let _frame = DRAWING.lock().unwrap_or_else(|p| p.into_inner());
    if !PANICKED.load(Ordering::Relaxed) {
        terminal.draw(render)?;
    }
    Ok(())
}

/// Waits up to `timeout` for input on the terminal (stdin, the descriptor crossterm reads);
/// true when there may be something for crossterm to read. An error once the terminal has
/// hung up: crossterm (0.28) must never be asked then, because its reader retries EOF and
/// EIO forever, which pins a CPU and never returns to look at the termination flag.
pub fn wait_for_input(timeout: Duration) -> io::Result<bool> {
    let mut stdin = libc::pollfd { fd: libc::STDIN_FILENO, events: libc::POLLIN, revents: 0 };
    let millis = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd, for the duration of the call.
    let ready = unsafe { libc::poll(&mut stdin, 1, millis) };
    if ready < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
        // A signal. SIGWINCH reaches crossterm through a pipe of its own, so let it look, once
        // the terminal is known to still be there; termination signals are the caller's check.
        return wait_for_input(Duration::ZERO).map(|_| true);
    }
    if stdin.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
        return Err(io::Error::new(io::ErrorKind::BrokenPipe, "the terminal hung up"));
    }
    Ok(ready > 0)
}

/// Debug builds only: `MMNOTIF_TEST_PANIC=<place>` panics at that place, so the tests can
/// show the terminal is given back after a panic on the UI thread or on a source's thread.
pub fn panic_if_asked(place: &str) {
    #[cfg(debug_assertions)]
    if std::env::var("MMNOTIF_TEST_PANIC").is_ok_and(|v| v == place) {
        panic!("MMNOTIF_TEST_PANIC={place}: a deliberate panic");
    }
    #[cfg(not(debug_assertions))]
    let _ = place;
}

/// Notes any panic from now on; call before starting a source's threads, so one that panics
/// before the terminal is entered still stops the dashboard.
pub fn watch_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICKED.store(true, Ordering::Relaxed);
            log::error!("{info}");
            report(info);
        }));
    });
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
        watch_panics();
        let terminal = ratatui::try_init()?;
        let _ = UI_THREAD.set(thread::current().id());
        let restore_and_report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let on_ui_thread = UI_THREAD.get() == Some(&thread::current().id());
            let _no_frame = (!on_ui_thread).then(|| DRAWING.lock().unwrap_or_else(|p| p.into_inner()));
            PANICKED.store(true, Ordering::Relaxed);
            RESTORED.store(true, Ordering::Relaxed);
            // ratatui's hook: restore, then watch_panics's (log, then print the message).
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
        // After a panic the hook has restored it already; a second restore would move the
        // cursor back over the panic's message.
        if !RESTORED.load(Ordering::Relaxed) {
            ratatui::restore();
        }
    }
}
