//! Steering CubeCL's persisted autotune choices off faulty kernels, on files in CubeCL's format
//! (the entries below have the fields and nesting of a real H200 cache's matmul rankings).

use morphogen_engine::{avoid_faulty_kernels, FAULTY_KERNELS};
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};

const MATMUL_LOG: &str = "autotune/0.10.0/device-0-0-cuda/burn_cubecl-kernel-matmul-tune-base.json.log";

/// A CubeCL autotune entry for the matmul shapes `m, n, k`: `ranking` lists (kernel, index)
/// fastest first, and the first is chosen.
fn entry(m: u64, n: u64, k: u64, ranking: &[(&str, u64)]) -> Value {
    let results: Vec<Value> = ranking
        .iter()
        .enumerate()
        .map(|(rank, (name, index))| {
            let time = json!({ "secs": 0, "nanos": 25_000 + 1_000 * rank });
            let computation = json!({ "mean": time, "median": time, "variance": { "secs": 0, "nanos": 0 }, "min": time, "max": time });
            json!({ "outcome": { "Ok": { "name": name, "index": index, "computation": computation } } })
        })
        .chain(std::iter::once(json!({ "outcome": { "Err": { "Skip": "invalid config" } } })))
        .collect();
    let definition = json!({
        "m": m, "n": n, "k": k, "lhs_pow2_factor": 4, "lhs_stride_factor": 10, "rhs_pow2_factor": 4,
        "rhs_stride_factor": 10, "elem_lhs": { "Scalar": { "Float": "F32" } }, "elem_rhs": { "Scalar": { "Float": "F32" } },
        "elem_out": { "Scalar": { "Float": "F32" } }, "matrix_layout_lhs": "Contiguous",
        "matrix_layout_rhs": { "MildlyPermuted": { "transposed": true, "batch_swap": false } }
    });
    let key = json!({ "definition": definition, "analysis": { "scale_global": "Large", "kind": "General" } });
    json!({ "key": { "key": key, "checksum": "e69471b2de574e1c09587cf0d6ba33d1" }, "value": { "fastest_index": ranking[0].1, "results": results } })
}

fn write_cache(dir: &Path, lines: &[String]) -> PathBuf {
    let file = dir.join(MATMUL_LOG);
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    fs::write(&file, lines.iter().map(|line| format!("{line}\n")).collect::<String>()).unwrap();
    file
}

/// The kernel CubeCL would run for each key: the last entry's `fastest_index`, named.
fn choices(file: &Path) -> Vec<(String, String)> {
    let mut last = std::collections::BTreeMap::new();
    for entry in fs::read_to_string(file).unwrap().lines().filter_map(|line| serde_json::from_str::<Value>(line).ok()) {
        let fastest = entry["value"]["fastest_index"].as_u64().unwrap();
        let name = entry["value"]["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|result| result["outcome"]["Ok"]["index"].as_u64() == Some(fastest))
            .map(|result| result["outcome"]["Ok"]["name"].as_str().unwrap().to_string())
            .unwrap();
        last.insert(entry["key"]["key"]["definition"]["k"].to_string(), name);
    }
    last.into_iter().collect()
}

#[test]
fn a_faulty_choice_gives_way_to_the_fastest_other_kernel_and_the_rest_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let faulty = "matmul_ordered_double_mma_partition_k2_row_count4_rows_per_plane2";
    let lines = [
        entry(
            9537,
            40,
            245,
            &[
                (faulty, 14),
                ("matmul_ordered_double_cmma_partition_k2_row_count8_rows_per_plane2", 15),
                ("matmul_specialized_cyclic_mma", 22),
            ],
        ),
        entry(9537, 245, 40, &[("matmul_simple_cyclic_cmma", 9), (faulty, 14)]),
    ]
    .map(|entry| entry.to_string());
    let file = write_cache(dir.path(), &[lines[0].clone(), "{\"truncated".into(), lines[1].clone()]);

    let swaps = avoid_faulty_kernels(dir.path()).unwrap();

    assert_eq!(swaps.len(), 1, "{swaps:?}");
    assert_eq!((swaps[0].faulty.as_str(), swaps[0].chosen.as_str()), (faulty, "matmul_specialized_cyclic_mma"));
    assert_eq!(swaps[0].shapes, "m 9537 n 40 k 245");
    assert_eq!(swaps[0].file, file);
    assert_eq!(
        choices(&file),
        [
            ("245".to_string(), "matmul_specialized_cyclic_mma".to_string()),
            ("40".to_string(), "matmul_simple_cyclic_cmma".to_string())
        ]
    );
    let text = fs::read_to_string(&file).unwrap();
    assert!(
        text.starts_with(&format!("{}\n{{\"truncated\n{}\n", lines[0], lines[1])),
        "earlier entries are kept as they were"
    );
    assert!(!file.with_extension("log.lock").exists(), "the lock is released");

    assert_eq!(avoid_faulty_kernels(dir.path()).unwrap(), [], "a second pass finds nothing left to change");
}

#[test]
fn a_cache_without_faulty_choices_is_left_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let line = entry(98, 40, 40, &[("matmul_simple_cyclic_cmma_multi_rows", 11), ("matmul_ordered_double_mma", 16)])
        .to_string();
    let only_faulty =
        entry(98, 40, 98, &[("matmul_ordered_double_mma", 16), ("matmul_ordered_double_cmma", 15)]).to_string();
    let file = write_cache(dir.path(), &[line.clone(), only_faulty.clone()]);

    assert_eq!(avoid_faulty_kernels(dir.path()).unwrap(), [], "no choice is faulty but one with nothing else to run");
    assert_eq!(fs::read_to_string(&file).unwrap(), format!("{line}\n{only_faulty}\n"));
    for fused_or_not in ["matmul_ordered_double_mma", "double_buffering_ordered_cmma"] {
        assert!(FAULTY_KERNELS.iter().any(|prefix| fused_or_not.starts_with(prefix)), "{fused_or_not}");
    }
}

#[test]
fn no_cache_yet_is_nothing_to_do_and_a_held_lock_is_an_error_that_keeps_the_file() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(avoid_faulty_kernels(&dir.path().join("never-run")).unwrap(), []);

    let line = entry(9537, 40, 245, &[("matmul_ordered_double_mma", 14), ("matmul_simple_tma_mma", 24)]).to_string();
    let file = write_cache(dir.path(), std::slice::from_ref(&line));
    let lock = file.with_extension("log.lock");
    fs::write(&lock, "held").unwrap();

    let err = avoid_faulty_kernels(dir.path()).unwrap_err();

    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert!(err.to_string().contains("is held by another process"), "{err}");
    assert_eq!(fs::read_to_string(&file).unwrap(), format!("{line}\n"));
    assert!(lock.exists(), "another process's lock is not removed");
}
