//! One JSON line → [`Event`]. Lines are first read into a flat struct of optional fields
//! (cheap for serde_json: no tag buffering, strings borrowed from the line), then checked
//! against the fields the line's `type` requires.
use std::{borrow::Cow, fmt};

use serde::{
    Deserialize, Deserializer,
    de::{self, Visitor},
};

use super::{addr::Addr, event::*, header::Hook, intern::Interner, kernel_enum::*, scan::scan, text::Stack};

#[derive(Deserialize, Default)]
pub(super) struct WireEvent<'a> {
    pub(super) ts: Option<u64>,
    #[serde(rename = "type", borrow)]
    pub(super) kind: Option<Cow<'a, str>>,
    pub(super) cpu: Option<u32>,
    pub(super) pid: Option<u32>,
    pub(super) tid: Option<u32>,
    #[serde(borrow)]
    pub(super) comm: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) mm: Option<WireAddr<'a>>,
    #[serde(borrow)]
    pub(super) range: Option<WireAddr<'a>>,
    #[serde(borrow)]
    pub(super) start: Option<WireAddr<'a>>,
    #[serde(borrow)]
    pub(super) end: Option<WireAddr<'a>>,
    #[serde(borrow)]
    pub(super) subscriber: Option<WireAddr<'a>>,
    #[serde(borrow)]
    pub(super) event: Option<WireEnum<'a>>,
    pub(super) blockable: Option<bool>,
    pub(super) ret: Option<WireRet>,
    pub(super) itree_active: Option<u64>,
    pub(super) itree_seq: Option<u64>,
    #[serde(borrow)]
    pub(super) callback: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) caller: Option<Cow<'a, str>>,
    pub(super) has_end: Option<bool>,
    pub(super) cur_seq: Option<u64>,
    #[serde(borrow)]
    pub(super) finish: Option<WireAddr<'a>>,
    pub(super) active: Option<u64>,
    pub(super) seq: Option<u64>,
    pub(super) count: Option<u64>,
    #[serde(borrow)]
    pub(super) detector: Option<WireEnum<'a>>,
    #[serde(borrow)]
    pub(super) stack: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow)]
    pub(super) callbacks: Option<Vec<WireProbedCallback<'a>>>,
    /// `stack` as the scanner leaves it: the text between the brackets of an array of plain
    /// strings (see [`stack_frames`]); serde_json fills `stack` instead.
    #[serde(skip)]
    pub(super) raw_stack: Option<&'a str>,
    /// `stack` when the scanner found its text among the interner's stacks.
    #[serde(skip)]
    pub(super) known_stack: Option<Stack>,
}

/// One entry of `probes_live`'s `callbacks`.
#[derive(Deserialize)]
pub(super) struct WireProbedCallback<'a> {
    #[serde(borrow)]
    hook: Option<Cow<'a, str>>,
    #[serde(borrow)]
    callback: Option<Cow<'a, str>>,
    #[serde(borrow)]
    address: Option<Cow<'a, str>>,
}

/// `event` and `detector`: a name or a number.
pub(super) enum WireEnum<'a> {
    Name(Cow<'a, str>),
    Number(u64),
}

