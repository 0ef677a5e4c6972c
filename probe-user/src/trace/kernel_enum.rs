//! Kernel enums as traces carry them: by name where the value is one this version knows, as
//! the number otherwise (a newer kernel's value must survive a round trip).
use std::fmt;

use serde::{Serialize, Serializer};

/// `enum mmu_notifier_event`. The numbering has been stable since each value was added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MmuEvent {
    Unmap,
    Clear,
    ProtectionVma,
    ProtectionPage,
    SoftDirty,
    /// Only for `->release`; never legitimately passed to `__start`.
    Release,
    Migrate,
    Exclusive,
    /// A value outside the enum.
    Other(u32),
}

impl MmuEvent {
    pub fn from_raw(value: u32) -> MmuEvent {
        match value {
            0 => MmuEvent::Unmap,
            1 => MmuEvent::Clear,
            2 => MmuEvent::ProtectionVma,
            3 => MmuEvent::ProtectionPage,
            4 => MmuEvent::SoftDirty,
            5 => MmuEvent::Release,
            6 => MmuEvent::Migrate,
            7 => MmuEvent::Exclusive,
            other => MmuEvent::Other(other),
        }
    }

    pub fn from_name(name: &str) -> Option<MmuEvent> {
        Some(match name {
            "unmap" => MmuEvent::Unmap,
            "clear" => MmuEvent::Clear,
            "protection_vma" => MmuEvent::ProtectionVma,
            "protection_page" => MmuEvent::ProtectionPage,
            "soft_dirty" => MmuEvent::SoftDirty,
            "release" => MmuEvent::Release,
            "migrate" => MmuEvent::Migrate,
            "exclusive" => MmuEvent::Exclusive,
            _ => return None,
        })
    }

    /// The v1 name, or `None` for a value outside the enum (written as a number).
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            MmuEvent::Unmap => "unmap",
            MmuEvent::Clear => "clear",
            MmuEvent::ProtectionVma => "protection_vma",
            MmuEvent::ProtectionPage => "protection_page",
            MmuEvent::SoftDirty => "soft_dirty",
            MmuEvent::Release => "release",
            MmuEvent::Migrate => "migrate",
            MmuEvent::Exclusive => "exclusive",
            MmuEvent::Other(_) => return None,
        })
    }

    pub fn raw(self) -> u32 {
        match self {
            MmuEvent::Unmap => 0,
            MmuEvent::Clear => 1,
            MmuEvent::ProtectionVma => 2,
            MmuEvent::ProtectionPage => 3,
            MmuEvent::SoftDirty => 4,
            MmuEvent::Release => 5,
            MmuEvent::Migrate => 6,
            MmuEvent::Exclusive => 7,
            MmuEvent::Other(v) => v,
        }
    }
}

impl fmt::Display for MmuEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "{}", self.raw()),
        }
    }
}

impl Serialize for MmuEvent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.name() {
            Some(name) => serializer.serialize_str(name),
            None => serializer.serialize_u32(self.raw()),
        }
    }
}

/// `enum error_detector` of the `error_report_end` tracepoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Detector {
    Kfence,
    Kasan,
    Warning,
    Other(u32),
}

impl Detector {
    pub fn from_raw(value: u32) -> Detector {
        match value {
            0 => Detector::Kfence,
            1 => Detector::Kasan,
            2 => Detector::Warning,
            other => Detector::Other(other),
        }
    }

    pub fn from_name(name: &str) -> Option<Detector> {
        Some(match name {
            "kfence" => Detector::Kfence,
            "kasan" => Detector::Kasan,
            "warning" => Detector::Warning,
            _ => return None,
        })
    }

    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Detector::Kfence => "kfence",
            Detector::Kasan => "kasan",
            Detector::Warning => "warning",
            Detector::Other(_) => return None,
        })
    }

    pub fn raw(self) -> u32 {
        match self {
            Detector::Kfence => 0,
            Detector::Kasan => 1,
            Detector::Warning => 2,
            Detector::Other(v) => v,
        }
    }
}

impl Serialize for Detector {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.name() {
            Some(name) => serializer.serialize_str(name),
            None => serializer.serialize_u32(self.raw()),
        }
    }
}
