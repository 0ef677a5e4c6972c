//! Kernel enums as traces carry them: by name where the value is one this version knows, as
//! the number otherwise (a newer kernel's value must survive a round trip).
use serde::{Serialize, Serializer};

probe_common::open_named_enum! {
    /// `enum mmu_notifier_event`. The numbering has been stable since each value was added.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum MmuEvent: u32 {
        Unmap = 0 => "unmap",
        Clear = 1 => "clear",
        ProtectionVma = 2 => "protection_vma",
        ProtectionPage = 3 => "protection_page",
        SoftDirty = 4 => "soft_dirty",
        /// Only for `->release`; never legitimately passed to `__start`.
        Release = 5 => "release",
        Migrate = 6 => "migrate",
        Exclusive = 7 => "exclusive",
    } else {
        /// A value outside the enum.
        Other
    }
}

probe_common::open_named_enum! {
    /// `enum error_detector` of the `error_report_end` tracepoint.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum Detector: u32 {
        Kfence = 0 => "kfence",
        Kasan = 1 => "kasan",
        Warning = 2 => "warning",
    } else {
        /// A value outside the enum.
        Other
    }
}

/// The name, or the number for a value outside the enum.
macro_rules! serialize_by_name {
    ($($kernel_enum:ty),*) => {$(
        impl Serialize for $kernel_enum {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self.name() {
                    Some(name) => serializer.serialize_str(name),
                    None => serializer.serialize_u32(self.raw()),
                }
            }
        }
    )*};
}

serialize_by_name!(MmuEvent, Detector);
