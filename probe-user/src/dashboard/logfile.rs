//! The dashboard's log: a file, because the terminal belongs to the dashboard.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
    sync::Mutex,
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result};

/// `$XDG_STATE_HOME/mmnotif-trace/dashboard.log`, else `~/.local/state/…`, else `/tmp/…`.
pub fn default_path() -> PathBuf {
    let dir = std::env::var_os("XDG_STATE_HOME").map(PathBuf::from).filter(|p| p.is_absolute()).or_else(|| {
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")).filter(|p| p.is_absolute())
    });
    match dir {
        Some(dir) => dir.join("mmnotif-trace").join("dashboard.log"),
        None => std::env::temp_dir().join("mmnotif-trace-dashboard.log"),
    }
}

/// Opens (appending) the log at `path`, or at [`default_path`].
pub fn open(path: Option<&Path>) -> Result<(PathBuf, File)> {
    let path = path.map_or_else(default_path, Path::to_path_buf);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("--log-file: creating {}", dir.display()))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("--log-file: opening {}", path.display()))?;
    Ok((path, file))
}

struct FileLogger {
    file: Mutex<Option<File>>,
}

static LOGGER: FileLogger = FileLogger { file: Mutex::new(None) };

impl log::Log for FileLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        if let Ok(mut guard) = self.file.lock()
            && let Some(file) = guard.as_mut()
        {
            let _ = writeln!(
                file,
                "{}.{:03} {:<5} {}: {}",
                since_epoch.as_secs(),
                since_epoch.subsec_millis(),
                record.level(),
                record.target(),
                record.args()
            );
        }
    }

    fn flush(&self) {
        if let Ok(mut guard) = self.file.lock()
            && let Some(file) = guard.as_mut()
        {
            let _ = file.flush();
        }
    }
}

/// Sends every `log` record of this process to `file` from now on.
pub fn install(file: File) {
    if let Ok(mut guard) = LOGGER.file.lock() {
        *guard = Some(file);
    }
    // Fails only if a logger is already installed, which then keeps logging.
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}
