//! Trace format v1: the event model and its JSON-lines reader and writer
//! (see docs/trace-format.md).
pub mod addr;
mod decode;
mod encode;
pub mod error;
pub mod event;
pub mod header;
pub mod reader;
pub mod writer;

pub use addr::{Addr, AddrParseError};
pub use error::{TraceError, TraceErrorKind};
pub use event::{
    Comm, Detector, Event, EventBody, EventType, IntervalFinish, IntervalInvalidate, IntervalStart, ItreeEnd,
    ItreeSnapshot, Lost, MmuEvent, ProbedCallback, ProbesLive, RangeCall, RangeEnd, RangeStartRet, SubscriberEnd,
    SubscriberStart, Symbol, TaskExit, Warn,
};
pub use header::{AttachState, FORMAT_VERSION, Header, Hook};
pub use reader::{MAX_LINE_BYTES, TraceReader, parse_event_line};
pub use writer::{TraceWriter, event_to_line};
