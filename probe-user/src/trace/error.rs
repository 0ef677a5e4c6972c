//! Errors reading a trace, located by line (and file, when the caller names it).
use std::{fmt, path::PathBuf};

/// What is wrong with a trace, and where.
#[derive(Debug, thiserror::Error)]
pub struct TraceError {
    pub path: Option<PathBuf>,
    /// 1-based line number; 0 when the problem is not tied to a line.
    pub line: u64,
    #[source]
    pub kind: TraceErrorKind,
}

#[derive(Debug, thiserror::Error)]
pub enum TraceErrorKind {
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("empty trace: no header line")]
    Empty,
    #[error("bad header: {0}")]
    BadHeader(String),
    #[error("unsupported trace format version {0} (this build reads version 1)")]
    UnsupportedVersion(u64),
    #[error("not valid JSON: {0}")]
    Json(String),
    #[error("line is not valid UTF-8")]
    NotUtf8,
    #[error("line is longer than {0} bytes")]
    TooLong(usize),
    #[error("truncated final line (no trailing newline and not valid JSON): the trace was cut off")]
    Truncated,
    #[error("{0}")]
    BadEvent(String),
}

impl TraceError {
    pub fn new(line: u64, kind: TraceErrorKind) -> TraceError {
        TraceError { path: None, line, kind }
    }

    /// Names the file in the message (`path:line: …`).
    pub fn with_path(mut self, path: impl Into<PathBuf>) -> TraceError {
        self.path = Some(path.into());
        self
    }

    pub fn is_truncation(&self) -> bool {
        matches!(self.kind, TraceErrorKind::Truncated)
    }
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.path, self.line) {
            (Some(path), 0) => write!(f, "{}: {}", path.display(), self.kind),
            (Some(path), line) => write!(f, "{}:{}: {}", path.display(), line, self.kind),
            (None, 0) => write!(f, "{}", self.kind),
            (None, line) => write!(f, "line {}: {}", line, self.kind),
        }
    }
}
