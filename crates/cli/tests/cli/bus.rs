//! The bus from the command line, against a real Redis server started by the test:
//! `morphogen bus status`, and `morphogen train --bus` with `morphogen controller serve`
//! processes killed, Redis restarted, or Redis never there.

use crate::common::{http, json_lines, morphogen, run, sample, scratch, MetricsRun};
use morphogen_bus::{Bus, BusOptions, Outgoing, Reader, RedisBus};
use morphogen_testkit::RedisServer;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn status_shows_each_run_s_streams_and_a_down_server_is_an_error_without_the_password() {
    let server = RedisServer::start();
    let mut bus = RedisBus::connect(&server.url(), BusOptions::default(), Duration::from_secs(2)).unwrap();
    for step in 0..3 {
        bus.publish(Outgoing::state("fashion-mlp", step, &serde_json::json!(step))).unwrap();
    }
    bus.receive(Reader::controller("fashion-mlp", "c1"), Duration::from_secs(2)).unwrap().unwrap();
    let out = run(&["bus", "status", "--bus", &server.url()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let row: Vec<&str> =
        stdout.lines().find(|l| l.starts_with("morphogen:fashion-mlp:state")).unwrap().split_whitespace().collect();
    assert_eq!(row, ["morphogen:fashion-mlp:state", "3", "controllers", "1", "1", "2"], "{stdout}");

    let port = server.port;
    drop(server);
    let out = run(&["bus", "status", "--bus", &format!("redis://:hunter2@127.0.0.1:{port}")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}")) && stderr.contains("***") && !stderr.contains("hunter2"),
        "{stderr}"
    );
    let out = run(&["bus", "status", "--bus", "http://nowhere"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `morphogen controller serve` on `url` as `name`; SIGKILLed on drop.
struct Service(std::process::Child);

impl Service {
    fn start(url: &str, name: &str) -> Self {
        let child = morphogen()
            .args(["controller", "serve", "--bus", url, "--name", name, "--quiet"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("morphogen controller serve starts");
        Self(child)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// The run's metric `name` (unlabelled), once it answers.
fn metric(run: &MetricsRun, name: &str) -> Option<f64> {
    let (_, body) = http::try_request(&run.addr.to_string(), "GET", "/metrics", None).ok()?;
    sample(&body, name)
}

/// Waits until the run has finished `epoch` epochs.
fn wait_for_epoch(run: &mut MetricsRun, epoch: u32) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while metric(run, "morphogen_epoch").unwrap_or(0.0) < f64::from(epoch) {
        assert!(run.alive(), "the run ended before epoch {epoch}");
        assert!(Instant::now() < deadline, "epoch {epoch} not reached in 120 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A config file with an eager controller and a `[bus]` table waiting `timeout_ms`.
fn bus_config(dir: &Path, timeout_ms: u64) -> PathBuf {
    let path = dir.join("bus.toml");
    let text = format!(
        "[controller]\npatience = 0\nmax_germinations_per_epoch = 2\n\n[bus]\ndecision_timeout_ms = {timeout_ms}\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_run_outlives_its_controller_and_a_redis_restart_and_applies_each_decision_once() {
    // Epochs after the restart at epoch 6 leave the second service time to reconnect (its
    // retries back off up to seconds) before the last epoch's decision.
    const EPOCHS: usize = 14;
    let dir = scratch("bus-chaos");
    let mut redis = Some(RedisServer::start());
    let (url, port) = (redis.as_ref().unwrap().url(), redis.as_ref().unwrap().port);
    let first = Service::start(&url, "ctl-a");
    let mut command = morphogen();
    command
        .args(["train", "--config", bus_config(&dir, 1500).to_str().unwrap(), "--bus", &url])
        .args([
            "--train-subset",
            "2000",
            "--valid-subset",
            "200",
            "--batch-size",
            "50",
            "--epochs",
            &EPOCHS.to_string(),
        ])
        .args(["--name", "chaos", "--quiet", "--runs-dir", dir.to_str().unwrap()]);
    let mut run = MetricsRun::spawn(command);

    wait_for_epoch(&mut run, 2);
    drop(first); // SIGKILL: a decision may be half made
    wait_for_epoch(&mut run, 4);
    let second = Service::start(&url, "ctl-b");
    wait_for_epoch(&mut run, 6);
    drop(redis.take()); // Redis dies, and comes back empty
    std::thread::sleep(Duration::from_millis(1500));
    let _redis = RedisServer::on(port);
    assert!(run.wait().success(), "the run finished");
    drop(second);

    let folder = dir.join("chaos");
    let by: Vec<String> = json_lines(&folder.join("metrics.jsonl"))
        .iter()
        .map(|m| m["decided_by"].as_str().unwrap_or("-").to_string())
        .collect();
    assert_eq!(by.len(), EPOCHS, "{by:?}");
    assert_eq!(&by[..2], ["ctl-a", "ctl-a"], "{by:?}");
    assert!(by.iter().all(|b| ["ctl-a", "ctl-b", "paused"].contains(&b.as_str())), "{by:?}");
    assert!(by.contains(&"paused".to_string()), "the dead controller's epochs paused: {by:?}");
    assert_eq!(by[EPOCHS - 1], "ctl-b", "decisions came back after the restart: {by:?}");
    let incidents = json_lines(&folder.join("incidents.jsonl"));
    let missed = by.iter().filter(|b| *b == "paused").count();
    assert_eq!(incidents.iter().filter(|i| i["kind"] == "bus").count(), missed, "{incidents:?}");
    for event in json_lines(&folder.join("events.jsonl")) {
        let by = event["decided_by"].as_str().unwrap_or("-");
        assert!(["ctl-a", "ctl-b"].contains(&by), "{event}");
    }
    // The last checkpoint records one decision for each epoch a controller decided.
    let applied = newest_applied_record(&folder.join("checkpoints"));
    let ids: std::collections::BTreeSet<&str> = applied.iter().map(|a| a["decision"].as_str().unwrap()).collect();
    assert_eq!((applied.len(), ids.len()), (EPOCHS - missed, EPOCHS - missed), "{applied:?}");
}

/// The record of applied decisions in the newest checkpoint under `dir`.
fn newest_applied_record(dir: &Path) -> Vec<serde_json::Value> {
    let newest = morphogen::checkpoint::CheckpointDir::open(dir).unwrap().latest().unwrap();
    let record = newest.extra("bus_decisions_applied").expect("the record is in the checkpoint");
    record.as_array().unwrap().clone()
}

#[test]
fn with_redis_down_from_the_start_the_run_goes_on_paused_and_never_shows_the_password() {
    let dir = scratch("bus-down");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("redis://:hunter2@127.0.0.1:{port}");
    let out = morphogen()
        .args(["train", "--config", bus_config(&dir, 300).to_str().unwrap(), "--bus", &url])
        .args(["--train-subset", "600", "--valid-subset", "200", "--batch-size", "100", "--epochs", "3"])
        .args(["--name", "down", "--quiet", "--runs-dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let folder = dir.join("down");
    assert!(folder.join("model.mpk").is_file());
    let metrics = json_lines(&folder.join("metrics.jsonl"));
    assert!(metrics.len() == 3 && metrics.iter().all(|m| m["decided_by"] == "paused"), "{metrics:?}");
    let incidents = std::fs::read_to_string(folder.join("incidents.jsonl")).unwrap();
    assert_eq!(incidents.lines().count(), 3, "{incidents}");
    let config = std::fs::read_to_string(folder.join("config.toml")).unwrap();
    for text in [&*stderr, &incidents, &config] {
        assert!(!text.contains("hunter2") && text.contains(&format!(":***@127.0.0.1:{port}")), "{text}");
    }

    // Where the message_bus flag is off for the run, it does not talk to the bus at all.
    let flags = dir.join("flags.toml");
    assert!(run(&["flags", "enable", "kernels", "--file", flags.to_str().unwrap()]).status.success());
    let out = morphogen()
        .args(["train", "--bus", &url, "--flags", flags.to_str().unwrap(), "--epochs", "1"])
        .args(["--train-subset", "300", "--valid-subset", "100", "--name", "flag-off", "--quiet"])
        .args(["--runs-dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.contains("the message_bus flag is off"), "{stderr}");
    let metrics = json_lines(&dir.join("flag-off").join("metrics.jsonl"));
    assert_eq!(metrics[0]["decided_by"], "in-process", "{metrics:?}");
}

#[test]
fn bench_bus_times_round_trips_through_a_controller_service_process() {
    let server = RedisServer::start();
    let out = run(&["bench", "bus", "--bus", &server.url(), "--layers", "1,3", "--seeds", "500", "--rounds", "3"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("| 1 x 500") || l.starts_with("| 3 x 500")).collect();
    assert_eq!(rows.len(), 4, "{stdout}");
    let p50: f64 = rows[0].split('|').nth(5).unwrap().trim().parse().unwrap();
    assert!(p50 > 0.0 && p50 < 5000.0, "{stdout}");
    // Every state was answered and acknowledged.
    let mut bus = RedisBus::connect(&server.url(), BusOptions::default(), Duration::from_secs(2)).unwrap();
    let status = bus.status().unwrap();
    assert!(status.streams.iter().all(|s| s.groups.iter().all(|g| g.pending == 0)), "{status}");
}
