//! `docs/kernel-matrix.md`: which method each hook attached with on each test-bed kernel, as the
//! guests measured it. Read from what every guest run sends back (`logs/<kernel>-files/`): the
//! tracer's `probe --format json` (what `--attach auto` picks, and why a hook is unavailable)
//! and the headers of its recordings under `--attach fentry` and `--attach kprobe`.
use super::kernels::KERNELS;
use super::paths::Paths;
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub(crate) const DOC: &str = "docs/kernel-matrix.md";

/// The cell of a hook whose kernel lacks what it observes (not a refused attach).
const ABSENT: &str = "absent";

/// What one kernel's guest run measured.
struct Measured {
    kernel: &'static str,
    release: String,
    /// hook → methods it attached with (auto first, then the forced runs), or why it did not.
    hooks: BTreeMap<String, Result<Vec<String>, String>>,
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))
}

/// The `attach` map in the first line of a recording.
fn recording_attach(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let first = text.lines().next().with_context(|| format!("{}: empty", path.display()))?;
    let header: Value =
        serde_json::from_str(first).with_context(|| format!("{}:1: not a trace header", path.display()))?;
    let attach = header["attach"].as_object().with_context(|| format!("{}:1: no attach map", path.display()))?;
    Ok(attach.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
}

fn measure(kernel: &'static str, dir: &Path) -> Result<Measured> {
    let probe = read_json(&dir.join("probe.json"))?;
    let release = probe["kernel"].as_str().unwrap_or("?").to_string();
    let mut hooks: BTreeMap<String, Result<Vec<String>, String>> = BTreeMap::new();
    for h in probe["attach"]["hooks"].as_array().into_iter().flatten() {
        let name = h["hook"].as_str().unwrap_or("?").to_string();
        let entry = match (h["method"].as_str(), h["absent"].as_str()) {
            (Some(m), _) => Ok(vec![m.to_string()]),
            // The kernel has nothing for the hook to observe (e.g. two-pass interval ops before 7.2).
            (None, Some(why)) => Err(format!("{ABSENT}: {why}")),
            (None, None) => Err(h["refused"]
                .as_array()
                .and_then(|r| r.first())
                .map(|r| format!("{}: {}", r["method"].as_str().unwrap_or("?"), r["reason"].as_str().unwrap_or("?")))
                .unwrap_or_else(|| "unavailable".into())),
        };
        hooks.insert(name, entry);
    }
    // The forced runs: every recording of this kernel, by method.
    for forced in ["fentry", "kprobe"] {
        let Some(rec) = std::fs::read_dir(dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{forced}-")) && n.ends_with(".jsonl"))
            })
        else {
            bail!("{}: no recording made with --attach {forced}", dir.display());
        };
        for (hook, method) in recording_attach(&rec)? {
            if method.starts_with("unavailable") {
                continue;
            }
            if let Ok(methods) = hooks.entry(hook).or_insert_with(|| Ok(Vec::new()))
                && !methods.contains(&method)
            {
                methods.push(method);
            }
        }
    }
    Ok(Measured { kernel, release, hooks })
}

/// The last guest run of every kernel; a built-from-source kernel only once it has been run.
fn measure_all(paths: &Paths) -> Result<Vec<Measured>> {
    let mut measured = Vec::new();
    for k in KERNELS {
        let dir = paths.logs().join(format!("{}-files", k.name));
        if k.build.is_some() && !dir.is_dir() {
            continue;
        }
        measured.push(measure(k.name, &dir).with_context(|| {
            format!("no complete guest run of kernel {} (run `cargo xtask vm --with-binary …` first)", k.name)
        })?);
    }
    Ok(measured)
}

/// One cell: the methods a hook attached with on a kernel, `—` if unavailable (with the note
/// saying why), `not tried` if the tracer had no reason to try it (a fallback not needed).
fn cell(m: &Measured, hook: &str) -> (String, Option<String>) {
    match m.hooks.get(hook) {
        Some(Ok(methods)) if !methods.is_empty() => (methods.join(", "), None),
        Some(Err(reason)) => {
            let text = if reason.starts_with(ABSENT) { ABSENT } else { "—" };
            (text.to_string(), Some(format!("- `{hook}` on {}: {reason}", m.kernel)))
        }
        _ => ("not tried".to_string(), None),
    }
}

/// The table (one row per hook, one column per kernel) and the notes on its `—` cells.
fn table(measured: &[Measured]) -> (String, Vec<String>) {
    let mut hooks: Vec<&String> = measured.iter().flat_map(|m| m.hooks.keys()).collect();
    hooks.sort();
    hooks.dedup();
    let mut out = String::from("| hook |");
    for m in measured {
        out.push_str(&format!(" {} (`{}`) |", m.kernel, m.release));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(measured.len()));
    out.push('\n');
    let mut notes = Vec::new();
    for hook in hooks {
        out.push_str(&format!("| `{hook}` |"));
        for m in measured {
            let (text, note) = cell(m, hook);
            notes.extend(note);
            out.push_str(&format!(" {text} |"));
        }
        out.push('\n');
    }
    (out, notes)
}

/// The README's copy of the table sits between these two lines.
const README_BEGIN: &str = "<!-- kernel-matrix: generated by `cargo xtask matrix` from the guest runs; do not edit -->";
const README_END: &str = "<!-- end of kernel-matrix -->";

