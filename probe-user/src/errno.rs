//! Kernel return values as errno names, for the checker's messages and the metrics' labels.

/// `-EAGAIN`, the only failure a start may return.
pub(crate) const EAGAIN: i64 = -11;

/// `-11 (-EAGAIN)` style rendering of a kernel return value.
pub(crate) fn errno_name(ret: i64) -> String {
    match errno_symbol(ret) {
        Some(name) => format!("{ret} (-{name})"),
        None => ret.to_string(),
    }
}

/// The symbolic name of a negative errno a start may plausibly return (`-11` → `EAGAIN`).
pub(crate) fn errno_symbol(ret: i64) -> Option<&'static str> {
    Some(match ret.checked_neg()? {
        1 => "EPERM",
        4 => "EINTR",
        11 => "EAGAIN",
        12 => "ENOMEM",
        14 => "EFAULT",
        16 => "EBUSY",
        22 => "EINVAL",
        _ => return None,
    })
}
