//! `morphogen train --nodes`: real processes joined through the coordinator on loopback.

use super::common::{morphogen, scratch};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A small MLP run into `<runs>/<name>`, with `extra` options.
fn node_command(runs: &Path, name: &str, extra: &[&str]) -> Command {
    let mut command = morphogen();
    command.args(["train", "--runs-dir", runs.to_str().unwrap(), "--name", name, "--quiet"]);
    command.args(["--train-subset", "400", "--valid-subset", "100", "--batch-size", "100"]).args(extra);
    command
}

/// The options of node `rank` of two, coordinated on `port`.
fn node_options(port: u16, rank: usize) -> Vec<String> {
    let coordinator = format!("127.0.0.1:{port}");
    ["--nodes", "2", "--node-rank", &rank.to_string(), "--coordinator", &coordinator].map(String::from).to_vec()
}

/// A port free on every interface, with the two after it (node 0's and node 1's tensor
/// addresses): the system picks it, so that tests running at once do not collide.
fn free_ports() -> u16 {
    let free = |port: u16| TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port)));
    (0..100)
        .filter_map(|_| free(0).ok()?.local_addr().ok().map(|address| address.port()))
        .find(|&port| port < u16::MAX - 2 && (port + 1..port + 3).all(|p| free(p).is_ok()))
        .expect("three free ports")
}

/// Starts node 1 in the background (its output piped).
fn spawn_node_1(runs: &Path, name: &str, port: u16, extra: &[&str]) -> Child {
    node_command(runs, name, extra)
        .args(node_options(port, 1))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the morphogen binary starts")
}

/// Runs node 0 to the end.
fn run_node_0(runs: &Path, name: &str, port: u16, extra: &[&str]) -> Output {
    node_command(runs, name, extra).args(node_options(port, 0)).output().expect("the morphogen binary runs")
}

/// The validation loss of every epoch of `<runs>/<name>`.
fn val_losses(runs: &Path, name: &str) -> Vec<f64> {
    let metrics = std::fs::read_to_string(runs.join(name).join("metrics.jsonl")).unwrap();
    metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["val_loss"].as_f64().unwrap())
        .collect()
}

#[test]
fn two_processes_train_as_one_process_with_two_replicas_and_resume_alone() {
    let (runs, elsewhere) = (scratch("nodes-train"), scratch("nodes-train-node-1"));
    let port = free_ports();
    let node_1 = spawn_node_1(&elsewhere, "two", port, &["--epochs", "2"]);
    let node_0 = run_node_0(&runs, "two", port, &["--epochs", "2"]);
    let node_1 = node_1.wait_with_output().unwrap();
    let (stderr_0, stderr_1) = (String::from_utf8_lossy(&node_0.stderr), String::from_utf8_lossy(&node_1.stderr));
    assert!(node_0.status.success() && node_1.status.success(), "node 0: {stderr_0}\nnode 1: {stderr_1}");
    assert!(stderr_0.contains("data parallel: 2 replicas (1 a node, 2 nodes)"), "{stderr_0}");
    assert!(stderr_1.contains("node 1: done"), "{stderr_1}");
    assert!(!elsewhere.join("two").exists(), "node 1 writes nothing");
    let threads = node_command(&runs, "threads", &["--epochs", "3", "--devices", "0,0"]).output().unwrap();
    assert!(threads.status.success(), "{}", String::from_utf8_lossy(&threads.stderr));
    let (nodes, threads) = (val_losses(&runs, "two"), val_losses(&runs, "threads"));
    assert_eq!(nodes.len(), 2);
    for (a, b) in nodes.iter().zip(&threads) {
        assert!(
            (a - b).abs() < 1e-4 * a.abs().max(1.0),
            "validation loss {a} over two processes, {b} over two threads"
        );
    }
    // Two nodes' checkpoint, resumed by one process with one replica.
    let resumed = node_command(&runs, "two", &["--epochs", "3", "--resume"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success() && stderr.contains("resumed after epoch 2"), "{stderr}");
    let nodes = val_losses(&runs, "two");
    assert!((nodes[2] - threads[2]).abs() < 1e-4 * nodes[2].abs().max(1.0), "epoch 3: {} and {}", nodes[2], threads[2]);
    std::fs::remove_dir_all(&runs).ok();
    std::fs::remove_dir_all(&elsewhere).ok();
}

#[test]
fn a_node_killed_mid_run_stops_the_other_naming_it_and_the_run_resumes() {
    let runs = scratch("nodes-kill");
    let port = free_ports();
    let long = ["--epochs", "200"];
    let mut node_1 = spawn_node_1(&runs, "killed", port, &long);
    let mut node_0 = node_command(&runs, "killed", &long)
        .args(node_options(port, 0))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Killed once node 0 has written its second checkpoint: the group is training.
    let checkpoints = runs.join("killed").join("checkpoints");
    let started = Instant::now();
    while std::fs::read_dir(&checkpoints).map_or(0, |entries| entries.count()) < 2 {
        assert!(started.elapsed() < Duration::from_secs(120), "node 0 never wrote two checkpoints");
        std::thread::sleep(Duration::from_millis(50));
    }
    node_1.kill().unwrap();
    let killed = Instant::now();
    node_1.wait().unwrap();
    let status = loop {
        if let Some(status) = node_0.try_wait().unwrap() {
            break status;
        }
        assert!(killed.elapsed() < Duration::from_secs(30), "node 0 still runs 30 s after node 1 died");
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::io::read_to_string(node_0.stderr.take().unwrap()).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("node 1 (127.0.0.1:") && stderr.contains("stopped answering"), "{stderr}");
    let resumed = node_command(&runs, "killed", &["--epochs", "10", "--resume"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success() && stderr.contains("resumed after epoch"), "{stderr}");
    std::fs::remove_dir_all(&runs).ok();
}

#[test]
fn bad_node_options_are_refused_and_nothing_is_written() {
    let runs = scratch("nodes-bad");
    let port = free_ports();
    let coordinator = format!("127.0.0.1:{port}");
    let outside = node_command(&runs, "outside", &["--nodes", "2", "--node-rank", "2", "--coordinator", &coordinator])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&outside.stderr);
    assert_eq!(outside.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("node rank 2 is outside a group of 2 nodes"), "{stderr}");
    let alone =
        node_command(&runs, "alone", &["--coordinator-wait", "1"]).args(node_options(port, 1)).output().unwrap();
    let stderr = String::from_utf8_lossy(&alone.stderr);
    assert_eq!(alone.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("the coordinator at {coordinator}: no answer within 1s")), "{stderr}");
    // Node 1 started with another learning rate: both stop, naming the setting.
    let node_1 = spawn_node_1(&runs, "lr", port, &["--lr", "0.005"]);
    let node_0 = run_node_0(&runs, "lr", port, &[]);
    let node_1 = node_1.wait_with_output().unwrap();
    for (node, out) in [(0, &node_0), (1, &node_1)] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "node {node}: {stderr}");
        assert!(stderr.contains("replica 1 was started with trainer.learning_rate = 0.005"), "node {node}: {stderr}");
    }
    let written: Vec<_> = std::fs::read_dir(&runs).unwrap().collect();
    assert!(written.is_empty(), "nothing written: {written:?}");
    std::fs::remove_dir_all(&runs).ok();
}
