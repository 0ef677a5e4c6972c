//! Reading the dashboards in dashboards/ and the PromQL in them.

use std::{collections::BTreeSet, path::PathBuf};

use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

use super::promql::{label_values_metric, metric_names};

pub(crate) fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dashboards")
}

pub(crate) fn dashboards() -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = std::fs::read_dir(dir())
        .expect("dashboards/")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".json"))
        .map(|n| {
            let text = std::fs::read_to_string(dir().join(&n)).expect("read");
            let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("dashboards/{n}: not JSON: {e}"));
            (n, v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

pub(crate) fn yaml(path: &str) -> Yaml {
    let text = std::fs::read_to_string(dir().join(path)).unwrap_or_else(|e| panic!("dashboards/{path}: {e}"));
    let mut docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("dashboards/{path}: not YAML: {e}"));
    assert_eq!(docs.len(), 1, "{path}");
    docs.remove(0)
}

/// The uid of the provisioned Prometheus datasource.
pub(crate) fn provisioned_datasource_uid() -> String {
    let doc = yaml("provisioning/datasources/mmnotif-trace.yaml");
    assert_eq!(doc["apiVersion"].as_i64(), Some(1));
    let sources = doc["datasources"].as_vec().expect("datasources list");
    assert_eq!(sources.len(), 1);
    assert_eq!(sources[0]["type"].as_str(), Some("prometheus"));
    assert!(sources[0]["url"].as_str().is_some_and(|u| u.starts_with("http")));
    sources[0]["uid"].as_str().expect("uid").to_owned()
}

/// Every PromQL expression of a dashboard: panel targets and variable queries' metrics.
pub(crate) fn expressions(dashboard: &Value) -> (Vec<String>, BTreeSet<String>) {
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.extend(target["expr"].as_str().map(str::to_owned));
        }
    }
    let mut variable_metrics = BTreeSet::new();
    for var in dashboard["templating"]["list"].as_array().into_iter().flatten() {
        if var["type"] == "query" {
            let q = var["query"]["query"].as_str().or(var["query"].as_str()).expect("variable query");
            variable_metrics.insert(
                label_values_metric(q)
                    .unwrap_or_else(|| panic!("variable query {q:?} is not label_values(METRIC, label)")),
            );
        }
    }
    (exprs, variable_metrics)
}

/// Every metric name a dashboard's queries and variables use.
pub(crate) fn metric_names_used(dashboard: &Value) -> BTreeSet<String> {
    let (exprs, mut names) = expressions(dashboard);
    names.extend(exprs.iter().flat_map(|e| metric_names(e)));
    names
}