impl<'de: 'a, 'a> Deserialize<'de> for WireEnum<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WireEnum<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a name or a non-negative number")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<WireEnum<'de>, E> {
                Ok(WireEnum::Name(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<WireEnum<'de>, E> {
                Ok(WireEnum::Name(Cow::Owned(v.to_owned())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<WireEnum<'de>, E> {
                Ok(WireEnum::Number(v))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// An address field: its text as serde_json gives it, or its value when the scanner read it
/// straight from the line (text [`Addr::parse`] would accept, giving the same value).
pub(super) enum WireAddr<'a> {
    Text(Cow<'a, str>),
    Value(Addr),
}

/// A string borrowed from the line where it can be (serde's `borrow` on a `Cow`).
#[derive(Deserialize)]
struct WireText<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for WireAddr<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        WireText::deserialize(deserializer).map(|t| WireAddr::Text(t.0))
    }
}

/// `ret`: an errno-style integer, or a bool for `interval_invalidate`.
pub(super) enum WireRet {
    Int(i64),
    Bool(bool),
}

impl<'de> Deserialize<'de> for WireRet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = WireRet;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or a bool")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<WireRet, E> {
                Ok(WireRet::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<WireRet, E> {
                i64::try_from(v).map(WireRet::Int).map_err(|_| E::custom("ret out of range"))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<WireRet, E> {
                Ok(WireRet::Bool(v))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A line decoder: [`decode_event`], or [`decode_event_reference`] in tests.
pub(crate) type DecodeFn = fn(&str, &mut Interner) -> Result<Event, DecodeError>;

/// Decodes one event line; the error is a message without location. Lines the scanner
/// handles skip serde_json (same result, several times faster).
pub(crate) fn decode_event(line: &str, interner: &mut Interner) -> Result<Event, DecodeError> {
    match scan(line, interner) {
        Some(wire) => event_from_wire(&wire, interner),
        None => decode_event_reference(line, interner),
    }
}

/// Decodes one event line with serde_json alone: the reference the fast path must agree with.
pub(crate) fn decode_event_reference(line: &str, interner: &mut Interner) -> Result<Event, DecodeError> {
    let wire: WireEvent<'_> = serde_json::from_str(line).map_err(|e| DecodeError::Json(e.to_string()))?;
    event_from_wire(&wire, interner)
}

/// The frames of a scanned `stack`: its text holds only plain strings, commas and whitespace,
/// so the frames are the odd pieces between quotes.
fn stack_frames(raw: &str) -> impl Iterator<Item = &str> {
    raw.split('"').skip(1).step_by(2)
}

fn event_from_wire(wire: &WireEvent<'_>, interner: &mut Interner) -> Result<Event, DecodeError> {
    let kind_name = wire.kind.as_deref().ok_or(DecodeError::Bad("missing field `type`".into()))?;
    let kind =
        EventType::from_name(kind_name).ok_or_else(|| DecodeError::Bad(format!("unknown event type {kind_name:?}")))?;
    let ts = wire.ts.ok_or_else(|| missing(kind, "ts"))?;
    let f = Fields { wire, kind };
    let body = match kind {
        EventType::RangeStart => EventBody::RangeStart(f.range_call()?),
        EventType::RangeEnd => EventBody::RangeEnd(RangeEnd { call: f.range_call()?, itree: f.itree() }),
        EventType::RangeStartRet => EventBody::RangeStartRet(RangeStartRet {
            tid: f.tid()?,
            range: f.addr("range", &wire.range)?,
            ret: f.int_ret()?,
            itree: f.itree(),
        }),
        EventType::SubscriberStart => EventBody::SubscriberStart(SubscriberStart {
            tid: f.tid()?,
            mm: f.addr("mm", &wire.mm)?,
            range: f.opt_addr("range", &wire.range)?,
            subscriber: f.opt_addr("subscriber", &wire.subscriber)?,
            callback: interner.symbol(f.text("callback", &wire.callback)?),
            has_end: wire.has_end,
            ret: match &wire.ret {
                None => None,
                Some(_) => Some(f.int_ret()?),
            },
            start: f.opt_addr("start", &wire.start)?,
            end: f.opt_addr("end", &wire.end)?,
        }),
        EventType::SubscriberEnd => EventBody::SubscriberEnd(SubscriberEnd {
            tid: f.tid()?,
            mm: f.addr("mm", &wire.mm)?,
            range: f.addr("range", &wire.range)?,
            subscriber: f.addr("subscriber", &wire.subscriber)?,
            callback: interner.symbol(f.text("callback", &wire.callback)?),
        }),
        EventType::IntervalInvalidate => EventBody::IntervalInvalidate(IntervalInvalidate {
            tid: f.tid()?,
            mm: f.addr("mm", &wire.mm)?,
            range: f.addr("range", &wire.range)?,
            subscriber: f.addr("subscriber", &wire.subscriber)?,
            callback: interner.symbol(f.text("callback", &wire.callback)?),
            cur_seq: wire.cur_seq.ok_or_else(|| missing(kind, "cur_seq"))?,
            ret: f.bool_ret()?,
        }),
        EventType::IntervalStart => EventBody::IntervalStart(IntervalStart {
            tid: f.tid()?,
            mm: f.addr("mm", &wire.mm)?,
            range: f.addr("range", &wire.range)?,
            subscriber: f.addr("subscriber", &wire.subscriber)?,
            callback: interner.symbol(f.text("callback", &wire.callback)?),
            cur_seq: wire.cur_seq.ok_or_else(|| missing(kind, "cur_seq"))?,
            finish: f.addr("finish", &wire.finish)?,
            ret: f.bool_ret()?,
        }),
        EventType::IntervalFinish => EventBody::IntervalFinish(IntervalFinish {
            tid: f.tid()?,
            mm: f.addr("mm", &wire.mm)?,
            subscriber: f.addr("subscriber", &wire.subscriber)?,
            callback: interner.symbol(f.text("callback", &wire.callback)?),
            finish: f.addr("finish", &wire.finish)?,
        }),
        EventType::ItreeEnd => EventBody::ItreeEnd(ItreeEnd {
            tid: f.tid()?,
            mm: f.addr("mm", &wire.mm)?,
            active: wire.active.ok_or_else(|| missing(kind, "active"))?,
            seq: wire.seq.ok_or_else(|| missing(kind, "seq"))?,
        }),
        EventType::Warn => EventBody::Warn(Warn {
            tid: f.tid()?,
            caller: interner.symbol(f.text("caller", &wire.caller)?),
            detector: match &wire.detector {
                None => None,
                Some(WireEnum::Number(n)) => Some(Detector::from_raw(u32::try_from(*n).unwrap_or(u32::MAX))),
                Some(WireEnum::Name(name)) => Some(
                    Detector::from_name(name)
                        .ok_or_else(|| DecodeError::Bad(format!("warn: unknown detector {name:?}")))?,
                ),
            },
        }),
        EventType::TaskExit => EventBody::TaskExit(TaskExit { tid: f.tid()? }),
        EventType::Lost => EventBody::Lost(Lost { count: wire.count.ok_or_else(|| missing(kind, "count"))? }),
        EventType::ProbesLive => EventBody::ProbesLive(f.probes_live(interner)?),
    };
    // range_start/range_end always carry the task; elsewhere these are optional extras.
    if matches!(kind, EventType::RangeStart | EventType::RangeEnd) {
        for (name, present) in [("cpu", wire.cpu.is_some()), ("pid", wire.pid.is_some()), ("comm", wire.comm.is_some())]
        {
            if !present {
                return Err(missing(kind, name));
            }
        }
    }
    Ok(Event {
        ts,
        seq: None,
        cpu: wire.cpu,
        pid: wire.pid,
        comm: wire.comm.as_deref().map(|c| interner.comm(c)),
        stack: match (&wire.known_stack, wire.raw_stack, &wire.stack) {
            (Some(known), _, _) => Some(known.clone()),
            (None, Some(raw), _) => Some(interner.stack(raw, stack_frames(raw))),
            (None, None, Some(frames)) => Some(frames.iter().map(|s| interner.symbol(s)).collect()),
            (None, None, None) => None,
        },
        body,
    })
}

#[derive(Debug)]
pub(crate) enum DecodeError {
    Json(String),
    Bad(String),
}

fn missing(kind: EventType, field: &str) -> DecodeError {
    DecodeError::Bad(format!("{kind}: missing field `{field}`"))
}

struct Fields<'w, 'a> {
    wire: &'w WireEvent<'a>,
    kind: EventType,
}

impl Fields<'_, '_> {
    fn tid(&self) -> Result<u32, DecodeError> {
        self.wire.tid.ok_or_else(|| missing(self.kind, "tid"))
    }

    fn text<'t>(&self, name: &str, value: &'t Option<Cow<'_, str>>) -> Result<&'t str, DecodeError> {
        value.as_deref().ok_or_else(|| missing(self.kind, name))
    }

    fn addr(&self, name: &str, value: &Option<WireAddr<'_>>) -> Result<Addr, DecodeError> {
        self.opt_addr(name, value)?.ok_or_else(|| missing(self.kind, name))
    }

    fn opt_addr(&self, name: &str, value: &Option<WireAddr<'_>>) -> Result<Option<Addr>, DecodeError> {
        match value {
            None => Ok(None),
            Some(WireAddr::Value(addr)) => Ok(Some(*addr)),
            Some(WireAddr::Text(text)) => {
                Addr::parse(text).map(Some).map_err(|e| DecodeError::Bad(format!("{}: field `{name}`: {e}", self.kind)))
            }
        }
    }

    fn int_ret(&self) -> Result<i64, DecodeError> {
        match self.wire.ret {
            Some(WireRet::Int(v)) => Ok(v),
            Some(WireRet::Bool(_)) => Err(DecodeError::Bad(format!("{}: `ret` must be an integer", self.kind))),
            None => Err(missing(self.kind, "ret")),
        }
    }

    fn bool_ret(&self) -> Result<bool, DecodeError> {
        match self.wire.ret {
            Some(WireRet::Bool(b)) => Ok(b),
            Some(WireRet::Int(_)) => Err(DecodeError::Bad(format!("{}: `ret` must be a bool", self.kind))),
            None => Err(missing(self.kind, "ret")),
        }
    }

    fn itree(&self) -> ItreeSnapshot {
        ItreeSnapshot { active: self.wire.itree_active, seq: self.wire.itree_seq }
    }

    fn probes_live(&self, interner: &mut Interner) -> Result<ProbesLive, DecodeError> {
        let entries = self.wire.callbacks.as_ref().ok_or_else(|| missing(self.kind, "callbacks"))?;
        let mut callbacks = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let bad = |what: String| DecodeError::Bad(format!("{}: callbacks[{i}]: {what}", self.kind));
            let hook_name = entry.hook.as_deref().ok_or_else(|| bad("missing field `hook`".into()))?;
            let hook = Hook::from_name(hook_name)
                .filter(|h| ProbedCallback::HOOKS.contains(h))
                .ok_or_else(|| bad(format!("`hook` {hook_name:?} is not a subscriber callback hook (subscriber_start, subscriber_end, interval_invalidate, interval_start, interval_finish)")))?;
            let callback = entry.callback.as_deref().ok_or_else(|| bad("missing field `callback`".into()))?;
            let address = match entry.address.as_deref() {
                None => None,
                Some(text) => Some(Addr::parse(text).map_err(|e| bad(format!("field `address`: {e}")))?),
            };
            callbacks.push(ProbedCallback { hook, callback: interner.symbol(callback), address });
        }
        Ok(ProbesLive { callbacks })
    }

    fn range_call(&self) -> Result<RangeCall, DecodeError> {
        let w = self.wire;
        Ok(RangeCall {
            tid: self.tid()?,
            mm: self.addr("mm", &w.mm)?,
            range: self.addr("range", &w.range)?,
            start: self.addr("start", &w.start)?,
            end: self.addr("end", &w.end)?,
            event: match &w.event {
                None => return Err(missing(self.kind, "event")),
                Some(WireEnum::Number(n)) => MmuEvent::from_raw(u32::try_from(*n).unwrap_or(u32::MAX)),
                Some(WireEnum::Name(name)) => MmuEvent::from_name(name)
                    .ok_or_else(|| DecodeError::Bad(format!("{}: unknown event {name:?}", self.kind)))?,
            },
            blockable: w.blockable.ok_or_else(|| missing(self.kind, "blockable"))?,
        })
    }
}
