//! A real Prometheus server (Debian's `prometheus` package) on loopback scrapes the exporter
//! every second; one metric is queried back through its HTTP API. Skips, saying so, when the
//! `prometheus` binary is not installed.

use crate::common::{get, scripted_run};
use morphogen_metrics::{serve, MetricsObserver};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the server however the test ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free loopback port").port()
}

/// The first sample's value of an instant-query answer, if it has one.
fn first_value(body: &str) -> Option<f64> {
    let json: serde_json::Value = serde_json::from_str(body).ok()?;
    json["data"]["result"].get(0)?["value"].get(1)?.as_str()?.parse().ok()
}

#[test]
fn real_prometheus_scrapes_the_exporter() {
    if Command::new("prometheus").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err() {
        eprintln!("SKIP: no `prometheus` binary (apt-get install prometheus)");
        return;
    }
    let mut observer = MetricsObserver::new();
    let exporter = serve("127.0.0.1:0", observer.clone()).expect("bind loopback");
    scripted_run(&mut observer);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: morphogen\n    \
             scrape_interval: 1s\n    scrape_timeout: 1s\n    static_configs:\n      - targets: ['{}']\n",
            exporter.local_addr()
        ),
    )
    .unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _server = Server(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus"),
    );
    let api: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    let value = loop {
        if let Ok((200, body)) = get(api, "/api/v1/query?query=morphogen_germinations_total") {
            if let Some(value) = first_value(&body) {
                break Some(value);
            }
            last = body;
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let log = std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
    let log_tail: String = log.lines().rev().take(15).collect::<Vec<_>>().join("\n");
    assert_eq!(
        value,
        Some(3.0),
        "no scrape within 20 s; last answer {last}; prometheus log (newest first):\n{log_tail}"
    );
}
