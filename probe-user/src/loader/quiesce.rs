//! Stopping the kernel side before the last drain. While any event program is attached, the
//! kernel keeps emitting: a drain followed by a read of its counters would count records
//! emitted in between as attempted, never received and never lost. Detaching first makes the
//! closing figures add up (emitted = received + lost).

use aya::{Ebpf, programs::Program};

/// Detaches and unloads every program that writes events (probes and tracepoints), keeping the
/// iterators the inventory still runs after the trace.
pub fn detach_event_programs(ebpf: &mut Ebpf) {
    for (name, program) in ebpf.programs_mut() {
        // Best effort: a program that fails to unload is dropped with the object anyway.
        let result = match program {
            Program::KProbe(p) => p.unload(),
            Program::FEntry(p) => p.unload(),
            Program::FExit(p) => p.unload(),
            Program::BtfTracePoint(p) => p.unload(),
            Program::RawTracePoint(p) => p.unload(),
            _ => Ok(()),
        };
        if let Err(e) = result {
            log::debug!("unloading {name}: {e}");
        }
    }
}
