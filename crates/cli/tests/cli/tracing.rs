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

#[test]
fn a_profile_holds_morphogen_s_training_spans_and_nothing_else() {
    let runs = runs_dir("profile");
    std::fs::create_dir_all(&runs).unwrap();
    let trace = runs.join("trace.json");
    let out = train(&runs, &["--profile", trace.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let events: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&runs);
    let spans: Vec<(&str, &str)> =
        events.iter().filter_map(|e| Some((e["name"].as_str()?, e.get("cat")?.as_str()?))).collect();
    for name in [
        "run",
        "epoch",
        "step",
        "forward",
        "seeded_layer",
        "backward",
        "optimizer",
        "evaluate",
        "controller.decide",
        "checkpoint.save",
    ] {
        assert!(spans.iter().any(|(n, _)| *n == name), "no `{name}` span in the profile");
    }
    let foreign: Vec<_> = spans.iter().filter(|(_, target)| !target.starts_with("morphogen")).collect();
    assert!(foreign.is_empty(), "spans from outside morphogen: {foreign:?}");
}
