//! The top-level modules of `src/` form layers: following `crate::` paths from one module
//! never leads back to it, so each can be read, tested and changed from the bottom up.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules (a file or directory under src/) and their files; lib.rs and main.rs
/// are the roots, not modules.
fn modules() -> BTreeMap<String, Vec<PathBuf>> {
    let mut modules = BTreeMap::new();
    for entry in fs::read_dir(src()).expect("src/") {
        let path = entry.expect("dir entry").path();
        let name = path.file_stem().and_then(|s| s.to_str()).expect("UTF-8 name").to_owned();
        let mut files = Vec::new();
        if path.is_dir() {
            rust_files(&path, &mut files);
        } else if path.extension().is_some_and(|x| x == "rs") && name != "lib" && name != "main" {
            files.push(path);
        } else {
            continue;
        }
        modules.insert(name, files);
    }
    modules
}

/// The top-level modules that `text` names through `crate::` (plain and in `use crate::{…}`
/// groups); comment lines are skipped.
fn references(text: &str, modules: &BTreeMap<String, Vec<PathBuf>>) -> BTreeSet<String> {
    let code: String = text.lines().filter(|l| !l.trim_start().starts_with("//")).map(|l| format!("{l}\n")).collect();
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of the group: the word after `{` or after a comma at depth 0.
            let mut depth = 0;
            let mut starts = vec![0];
            let mut end = group.len();
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        end = i;
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => starts.push(i + 1),
                    _ => {}
                }
            }
            starts.into_iter().filter(|&s| s < end).map(|s| &group[s..end]).collect()
        } else {
            vec![rest]
        };
        for name in names {
            let word: String = name.trim_start().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if modules.contains_key(&word) {
                found.insert(word);
            }
        }
    }
    found
}

/// A path from `from` back to itself through the graph, if there is one.
fn cycle_through(from: &str, graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    let mut stack = vec![vec![from.to_owned()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = path.last().expect("non-empty path");
        for next in &graph[last] {
            if next == from {
                let mut cycle = path.clone();
                cycle.push(next.clone());
                return Some(cycle);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push(longer);
            }
        }
    }
    None
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let modules = modules();
    assert!(modules.len() >= 20, "src/ looks incomplete: {:?}", modules.keys());
    let graph: BTreeMap<String, BTreeSet<String>> = modules
        .iter()
        .map(|(name, files)| {
            let mut uses = BTreeSet::new();
            for file in files {
                uses.extend(references(&fs::read_to_string(file).expect("read source"), &modules));
            }
            uses.remove(name);
            (name.clone(), uses)
        })
        .collect();
    let cycles: Vec<String> = graph.keys().filter_map(|m| cycle_through(m, &graph)).map(|c| c.join(" -> ")).collect();
    assert!(cycles.is_empty(), "import cycles between top-level modules:\n{}", cycles.join("\n"));
}

#[test]
fn references_reads_plain_paths_and_use_groups() {
    let modules: BTreeMap<String, Vec<PathBuf>> =
        ["clock", "loader", "trace", "workload"].into_iter().map(|m| (m.to_owned(), Vec::new())).collect();
    let text = "use crate::{\n    clock::monotonic_ns,\n    loader::{A, b::C},\n};\n// crate::workload in a comment\nlet x = crate::trace::Event::new();\n";
    assert_eq!(references(text, &modules), ["clock", "loader", "trace"].map(String::from).into());
}
