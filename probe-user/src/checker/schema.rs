//! `docs/check/report.schema.json`'s rule enum (`$defs/rule`) is generated from the rule table:
//! the test below fails when the committed file differs from what the table writes, and with
//! `MMNOTIF_BLESS=1` (what `cargo xtask schema` sets) it rewrites the file instead.
use std::{fs, path::PathBuf};

use super::rules::RULES;

/// The command that regenerates the file, for the failure message.
const REGENERATE: &str = "cargo xtask schema";

fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/check/report.schema.json")
}

/// `schema` with the items of its `$defs/rule` enum replaced by the table's rule ids, one a
/// line, in table order; everything else is kept byte for byte.
fn with_rule_enum(schema: &str) -> Result<String, &'static str> {
    let defs = schema.find("\"$defs\": {").ok_or("no \"$defs\" object")?;
    let rule = defs + schema[defs..].find("\"rule\": {").ok_or("no \"rule\" in \"$defs\"")?;
    let key = "\"enum\": [";
    let open = rule + schema[rule..].find(key).ok_or("no enum in \"$defs/rule\"")? + key.len();
    let close = open + schema[open..].find(']').ok_or("the rule enum is not closed")?;
    let line_start = schema[..open].rfind('\n').map_or(0, |i| i + 1);
    let indent: String = schema[line_start..].chars().take_while(|c| *c == ' ').collect();
    let items: Vec<String> = RULES.iter().map(|r| format!("{indent}  \"{}\"", r.name)).collect();
    Ok(format!("{}\n{}\n{indent}{}", &schema[..open], items.join(",\n"), &schema[close..]))
}

#[test]
fn the_schema_rule_enum_is_generated_from_the_rule_table() {
    let path = schema_path();
    let committed = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let generated = with_rule_enum(&committed).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let parsed: serde_json::Value = serde_json::from_str(&generated).expect("the generated schema is JSON");
    let ids: Vec<&str> =
        parsed["$defs"]["rule"]["enum"].as_array().expect("$defs/rule/enum").iter().flat_map(|v| v.as_str()).collect();
    let names: Vec<&str> = RULES.iter().map(|r| r.name).collect();
    assert_eq!(ids, names, "the generated $defs/rule enum");
    if std::env::var_os("MMNOTIF_BLESS").is_some_and(|v| v == "1") {
        fs::write(&path, &generated).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        return;
    }
    assert!(
        committed == generated,
        "{}: the $defs/rule enum differs from the rule table in probe-user/src/checker/rules.rs; regenerate it with `{REGENERATE}`",
        path.display()
    );
}

#[test]
fn only_the_rule_enum_is_rewritten() {
    let schema = "{\n  \"$defs\": {\n    \"x\": { \"enum\": [\"a\"] },\n    \"rule\": {\n      \"enum\": [\n        \"old\"\n      ]\n    }\n  }\n}\n";
    let out = with_rule_enum(schema).expect("rewritten");
    let (first, last) = (RULES[0].name, RULES[RULES.len() - 1].name);
    let head = "{\n  \"$defs\": {\n    \"x\": { \"enum\": [\"a\"] },\n    \"rule\": {\n      \"enum\": [\n";
    assert!(out.starts_with(&format!("{head}        \"{first}\",\n")), "{out}");
    assert!(out.ends_with(&format!("        \"{last}\"\n      ]\n    }}\n  }}\n}}\n")), "{out}");
    assert!(!out.contains("old"));
    assert_eq!(with_rule_enum("{}"), Err("no \"$defs\" object"));
}
