//! Makes the kernel's HMM test module (`lib/test_hmm.c`) build and load on a kernel configured
//! without `CONFIG_DEVICE_PRIVATE` (Debian's 6.x): generated from the downloaded source at build
//! time by matching the code it changes, like `revert.rs`, and failing with one line when the
//! source no longer has that shape. Two changes:
//! - the exclusive-access ioctl reports "not supported" instead of calling
//!   `make_device_exclusive_range()`, which such a kernel does not build;
//! - the device-private devices come up without device memory (`memremap_pages()` refuses
//!   `MEMORY_DEVICE_PRIVATE` there); they still mirror, only migrating to them fails. The
//!   coherent devices (`spm_addr_dev*`) are untouched.
use anyhow::{Result, bail};

/// Names the change in stamps and logs.
pub(super) const ID: &str = "test_hmm-without-device-private";

const EXCLUSIVE_CALL: &str = "= make_device_exclusive_range(";
const FIRST_CHUNK: &str = "return dmirror_allocate_chunk(mdevice, NULL);";
const PRIVATE_TYPE: &str = "HMM_DMIRROR_MEMORY_DEVICE_PRIVATE";

/// The edited text of `lib/test_hmm.c`.
pub(super) fn without_device_private(source: &str) -> Result<String> {
    let what = format!("lib/test_hmm.c ({ID})");
    let one = |needle: &str| -> Result<usize> {
        let at: Vec<usize> = source.match_indices(needle).map(|(i, _)| i).collect();
        match at.as_slice() {
            [i] => Ok(*i),
            _ => bail!(
                "{what}: want one `{needle}`, found {}: the source changed, the adaptation cannot be generated",
                at.len()
            ),
        }
    };
    if !source.contains(PRIVATE_TYPE) {
        bail!("{what}: no {PRIVATE_TYPE}: the source has no device types, the adaptation cannot be generated");
    }
    let exclusive = one(EXCLUSIVE_CALL)?;
    let chunk = one(FIRST_CHUNK)?;
    let line = |at: usize| {
        let start = source[..at].rfind('\n').map_or(0, |i| i + 1);
        let end = source[at..].find('\n').map_or(source.len(), |i| at + i + 1);
        (start, end)
    };
    let indent = |start: usize| -> String { source[start..].chars().take_while(|c| c.is_whitespace()).collect() };

    let (x_start, x_end) = line(exclusive);
    let x = indent(x_start);
    let exclusive_text = format!(
        "{x}/* mmnotif test bed: no CONFIG_DEVICE_PRIVATE, no make_device_exclusive_range() */\n\
         {x}mmap_read_unlock(mm);\n{x}mmput(mm);\n{x}return -EOPNOTSUPP;\n"
    );
    let (c_start, c_end) = line(chunk);
    let c = indent(c_start);
    let chunk_text = format!(
        "{c}/* mmnotif test bed: no CONFIG_DEVICE_PRIVATE, a device-private device without memory */\n\
         {c}if (mdevice->zone_device_type == {PRIVATE_TYPE})\n{c}\treturn 0;\n{}",
        &source[c_start..c_end]
    );
    let mut edits = [(x_start, x_end, exclusive_text), (c_start, c_end, chunk_text)];
    edits.sort_by_key(|e| e.0);
    let mut out = String::with_capacity(source.len() + 512);
    let mut at = 0;
    for (start, end, text) in edits {
        out.push_str(&source[at..start]);
        out.push_str(&text);
        at = end;
    }
    out.push_str(&source[at..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A made-up module of the same shape as the kernel's (not its text).
    const SOURCE: &str = "\
enum { HMM_DMIRROR_MEMORY_DEVICE_PRIVATE = 1 };

static int grab(struct mm_struct *mm)
{
\tmmap_read_lock(mm);
\tfor (;;) {
\t\tret = make_device_exclusive_range(mm, a, b, pages, NULL);
\t\tuse(ret);
\t}
\treturn 0;
}

static int init_one(struct dev *mdevice)
{
\tsetup(mdevice);
\treturn dmirror_allocate_chunk(mdevice, NULL);
}
";

    #[test]
    fn exclusive_access_is_refused_and_private_devices_get_no_memory() {
        let out = without_device_private(SOURCE).unwrap();
        assert!(!out.contains(EXCLUSIVE_CALL), "{out}");
        assert!(
            out.contains("\t\tmmap_read_unlock(mm);\n\t\tmmput(mm);\n\t\treturn -EOPNOTSUPP;\n\t\tuse(ret);\n"),
            "{out}"
        );
        assert!(
            out.contains(
                "\tif (mdevice->zone_device_type == HMM_DMIRROR_MEMORY_DEVICE_PRIVATE)\n\t\treturn 0;\n\
                 \treturn dmirror_allocate_chunk(mdevice, NULL);\n}\n"
            ),
            "{out}"
        );
        // Everything else is kept as it was.
        assert!(out.starts_with("enum { HMM_DMIRROR_MEMORY_DEVICE_PRIVATE = 1 };\n\nstatic int grab"));
        // One line became four, and three came before the chunk call.
        assert_eq!(out.lines().count(), SOURCE.lines().count() + 3 + 3);
    }

    #[test]
    fn a_source_of_another_shape_is_refused_in_one_line() {
        let no_call = SOURCE.replace("make_device_exclusive_range(mm, a, b, pages, NULL)", "make_device_exclusive(mm)");
        let err = without_device_private(&no_call).unwrap_err().to_string();
        assert!(err.contains("want one `= make_device_exclusive_range(`, found 0"), "{err}");
        assert!(!err.contains('\n'), "{err}");
        let old = SOURCE.replace("HMM_DMIRROR_MEMORY_DEVICE_PRIVATE", "NOTHING");
        let err = without_device_private(&old).unwrap_err().to_string();
        assert!(err.contains("no HMM_DMIRROR_MEMORY_DEVICE_PRIVATE"), "{err}");
    }
}
