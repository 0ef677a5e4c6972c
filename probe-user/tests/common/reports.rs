//! For the `check` tests: the validators of the JUnit and JSON reports (xmllint against
//! docs/check/junit.xsd, the jsonschema crate against docs/check/report.schema.json) and a
//! scratch directory per test.

use std::{path::Path, process::Command};

use serde_json::Value;

fn docs(file: &str) -> String {
    format!("{}/../docs/check/{file}", env!("CARGO_MANIFEST_DIR"))
}

/// Validates a JUnit file with xmllint against the schema in the repository.
pub(crate) fn validate_junit(path: &Path) -> Result<(), String> {
    let out = Command::new("xmllint")
        .args(["--noout", "--schema", &docs("junit.xsd")])
        .arg(path)
        .output()
        .map_err(|e| format!("xmllint: {e} (scripts/setup.sh installs libxml2-utils)"))?;
    if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) }
}

/// Validates a JSON report against the documented schema; returns every error.
pub(crate) fn validate_json(report: &Value) -> Result<(), String> {
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(docs("report.schema.json")).map_err(|e| e.to_string())?)
            .map_err(|e| format!("the schema is not JSON: {e}"))?;
    let validator = jsonschema::validator_for(&schema).map_err(|e| format!("the schema does not compile: {e}"))?;
    let errors: Vec<String> = validator.iter_errors(report).map(|e| format!("{}: {e}", e.instance_path())).collect();
    if errors.is_empty() { Ok(()) } else { Err(errors.join("\n")) }
}

/// Every JUnit `<testcase name=…>`, in order.
pub(crate) fn junit_testcase_names(xml: &str) -> Vec<String> {
    xml.match_indices("<testcase name=\"")
        .filter_map(|(at, m)| {
            let rest = &xml[at + m.len()..];
            rest.find('"').map(|end| rest[..end].to_owned())
        })
        .collect()
}

/// A private scratch directory for one test.
pub(crate) fn scratch(name: &str) -> std::path::PathBuf {
    // Unique per call: tests running in parallel may replay the same trace.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("mmnotif-check-{}-{n}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}
