//! `morphogen train --otlp-endpoint`: a collector that is not there costs one warning, never
//! the run; a malformed endpoint is a usage error before training.

use crate::common::{morphogen, scratch};
use std::net::TcpListener;

/// A fresh folder private to this test.
fn runs_dir(name: &str) -> std::path::PathBuf {
    scratch(&format!("tracing-{name}"))
}

fn train(runs: &std::path::Path, extra: &[&str]) -> std::process::Output {
    morphogen()
        .args(["train", "--train-subset", "256", "--valid-subset", "64", "--epochs", "2", "--batch-size", "64"])
        .args(["--name", "traced", "--quiet", "--runs-dir"])
        .arg(runs)
        .args(extra)
        .output()
        .expect("the binary runs")
}

#[test]
fn an_unreachable_collector_is_reported_once_and_training_finishes() {
    let runs = runs_dir("unreachable");
    // A port that was just free: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let out = train(&runs, &["--otlp-endpoint", &endpoint, "--trace-level", "trace"]);
    let _ = std::fs::remove_dir_all(&runs);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr.matches("cannot export traces").count(), 1, "{stderr}");
    assert!(stderr.contains(&format!("{endpoint}/v1/traces")), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("| epoch |"), "the results table was printed");
}

#[test]
fn a_malformed_endpoint_is_a_usage_error() {
    let runs = runs_dir("malformed");
    let out = train(&runs, &["--otlp-endpoint", "https://collector:4318"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only http://"));
    assert!(!runs.join("traced").exists(), "nothing ran");
}
