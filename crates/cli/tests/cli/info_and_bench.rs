//! `morphogen info` and `morphogen bench layer` end to end.

use crate::common::{run, scratch};
use std::path::PathBuf;

/// A JSON file path private to this test.
fn temp_json(name: &str) -> PathBuf {
    scratch(&format!("bench-{name}")).join("rows.json")
}

#[test]
fn info_lists_the_ndarray_backend() {
    let out = run(&["info"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
    assert!(text.contains("ndarray"), "{text}");
}

#[test]
fn quick_layer_bench_writes_positive_times() {
    let path = temp_json("quick");
    let out = run(&["bench", "layer", "--quick", "--iters", "1", "--warmup", "0", "--json", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("| batch |"));
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("json written")).unwrap();
    std::fs::remove_file(&path).ok();
    let rows = json["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 6, "quick grid: 1 batch x 1 hidden x 2 seed counts x 3 active levels");
    for row in rows {
        let measured = &row["measured"];
        for pass in ["forward", "forward_backward"] {
            for path in ["host_ms", "tensor_ms", "kernel_ms", "kernel_queue_ms", "reference_ms"] {
                let ms = measured[pass][path].as_f64().unwrap_or_else(|| panic!("{pass}.{path} in {row}"));
                assert!(ms > 0.0, "{pass}.{path} = {ms} in {row}");
            }
            let (queue, total) = (measured[pass]["kernel_queue_ms"].as_f64(), measured[pass]["kernel_ms"].as_f64());
            assert!(queue <= total, "queuing takes part of the call: {queue:?} of {total:?} ms in {row}");
        }
        assert_eq!(measured["state_bytes_per_seed"].as_u64(), Some(32), "{row}");
        for kernel in ["telemetry_kernel_ran", "active_kernel_ran"] {
            assert_eq!(measured[kernel].as_bool(), Some(false), "ndarray has no kernels: {row}");
        }
        let dormant = row["active_seeds"].as_u64() == Some(0);
        let gbps = measured["telemetry"]["kernel_gbps"].as_f64();
        assert_eq!(gbps.is_some_and(|g| g > 0.0), dormant, "telemetry pass timed exactly when all dormant: {row}");
        if dormant {
            let (queue, total) =
                (measured["telemetry"]["kernel_queue_ms"].as_f64(), measured["telemetry"]["kernel_ms"].as_f64());
            let (queue, total) = (queue.expect("queue time"), total.expect("pass time"));
            assert!(queue > 0.0 && queue <= total, "queuing takes part of the pass: {queue} of {total} ms");
        }
    }
}

#[test]
fn bad_flags_and_missing_backends_exit_2_with_a_message() {
    let out = run(&["bench", "layer", "--active", "150"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("over 100 percent"));
    let out = run(&["bench", "layer", "--seeds", "0"]);
    assert_eq!(out.status.code(), Some(2));
    if !cfg!(feature = "cuda") {
        let out = run(&["bench", "layer", "--quick", "--backend", "cuda"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("--features cuda"));
    }
}

#[test]
fn seeds_beyond_features_are_skipped_rows() {
    let path = temp_json("skipped");
    let args = ["bench", "layer", "--quick", "--seeds", "512", "--active", "0", "--iters", "1", "--warmup", "0"];
    let out = run(&[&args[..], &["--json", path.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("json written")).unwrap();
    std::fs::remove_file(&path).ok();
    let row = &json["rows"][0];
    assert!(row["measured"].is_null() && row["skipped"].is_string(), "{row}");
}

#[test]
fn growth_bench_runs_the_variants_asked_for_in_order() {
    let path = temp_json("growth");
    let config = scratch("bench-growth-config").join("grow.toml");
    std::fs::write(&config, "[controller]\ntrigger = \"every_epoch\"\n").unwrap();
    let out = run(&[
        "bench",
        "growth",
        "--config",
        config.to_str().unwrap(),
        "--hidden",
        "8",
        "--train-subset",
        "300",
        "--valid-subset",
        "100",
        "--batch-size",
        "50",
        "--steps-per-epoch",
        "4",
        "--epochs",
        "3",
        "--repeats",
        "1",
        "--seed",
        "4",
        "--variants",
        "full,random-sites,static,growing",
        "--json",
        path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("json written")).unwrap();
    std::fs::remove_file(&path).ok();
    let names: Vec<&str> = json["variants"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(names, ["static", "growing", "random sites", "full"]);
    let runs = json["runs"].as_array().unwrap();
    let run_of = |name: &str| runs.iter().find(|r| r["variant"] == name).unwrap_or_else(|| panic!("{name} ran"));
    let (host, full) = (run_of("static"), run_of("full"));
    assert_eq!(run_of("growing")["germinated"].as_u64().map(|g| g > 0), Some(true), "every_epoch grew");
    assert_eq!(run_of("static")["germinated"].as_u64(), Some(0));
    let ratio = full["host_params"].as_f64().unwrap() / host["host_params"].as_f64().unwrap();
    assert!((3.0..5.0).contains(&ratio), "full is about 4x the host's parameters: {ratio}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("| random sites | 4 |").count(), 1, "each run reported as it ends: {stderr}");
    assert!(runs.iter().all(|r| r["seed"] == 4), "--seed 4 picks the first seed: {runs:?}");
}

#[test]
fn an_enlarged_variant_without_growing_runs_is_refused() {
    let out = run(&["bench", "growth", "--variants", "static,enlarged"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("enlarged") && stderr.contains("add growing"), "{stderr}");
    let out = run(&["bench", "growth", "--variants", "full", "--full-ratio", "0.5"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--full-ratio"));
}
