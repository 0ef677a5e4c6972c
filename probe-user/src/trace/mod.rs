//! Trace format v1: the event model and its JSON-lines reader and writer
//! (see docs/trace-format.md).
pub mod addr;
mod decode;
mod encode;
pub mod error;
pub mod event;
pub mod header;
mod intern;
pub mod kernel_enum;
pub mod reader;
mod scan;
pub mod text;
pub mod writer;

pub use addr::{Addr, AddrParseError};
pub use error::{TraceError, TraceErrorKind};
pub use event::{
    Event, EventBody, EventType, IntervalFinish, IntervalInvalidate, IntervalStart, ItreeEnd, ItreeSnapshot, Lost,
    ProbedCallback, ProbesLive, RangeCall, RangeEnd, RangeStartRet, SubscriberEnd, SubscriberStart, TaskExit, Warn,
};
pub use header::{AttachState, FORMAT_VERSION, Header, Hook};
pub use kernel_enum::{Detector, MmuEvent};
pub use reader::{MAX_LINE_BYTES, TraceReader, parse_event_line};
pub use text::{Comm, Stack, Symbol};
pub use writer::{TraceWriter, event_to_line, write_event_line};
