//! The neural controller end to end on the real Fashion-MNIST: `morphogen controller
//! train-policy` learns a policy from real growth episodes (of the host and controller a config
//! file describes, when given one), `morphogen train --controller neural`
//! grows by it, and a damaged policy leaves growth to the heuristic with a warning and an
//! incident, never a crash.

use crate::common::{morphogen, run, scratch};
use std::path::Path;
use std::process::Output;

fn text(out: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A three-epoch MLP run named `name` under `runs`, with `extra` flags.
fn grow(runs: &Path, name: &str, extra: &[&str]) -> Output {
    let mut command = morphogen();
    command.args(["train", "--runs-dir", runs.to_str().unwrap(), "--name", name, "--quiet", "--epochs", "3"]);
    command.args(["--train-subset", "400", "--valid-subset", "100", "--batch-size", "100"]).args(extra);
    command.output().expect("the morphogen binary runs")
}

/// The reasons of every germination in a run folder's event log.
fn germination_reasons(run: &Path) -> Vec<String> {
    let events = std::fs::read_to_string(run.join("events.jsonl")).unwrap();
    events
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|event| event["to"] == "GERMINATED" || event["to"] == "germinated")
        .map(|event| event["reason"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_policy_learned_from_episodes_decides_growth_and_a_damaged_one_leaves_it_to_the_heuristic() {
    let dir = scratch("policy");
    let policy = dir.join("grow.policy");
    let learn = [
        "controller",
        "train-policy",
        "--model",
        "mlp",
        "--episodes",
        "4",
        "--imitation-episodes",
        "2",
        "--group",
        "2",
        "--epochs",
        "3",
        "--steps-per-epoch",
        "8",
        "--valid-subset",
        "200",
        "--imitation-steps",
        "60",
        "--out",
        policy.to_str().unwrap(),
    ];
    let out = run(&learn);
    assert!(out.status.success(), "{}", text(&out));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(policy.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["format"], "morphogen-policy");
    assert_eq!(manifest["training"]["episodes"], 4);
    assert_eq!(manifest["training"]["feature_importance"].as_object().unwrap().len(), 14, "{manifest}");
    let curves = std::fs::read_to_string(policy.join("training.jsonl")).unwrap();
    let phases: Vec<String> = curves
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .inspect(|e| assert!(e["reward"].as_f64().unwrap().is_finite(), "{e}"))
        .map(|e| e["phase"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(phases, ["imitation", "imitation", "reinforce", "reinforce"], "{curves}");

    let saved = std::fs::read(policy.join("weights.safetensors")).unwrap();
    let again = run(&learn);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(text(&again).contains("already exists"), "{}", text(&again));
    assert_eq!(std::fs::read(policy.join("weights.safetensors")).unwrap(), saved, "nothing was overwritten");

    let runs = dir.join("runs");
    let neural = ["--controller", "neural", "--policy", policy.to_str().unwrap()];
    let out = grow(&runs, "neural", &neural);
    assert!(out.status.success(), "{}", text(&out));
    let reasons = germination_reasons(&runs.join("neural"));
    assert!(!reasons.is_empty(), "the imitated policy grows: {}", text(&out));
    assert!(
        reasons.iter().all(|r| r.starts_with("neural policy: score") && r.contains("top features:")),
        "{reasons:?}"
    );

    let flags = dir.join("flags.toml");
    std::fs::write(&flags, "[neural_controller]\nenabled = false\nrollout = 100\n").unwrap();
    let out = grow(&runs, "flag-off", &[&neural[..], &["--flags", flags.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("the neural_controller flag is off"), "{}", text(&out));
    let reasons = germination_reasons(&runs.join("flag-off"));
    assert!(!reasons.is_empty() && reasons.iter().all(|r| !r.starts_with("neural")), "{reasons:?}");

    let mut damaged = saved.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x08;
    std::fs::write(policy.join("weights.safetensors"), damaged).unwrap();
    let out = grow(&runs, "fallback", &neural);
    assert!(out.status.success(), "a damaged policy is no crash: {}", text(&out));
    assert!(text(&out).contains("warning (policy)") && text(&out).contains("damaged"), "{}", text(&out));
    let incidents = std::fs::read_to_string(runs.join("fallback").join("incidents.jsonl")).unwrap();
    assert!(incidents.contains("\"kind\":\"policy\""), "{incidents}");
    let reasons = germination_reasons(&runs.join("fallback"));
    assert!(!reasons.is_empty() && reasons.iter().all(|r| !r.starts_with("neural")), "{reasons:?}");

    let out = grow(&runs, "no-policy", &["--controller", "neural"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--policy"), "{}", text(&out));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn episodes_take_the_host_and_controller_of_a_config_file() {
    let dir = scratch("policy-config");
    // An 8-unit MLP, at most two germinations an epoch (the default allows four).
    let config = dir.join("small.toml");
    std::fs::write(&config, "[model]\nhidden = 8\n\n[controller]\nmax_germinations_per_epoch = 2\n").unwrap();
    let policy = dir.join("small.policy");
    let (config_path, policy_path) = (config.to_str().unwrap(), policy.to_str().unwrap());
    let learn = ["controller", "train-policy", "--config", config_path, "--model", "mlp", "--episodes", "2"];
    let shape = ["--imitation-episodes", "2", "--epochs", "3", "--steps-per-epoch", "8", "--valid-subset", "100"];
    let out = run(&[&learn[..], &shape, &["--out", policy_path]].concat());
    assert!(out.status.success(), "{}", text(&out));
    let curves = std::fs::read_to_string(policy.join("training.jsonl")).unwrap();
    let episodes: Vec<serde_json::Value> = curves.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(episodes.len(), 2, "{curves}");
    for episode in &episodes {
        assert_eq!(episode["host_params"], 784 * 8 + 8 + 8 * 8 + 8 + 8 * 10 + 10, "{episode}");
        let germinated = episode["germinated"].as_u64().unwrap();
        assert!((1..=6).contains(&germinated), "two at each of three epoch ends: {episode}");
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(policy.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["training"]["config"], config_path);

    std::fs::write(&config, "[run]\ngrowth = false\n").unwrap();
    let unused = dir.join("unused.policy");
    let refused = run(&[&learn[..], &shape, &["--out", unused.to_str().unwrap()]].concat());
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("growth off") && !unused.exists(), "{}", text(&refused));
    std::fs::remove_dir_all(&dir).ok();
}
