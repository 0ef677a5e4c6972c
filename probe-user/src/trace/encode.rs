//! `Serialize` for [`Event`]: the exact v1 line, keys in a fixed order (`ts`, `type`, the
//! task fields, the type's fields, `stack`), absent optional fields left out.
use serde::{Serialize, Serializer, ser::SerializeMap};

use super::event::{Event, EventBody, ItreeSnapshot, ProbedCallback, RangeCall};

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("ts", &self.ts)?;
        map.serialize_entry("type", self.kind().as_str())?;
        if let Some(cpu) = self.cpu {
            map.serialize_entry("cpu", &cpu)?;
        }
        if let Some(pid) = self.pid {
            map.serialize_entry("pid", &pid)?;
        }
        if let Some(tid) = self.tid() {
            map.serialize_entry("tid", &tid)?;
        }
        if let Some(comm) = &self.comm {
            map.serialize_entry("comm", comm)?;
        }
        match &self.body {
            EventBody::RangeStart(call) => range_call(&mut map, call)?,
            EventBody::RangeStartRet(r) => {
                map.serialize_entry("range", &r.range)?;
                map.serialize_entry("ret", &r.ret)?;
                itree(&mut map, &r.itree)?;
            }
            EventBody::RangeEnd(e) => {
                range_call(&mut map, &e.call)?;
                itree(&mut map, &e.itree)?;
            }
            EventBody::SubscriberStart(s) => {
                if let Some(range) = &s.range {
                    map.serialize_entry("range", range)?;
                }
                map.serialize_entry("mm", &s.mm)?;
                if let Some(sub) = &s.subscriber {
                    map.serialize_entry("subscriber", sub)?;
                }
                map.serialize_entry("callback", &s.callback)?;
                if let Some(has_end) = s.has_end {
                    map.serialize_entry("has_end", &has_end)?;
                }
                if let Some(ret) = s.ret {
                    map.serialize_entry("ret", &ret)?;
                }
                if let Some(start) = &s.start {
                    map.serialize_entry("start", start)?;
                }
                if let Some(end) = &s.end {
                    map.serialize_entry("end", end)?;
                }
            }
            EventBody::SubscriberEnd(s) => {
                map.serialize_entry("range", &s.range)?;
                map.serialize_entry("mm", &s.mm)?;
                map.serialize_entry("subscriber", &s.subscriber)?;
                map.serialize_entry("callback", &s.callback)?;
            }
            EventBody::IntervalInvalidate(i) => {
                map.serialize_entry("range", &i.range)?;
                map.serialize_entry("mm", &i.mm)?;
                map.serialize_entry("subscriber", &i.subscriber)?;
                map.serialize_entry("callback", &i.callback)?;
                map.serialize_entry("cur_seq", &i.cur_seq)?;
                map.serialize_entry("ret", &i.ret)?;
            }
            EventBody::IntervalStart(i) => {
                map.serialize_entry("range", &i.range)?;
                map.serialize_entry("mm", &i.mm)?;
                map.serialize_entry("subscriber", &i.subscriber)?;
                map.serialize_entry("callback", &i.callback)?;
                map.serialize_entry("cur_seq", &i.cur_seq)?;
                map.serialize_entry("finish", &i.finish)?;
                map.serialize_entry("ret", &i.ret)?;
            }
            EventBody::IntervalFinish(i) => {
                map.serialize_entry("mm", &i.mm)?;
                map.serialize_entry("subscriber", &i.subscriber)?;
                map.serialize_entry("callback", &i.callback)?;
                map.serialize_entry("finish", &i.finish)?;
            }
            EventBody::ItreeEnd(i) => {
                map.serialize_entry("mm", &i.mm)?;
                map.serialize_entry("active", &i.active)?;
                map.serialize_entry("seq", &i.seq)?;
            }
            EventBody::Warn(w) => {
                map.serialize_entry("caller", &w.caller)?;
                if let Some(detector) = &w.detector {
                    map.serialize_entry("detector", detector)?;
                }
            }
            EventBody::TaskExit(_) => {}
            EventBody::Lost(l) => map.serialize_entry("count", &l.count)?,
            EventBody::ProbesLive(p) => map.serialize_entry("callbacks", &p.callbacks)?,
        }
        if let Some(stack) = &self.stack {
            map.serialize_entry("stack", stack)?;
        }
        map.end()
    }
}

impl Serialize for ProbedCallback {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("hook", self.hook.as_str())?;
        map.serialize_entry("callback", &self.callback)?;
        if let Some(address) = &self.address {
            map.serialize_entry("address", address)?;
        }
        map.end()
    }
}

fn range_call<M: SerializeMap>(map: &mut M, call: &RangeCall) -> Result<(), M::Error> {
    map.serialize_entry("mm", &call.mm)?;
    map.serialize_entry("range", &call.range)?;
    map.serialize_entry("start", &call.start)?;
    map.serialize_entry("end", &call.end)?;
    map.serialize_entry("event", &call.event)?;
    map.serialize_entry("blockable", &call.blockable)
}

fn itree<M: SerializeMap>(map: &mut M, snapshot: &ItreeSnapshot) -> Result<(), M::Error> {
    if let Some(active) = snapshot.active {
        map.serialize_entry("itree_active", &active)?;
    }
    if let Some(seq) = snapshot.seq {
        map.serialize_entry("itree_seq", &seq)?;
    }
    Ok(())
}
