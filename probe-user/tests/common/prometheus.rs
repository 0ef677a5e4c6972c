//! A real Prometheus server on loopback (Debian's `prometheus`), scraping one target every
//! second into a temporary directory, queried over its HTTP API.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::Value;

use super::{free_port, http_get};

pub(crate) struct PrometheusServer {
    child: Child,
    pub addr: SocketAddr,
    dir: PathBuf,
}

/// Percent-encodes a query-string value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl PrometheusServer {
    /// Starts a server scraping `target`'s /metrics every second and waits until it is ready.
    pub(crate) fn start(target: SocketAddr) -> PrometheusServer {
        let dir = std::env::temp_dir().join(format!("mmnotif-prometheus-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(dir.join("data")).expect("temp dir");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: mmnotif-trace\n    static_configs:\n      - targets: [\"{target}\"]\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("config");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("address");
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log file");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus (Debian package prometheus) must be installed: run scripts/setup.sh");
        let server = PrometheusServer { child, addr, dir };
        for _ in 0..240 {
            if matches!(http_get(server.addr, "/-/ready"), Ok((200, _))) {
                return server;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("prometheus never became ready; its log:\n{}", server.log());
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// An instant query: each series' labels (without `job`/`instance`) and value.
    pub(crate) fn query(&self, expr: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        let (status, body) = http_get(self.addr, &format!("/api/v1/query?query={}", encode(expr))).expect("query");
        assert_eq!(status, 200, "{expr}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{expr}: {e}: {body}"));
        assert_eq!(v["status"], "success", "{expr}: {body}");
        v["data"]["result"]
            .as_array()
            .unwrap_or_else(|| panic!("{expr}: {body}"))
            .iter()
            .map(|r| {
                let labels = r["metric"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| !["job", "instance"].contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect();
                let value = r["value"][1]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("{expr}: value in {r}"));
                (labels, value)
            })
            .collect()
    }

    /// Sum of an instant query's values (0 when it has no series).
    pub(crate) fn query_sum(&self, expr: &str) -> f64 {
        self.query(expr).iter().map(|(_, v)| v).sum()
    }

    /// Queries every 250 ms until `done` holds (at most `tries` times).
    pub(crate) fn wait_for(&self, tries: u32, expr: &str, done: impl Fn(f64) -> bool) -> f64 {
        for _ in 0..tries {
            let v = self.query_sum(expr);
            if done(v) {
                return v;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("prometheus never satisfied {expr} (last {}); its log:\n{}", self.query_sum(expr), self.log());
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
