//! Metric names referenced by a PromQL expression (enough of PromQL for dashboards): what is
//! left after removing strings, label matchers, ranges, grouping label lists, function and
//! aggregation names, keywords, numbers and Grafana variables.

use std::collections::BTreeSet;

const KEYWORDS: [&str; 14] = [
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
    "atan2",
];
const GROUPING: [&str; 6] = ["by", "without", "on", "ignoring", "group_left", "group_right"];

/// Removes `open … close` spans (not nested) and quoted strings.
fn strip(expr: &str) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                while let Some(d) = chars.next() {
                    if d == '\\' {
                        chars.next();
                    } else if d == c {
                        break;
                    }
                }
                out.push(' ');
            }
            '{' => {
                for d in chars.by_ref() {
                    if d == '}' {
                        break;
                    }
                }
                out.push(' ');
            }
            '[' => {
                for d in chars.by_ref() {
                    if d == ']' {
                        break;
                    }
                }
                out.push(' ');
            }
            _ => out.push(c),
        }
    }
    out
}

pub(crate) fn metric_names(expr: &str) -> BTreeSet<String> {
    let text = strip(expr);
    let chars: Vec<char> = text.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let mut skip_group = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '$' {
            // A Grafana variable such as $instance or $__rate_interval.
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            continue;
        }
        if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.' || chars[i] == '_') {
                i += 1;
            }
            continue;
        }
        if c == '(' && skip_group {
            while i < chars.len() && chars[i] != ')' {
                i += 1;
            }
            skip_group = false;
            i += 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let rest: String = chars[i..].iter().collect();
            let rest = rest.trim_start();
            let next = rest.chars().next();
            // `sum by (…) (…)`: an aggregation whose grouping comes first.
            let aggregation =
                ["by", "without"].iter().any(|k| rest.strip_prefix(k).is_some_and(|r| r.trim_start().starts_with('(')));
            if GROUPING.contains(&word.as_str()) {
                skip_group = next == Some('(');
            } else if next != Some('(') && !aggregation && !KEYWORDS.contains(&word.as_str()) {
                names.insert(word);
            }
            continue;
        }
        i += 1;
    }
    names
}

/// The metric of a Grafana `label_values(METRIC{…}, label)` variable query.
pub(crate) fn label_values_metric(query: &str) -> Option<String> {
    let inner = query.trim().strip_prefix("label_values(")?;
    // `label_values(label)` names no metric.
    let (selector, _label) = inner.rsplit_once(',')?;
    let metric = selector.split('{').next()?.trim();
    (!metric.is_empty()).then(|| metric.to_owned())
}