/// Writes `docs/kernel-matrix.md` and the README's copy of its table from the last guest run of
/// every kernel; fails naming a kernel without one.
pub(crate) fn write(paths: &Paths) -> Result<PathBuf> {
    let measured = measure_all(paths)?;
    let (table, notes) = table(&measured);
    let mut out = String::from(
        "# Kernel × hook × method\n\n\
         Generated by `cargo xtask matrix` from the guest suite's own results (`probe --format json` and the\n\
         recordings made with `--attach fentry` and `--attach kprobe` in each guest); do not edit by hand.\n\
         A cell lists the methods the hook attached with: the one `--attach auto` picks first, then the\n\
         others seen. `—` means the hook was unavailable on that kernel, `absent` that the kernel has\n\
         nothing for it to observe (the reasons are in the notes);\n\
         `not tried` means the tracer had no reason to try it there. `cargo xtask test` fails when its\n\
         guests measure something other than this table.\n\n",
    );
    out.push_str(&table);
    if !notes.is_empty() {
        out.push_str(
            "\nWhy a hook was unavailable or absent (the first method refused, as the tracer reported it):\n\n",
        );
        out.push_str(&notes.join("\n"));
        out.push('\n');
    }
    out.push_str(
        "\n`kvm_unmap_hva_range` is a tracepoint of the kvm module: in the guests the module is loaded only\n\
         for the KVM scenario, after `probe` ran, so the table shows it unavailable wherever the module\n\
         was not loaded yet; `warn` is the `__warn` probe used only where `error_report_end` is missing.\n",
    );
    let path = paths.root.join(DOC);
    std::fs::write(&path, out).with_context(|| format!("cannot write {}", path.display()))?;
    let readme = paths.root.join("README.md");
    let text = std::fs::read_to_string(&readme).with_context(|| format!("cannot read {}", readme.display()))?;
    let (Some(begin), Some(end)) = (text.find(README_BEGIN), text.find(README_END)) else {
        bail!("{}: no `{README_BEGIN}` … `{README_END}` block for the table", readme.display());
    };
    if end < begin {
        bail!("{}: `{README_END}` comes before `{README_BEGIN}`", readme.display());
    }
    let text = format!("{}\n{table}{}", &text[..begin + README_BEGIN.len()], &text[end..]);
    std::fs::write(&readme, text).with_context(|| format!("cannot write {}", readme.display()))?;
    Ok(path)
}

/// The committed table's cells by (hook, kernel), each with its line number.
fn committed_cells(doc: &str) -> BTreeMap<(String, String), (usize, String)> {
    let mut kernels: Vec<String> = Vec::new();
    let mut cells = BTreeMap::new();
    for (n, line) in doc.lines().enumerate() {
        let cols: Vec<&str> = line.trim().trim_matches('|').split('|').map(str::trim).collect();
        if !line.starts_with('|') || cols.len() < 2 || cols[0].starts_with("---") {
            continue;
        }
        if cols[0] == "hook" {
            kernels = cols[1..].iter().map(|c| c.split(" (").next().unwrap_or(c).to_string()).collect();
            continue;
        }
        let hook = cols[0].trim_matches('`').to_string();
        for (kernel, text) in kernels.iter().zip(&cols[1..]) {
            cells.insert((hook.clone(), kernel.clone()), (n + 1, (*text).to_string()));
        }
    }
    cells
}

/// Checks that the committed `docs/kernel-matrix.md` says what the guest runs of `kernels` just
/// measured, cell by cell (kernel releases aside: the mirror moves them); the first difference
/// is the error, with the doc's file:line.
pub(crate) fn verify(paths: &Paths, kernels: &[&str]) -> Result<()> {
    let path = paths.root.join(DOC);
    let doc = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let committed = committed_cells(&doc);
    for k in KERNELS.iter().filter(|k| kernels.contains(&k.name)) {
        let m = measure(k.name, &paths.logs().join(format!("{}-files", k.name)))?;
        let mut hooks: Vec<&str> = m.hooks.keys().map(String::as_str).collect();
        hooks.extend(committed.keys().filter(|(_, kernel)| kernel == k.name).map(|(h, _)| h.as_str()));
        hooks.sort();
        hooks.dedup();
        for hook in hooks {
            let measured = cell(&m, hook).0;
            match committed.get(&(hook.to_string(), k.name.to_string())) {
                Some((_, text)) if *text == measured => {}
                Some((line, text)) => bail!(
                    "{DOC}:{line}: `{hook}` on {} says `{text}`, the guest measured `{measured}` (run `cargo xtask matrix`)",
                    k.name
                ),
                None => bail!(
                    "{DOC}: no cell for `{hook}` on {}, the guest measured `{measured}` (run `cargo xtask matrix`)",
                    k.name
                ),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured() -> Measured {
        let mut hooks = BTreeMap::new();
        hooks.insert("range_start".to_string(), Ok(vec!["fentry".to_string(), "kprobe".to_string()]));
        hooks.insert("warn".to_string(), Err("tp_btf: unknown BTF type".to_string()));
        Measured { kernel: "5.10", release: "5.10.0-46-amd64".to_string(), hooks }
    }

    #[test]
    fn the_committed_table_reads_back_cell_by_cell() {
        let (table, notes) = table(&[measured()]);
        let doc = format!("# title\n\n{table}\n{}\n", notes.join("\n"));
        let cells = committed_cells(&doc);
        assert_eq!(cells[&("range_start".to_string(), "5.10".to_string())].1, "fentry, kprobe");
        assert_eq!(cells[&("warn".to_string(), "5.10".to_string())], (6, "—".to_string()));
        assert_eq!(cells.len(), 2);
        assert_eq!(notes, ["- `warn` on 5.10: tp_btf: unknown BTF type"]);
    }

    #[test]
    fn a_hook_the_kernel_did_not_report_is_not_tried() {
        assert_eq!(cell(&measured(), "interval_start").0, "not tried");
    }
}
