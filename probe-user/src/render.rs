//! One-line text rendering of trace events for `stream --format text`, and of the checker's
//! verdict at the end of a live session.

use std::fmt::Write;

use crate::{
    checker::Report,
    trace::{Event, EventBody},
};

pub(crate) fn event_text(e: &Event) -> String {
    let mut s = String::with_capacity(128);
    let _ = write!(s, "{:>6}.{:06} ", e.ts / 1_000_000_000, (e.ts / 1000) % 1_000_000);
    if let Some(cpu) = e.cpu {
        let _ = write!(s, "cpu{cpu} ");
    }
    let tid = e.tid().map(|t| t.to_string()).unwrap_or_else(|| "-".into());
    let _ = write!(
        s,
        "{}/{} {:<16} ",
        e.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
        tid,
        e.comm.as_ref().map(|c| c.as_str()).unwrap_or("-")
    );
    match &e.body {
        EventBody::RangeStart(c) => {
            let _ = write!(
                s,
                "range_start  {} [{}, {}) {} {} mm {}",
                c.range,
                c.start,
                c.end,
                c.event,
                if c.blockable { "blockable" } else { "non-blockable" },
                c.mm
            );
        }
        EventBody::RangeStartRet(r) => {
            let _ = write!(s, "range_start_ret {} ret {}", r.range, r.ret);
        }
        EventBody::RangeEnd(r) => {
            let c = &r.call;
            let _ = write!(s, "range_end    {} [{}, {}) {} mm {}", c.range, c.start, c.end, c.event, c.mm);
        }
        EventBody::SubscriberStart(x) => {
            let _ = write!(s, "subscriber_start {}", x.callback);
            if let (Some(a), Some(b)) = (x.start, x.end) {
                let _ = write!(s, " [{a}, {b})");
            }
            if let Some(r) = x.range {
                let _ = write!(s, " range {r}");
            }
            if let Some(ret) = x.ret {
                let _ = write!(s, " ret {ret}");
            }
            let _ = write!(s, " mm {}", x.mm);
        }
        EventBody::SubscriberEnd(x) => {
            let _ = write!(s, "subscriber_end {} range {} mm {}", x.callback, x.range, x.mm);
        }
        EventBody::IntervalInvalidate(x) => {
            let _ =
                write!(s, "interval_invalidate {} range {} cur_seq {} ret {}", x.callback, x.range, x.cur_seq, x.ret);
        }
        EventBody::IntervalStart(x) => {
            let _ = write!(
                s,
                "interval_start {} range {} cur_seq {} finish {} ret {}",
                x.callback, x.range, x.cur_seq, x.finish, x.ret
            );
        }
        EventBody::IntervalFinish(x) => {
            let _ = write!(s, "interval_finish {} finish {} subscriber {}", x.callback, x.finish, x.subscriber);
        }
        EventBody::ItreeEnd(x) => {
            let _ = write!(s, "itree_end mm {} active {} seq {}", x.mm, x.active, x.seq);
        }
        EventBody::Warn(w) => {
            let det = w.detector.map(|d| d.to_string()).unwrap_or_default();
            let _ = write!(s, "warn {} {}", det, w.caller);
        }
        EventBody::TaskExit(_) => s.push_str("task_exit"),
        EventBody::Lost(l) => {
            let _ = write!(s, "LOST {} events (pairing results around here are incomplete)", l.count);
        }
        EventBody::ProbesLive(p) => {
            s.push_str("probes_live");
            for (i, c) in p.callbacks.iter().enumerate() {
                let _ = write!(s, "{} {} {}", if i == 0 { "" } else { "," }, c.hook, c.callback);
            }
        }
    }
    s
}

/// The checker's verdict in one line for the end of a live session (`replay` prints it all).
pub(crate) fn report_line(report: &Report) -> String {
    let counts: Vec<String> = report.violation_counts.iter().map(|(rule, n)| format!("{rule}={n}")).collect();
    format!(
        "verdict {}: {} violations{}; {} of {} rules checked{}",
        report.verdict,
        report.violation_counts.values().sum::<u64>(),
        if counts.is_empty() { String::new() } else { format!(" ({})", counts.join(", ")) },
        report.checked.len(),
        crate::checker::RuleId::ALL.len(),
        if report.lost > 0 { format!(", {} events lost", report.lost) } else { String::new() },
    )
}
