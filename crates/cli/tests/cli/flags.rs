//! `morphogen flags` end to end: the built binary in a temporary directory.

use crate::common::{morphogen, scratch};
use std::path::{Path, PathBuf};
use std::process::Output;

/// Runs the binary with `args` in `dir`.
fn run_in(dir: &Path, args: &[&str]) -> Output {
    morphogen().args(args).current_dir(dir).output().expect("the morphogen binary runs")
}

/// A fresh directory private to this test.
fn temp_dir(name: &str) -> PathBuf {
    scratch(&format!("flags-{name}"))
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The status line of `feature`, split into words.
fn line<'a>(text: &'a str, feature: &str) -> Vec<&'a str> {
    text.lines()
        .find(|l| l.starts_with(&format!("{feature} ")))
        .unwrap_or_else(|| panic!("{text}"))
        .split_whitespace()
        .collect()
}

#[test]
fn enable_status_disable_in_the_default_file() {
    let dir = temp_dir("default");
    let out = run_in(&dir, &["flags", "enable", "kernels", "--rollout", "10"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.join("morphogen-flags.toml").is_file());

    let out = run_in(&dir, &["flags", "status", "--id", "run-7"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "no warning for a valid file: {}", stderr(&out));
    let text = stdout(&out);
    let kernels = line(&text, "kernels");
    assert_eq!(kernels[1..3], ["yes", "10%"], "{text}");
    assert!(kernels[3] == "in" || kernels[3] == "out", "{text}");
    assert_eq!(line(&text, "message_bus")[1..4], ["no", "0%", "out"], "{text}");

    let out = run_in(&dir, &["flags", "disable", "kernels"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&run_in(&dir, &["flags", "status"]));
    assert_eq!(line(&text, "kernels")[1..3], ["no", "10%"], "{text}");

    let audit = std::fs::read_to_string(dir.join("morphogen-flags.toml.audit.jsonl")).expect("audit log");
    assert_eq!(audit.lines().count(), 2, "{audit}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn full_rollout_takes_every_id_and_file_flag_is_used() {
    let dir = temp_dir("file");
    let out = run_in(&dir, &["flags", "enable", "message_bus", "--rollout", "100", "--file", "other.toml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.join("other.toml").is_file() && !dir.join("morphogen-flags.toml").exists());
    let text = stdout(&run_in(&dir, &["flags", "status", "--file", "other.toml", "--id", "abc"]));
    assert_eq!(line(&text, "message_bus")[1..4], ["yes", "100%", "in"], "{text}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn corrupt_file_warns_on_status_and_refuses_writes() {
    let dir = temp_dir("corrupt");
    let path = dir.join("morphogen-flags.toml");
    std::fs::write(&path, "[kernels\nenabled = yes").unwrap();

    let out = run_in(&dir, &["flags", "status"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let warning = stderr(&out);
    assert_eq!(warning.matches("warning:").count(), 1, "{warning}");
    assert!(warning.contains("invalid"), "{warning}");
    let text = stdout(&out);
    for feature in ["kernels", "extended_lifecycle", "message_bus", "neural_controller"] {
        assert_eq!(line(&text, feature)[1..3], ["no", "0%"], "{text}");
    }

    let out = run_in(&dir, &["flags", "enable", "kernels", "--rollout", "10"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("invalid"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "[kernels\nenabled = yes", "the file was not overwritten");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn unknown_feature_and_bad_rollout_are_user_errors() {
    let dir = temp_dir("unknown");
    let out = run_in(&dir, &["flags", "enable", "warp_drive"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("neural_controller"), "lists the known features: {}", stderr(&out));
    let out = run_in(&dir, &["flags", "enable", "kernels", "--rollout", "101"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!dir.join("morphogen-flags.toml").exists());

    let out = run_in(&dir, &["flags", "status"]);
    assert!(out.status.success());
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
    std::fs::remove_dir_all(&dir).ok();
}
