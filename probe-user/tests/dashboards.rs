//! The Grafana dashboards in dashboards/: valid dashboard JSON on the provisioned
//! datasource, querying only metrics the exporter defines (and every one of them).

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    process::Command,
};

use common::{
    dashboards::{dashboards, dir, metric_names_used, provisioned_datasource_uid, yaml},
    promql::{label_values_metric, metric_names},
};
use mmnotif_trace::metrics::families;
use serde_json::Value;

#[test]
fn dashboards_are_grafana_dashboards_on_the_provisioned_datasource() {
    let uid = provisioned_datasource_uid();
    let all = dashboards();
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["notifiers.json", "overview.json", "violations.json"]);
    let mut uids = BTreeSet::new();
    for (name, d) in &all {
        assert!(d["uid"].as_str().is_some_and(|u| !u.is_empty() && u.len() <= 40), "{name}: uid");
        assert!(uids.insert(d["uid"].as_str().unwrap_or_default().to_owned()), "{name}: duplicate uid");
        assert!(d["title"].as_str().is_some_and(|t| t.starts_with("mmnotif-trace")), "{name}: title");
        assert!(d["schemaVersion"].as_i64().is_some_and(|v| v >= 36), "{name}: schemaVersion");
        assert!(d.get("id").is_none_or(Value::is_null), "{name}: an importable dashboard has no fixed id");
        let panels = d["panels"].as_array().unwrap_or_else(|| panic!("{name}: panels"));
        assert!(panels.len() >= 6, "{name}");
        let mut ids = BTreeSet::new();
        let mut cells: BTreeMap<(i64, i64), String> = BTreeMap::new();
        for p in panels {
            let title = p["title"].as_str().unwrap_or_default();
            let what = format!("{name}: panel {title:?}");
            assert!(!title.is_empty(), "{what}: title");
            assert!(ids.insert(p["id"].as_i64().unwrap_or_else(|| panic!("{what}: id"))), "{what}: duplicate id");
            assert!(
                ["timeseries", "stat", "table", "heatmap", "bargauge"]
                    .contains(&p["type"].as_str().unwrap_or_default()),
                "{what}: type {}",
                p["type"]
            );
            assert_eq!(p["datasource"]["uid"].as_str(), Some(uid.as_str()), "{what}: datasource");
            assert_eq!(p["datasource"]["type"].as_str(), Some("prometheus"), "{what}: datasource type");
            let g = &p["gridPos"];
            let [x, y, w, h] =
                ["x", "y", "w", "h"].map(|k| g[k].as_i64().unwrap_or_else(|| panic!("{what}: gridPos.{k}")));
            assert!(x >= 0 && y >= 0 && w > 0 && h > 0 && x + w <= 24, "{what}: gridPos {g}");
            for cx in x..x + w {
                for cy in y..y + h {
                    if let Some(other) = cells.insert((cx, cy), title.to_owned()) {
                        panic!("{what} overlaps {other:?}");
                    }
                }
            }
            let targets = p["targets"].as_array().unwrap_or_else(|| panic!("{what}: targets"));
            assert!(!targets.is_empty(), "{what}: no targets");
            let mut ref_ids = BTreeSet::new();
            for t in targets {
                assert!(
                    ref_ids.insert(t["refId"].as_str().unwrap_or_else(|| panic!("{what}: refId"))),
                    "{what}: duplicate refId"
                );
                assert!(t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()), "{what}: expr");
                assert_eq!(t["datasource"]["uid"].as_str(), Some(uid.as_str()), "{what}: target datasource");
            }
        }
        for var in d["templating"]["list"].as_array().into_iter().flatten() {
            assert_eq!(var["datasource"]["uid"].as_str(), Some(uid.as_str()), "{name}: variable {}", var["name"]);
        }
    }
    let provider = yaml("provisioning/dashboards/mmnotif-trace.yaml");
    let providers = provider["providers"].as_vec().expect("providers");
    assert_eq!(providers[0]["type"].as_str(), Some("file"));
    assert!(providers[0]["options"]["path"].as_str().is_some_and(|p| p.starts_with('/')));
}

#[test]
fn dashboards_query_every_exporter_metric_and_nothing_else() {
    let defined: BTreeMap<String, &str> =
        families::ALL.iter().flat_map(|f| f.sample_names().into_iter().map(move |s| (s, f.name))).collect();
    let mut used_families = BTreeSet::new();
    for (name, d) in dashboards() {
        let names = metric_names_used(&d);
        assert!(!names.is_empty(), "{name}");
        for metric in names {
            let family = defined
                .get(&metric)
                .unwrap_or_else(|| panic!("{name} queries {metric}, which the exporter does not define"));
            used_families.insert(*family);
        }
    }
    let unused: Vec<&str> = families::ALL.iter().map(|f| f.name).filter(|n| !used_families.contains(n)).collect();
    assert!(unused.is_empty(), "families on no dashboard: {unused:?}");
}

#[test]
fn promql_metric_names_are_extracted_and_nothing_else() {
    let names = |e: &str| metric_names(e).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"histogram_quantile(0.99, sum by (callback, le) (rate(mmnotif_subscriber_duration_seconds_bucket{instance=~"$instance",callback=~"a|b"}[$__rate_interval])))"#
        ),
        ["mmnotif_subscriber_duration_seconds_bucket"]
    );
    assert_eq!(
        names(
            r#"count(mmnotif_kvm_mn_active_invalidations{x="y"} > 0) or vector(0) + on (pid) group_left (comm) mmnotif_mm_subscribers offset 5m"#
        ),
        ["mmnotif_kvm_mn_active_invalidations", "mmnotif_mm_subscribers"]
    );
    assert_eq!(
        names("max(time() - mmnotif_inventory_last_refresh_timestamp_seconds) * 1e3"),
        ["mmnotif_inventory_last_refresh_timestamp_seconds"]
    );
    assert_eq!(names(r#"sum without(le) (a_total) / ignoring(x) b:recorded"#), ["a_total", "b:recorded"]);
    assert_eq!(
        label_values_metric("label_values(mmnotif_subscriber_calls_total{instance=~\"$instance\"}, callback)")
            .as_deref(),
        Some("mmnotif_subscriber_calls_total")
    );
    assert_eq!(label_values_metric("label_values(instance)"), None);
    assert_eq!(label_values_metric("query_result(up)"), None);
}

#[test]
fn the_example_prometheus_config_is_valid() {
    let out = Command::new("promtool")
        .args(["check", "config"])
        .arg(dir().join("prometheus.yml"))
        .output()
        .expect("promtool (Debian package prometheus) must be installed: run scripts/setup.sh");
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}
