//! Autotuned kernels known to compute wrong results, and steering CubeCL's persisted autotune
//! choices away from them (ADR 0024).
//!
//! CubeCL times the candidates for each class of shapes once and appends the ranking to a file
//! under the kernel cache's `autotune/` folder, one JSON entry a line, sorted fastest first; when
//! the file is read, the last entry for a key wins. So a choice is replaced by appending the same
//! entry with another `fastest_index`, which is what [`avoid_faulty_kernels`] does, under
//! CubeCL's own lock file.

use serde_json::Value;
use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Kernel names (prefixes) never to keep as an autotune choice. On an H200 with cubek-matmul
/// 0.2.0 (Burn 0.21), `matmul_ordered_double_mma_partition_k2_row_count4_rows_per_plane2`,
/// chosen for one product of a transformer branch's MLP, made every run end at perplexity 15.0
/// instead of 9.25; the same cache with only that choice changed gave 9.25 (`docs/results.md`,
/// "A wrong matmul kernel"). The whole ordered family goes, also as Burn's fused matmul names it
/// (`double_buffering_ordered_*`, the `cuda-fusion` backend). What it costs: on the 15 rankings
/// of that lease where it had won, the next candidate took 0-21% longer (median 2%) on products
/// of 25-40 microseconds.
pub const FAULTY_KERNELS: &[&str] = &["matmul_ordered_double", "double_buffering_ordered"];

/// How long to wait for a CubeCL process holding an autotune file's lock.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// One autotune choice moved off a faulty kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelSwap {
    /// The autotune file it is recorded in.
    pub file: PathBuf,
    /// The class of shapes, as CubeCL keys it (`m 9537 n 40 k 245` for a matmul).
    pub shapes: String,
    /// The kernel it had chosen.
    pub faulty: String,
    /// The fastest kernel not in [`FAULTY_KERNELS`], chosen now.
    pub chosen: String,
}

/// Replaces every persisted autotune choice of a kernel in [`FAULTY_KERNELS`] under `dir` (a
/// kernel cache folder, as given to `persist_kernel_caches`) by the fastest other candidate of
/// the same ranking, and returns what it replaced. A key whose every candidate is faulty keeps
/// its choice; lines that do not parse are left alone, as CubeCL leaves them. Call it before
/// CubeCL reads the cache (the run then uses the new choices), and after a run to learn whether
/// that run chose a faulty kernel itself. An error is a file that could not be read or written,
/// or a lock held past a few seconds; nothing was lost, the file keeps its earlier entries.
pub fn avoid_faulty_kernels(dir: &Path) -> io::Result<Vec<KernelSwap>> {
    let mut swaps = Vec::new();
    for file in autotune_files(&dir.join("autotune"))? {
        swaps.extend(avoid_in_file(&file)?);
    }
    Ok(swaps)
}

/// Every `*.json.log` under `dir`, at any depth (none when `dir` does not exist).
fn autotune_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    if !dir.is_dir() {
        return Ok(files);
    }
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files.extend(autotune_files(&path)?);
        } else if path.to_string_lossy().ends_with(".json.log") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn avoid_in_file(file: &Path) -> io::Result<Vec<KernelSwap>> {
    let _lock = CacheLock::acquire(file)?;
    let text = fs::read_to_string(file)?;
    // The last entry of each key, in the keys' order (so the appended lines are too).
    let mut last = BTreeMap::new();
    for entry in text.lines().filter_map(|line| serde_json::from_str::<Value>(line).ok()) {
        last.insert(entry["key"].to_string(), entry);
    }
    let mut appended = String::new();
    let mut swaps = Vec::new();
    for mut entry in last.into_values() {
        let Some((faulty, chosen, index)) = replacement(&entry["value"]) else { continue };
        entry["value"]["fastest_index"] = index.into();
        appended.push_str(&entry.to_string());
        appended.push('\n');
        swaps.push(KernelSwap { file: file.to_path_buf(), shapes: shapes(&entry["key"]["key"]), faulty, chosen });
    }
    if !appended.is_empty() {
        OpenOptions::new().append(true).open(file)?.write_all(appended.as_bytes())?;
    }
    Ok(swaps)
}

/// For a ranking whose choice is faulty: (that kernel, the fastest other, its index).
fn replacement(value: &Value) -> Option<(String, String, u64)> {
    let fastest = value["fastest_index"].as_u64()?;
    let ranked: Vec<(&str, u64)> = value["results"]
        .as_array()?
        .iter()
        .filter_map(|result| {
            let ok = &result["outcome"]["Ok"];
            Some((ok["name"].as_str()?, ok["index"].as_u64()?))
        })
        .collect();
    let faulty = |name: &str| FAULTY_KERNELS.iter().any(|prefix| name.starts_with(prefix));
    let (chosen, _) = ranked.iter().find(|&&(_, index)| index == fastest)?;
    if !faulty(chosen) {
        return None;
    }
    let (other, index) = ranked.iter().find(|&&(name, _)| !faulty(name))?;
    Some((chosen.to_string(), other.to_string(), *index))
}

/// `m 9537 n 40 k 245` for a matmul key, else the key's JSON.
fn shapes(key: &Value) -> String {
    let definition = &key["definition"];
    match (definition["m"].as_u64(), definition["n"].as_u64(), definition["k"].as_u64()) {
        (Some(m), Some(n), Some(k)) => format!("m {m} n {n} k {k}"),
        _ => key.to_string(),
    }
}

/// CubeCL's lock on an autotune file: `<file>.lock`, created exclusively and holding the time it
/// was taken, removed when dropped.
struct CacheLock(PathBuf);

impl CacheLock {
    fn acquire(file: &Path) -> io::Result<Self> {
        let mut path = file.as_os_str().to_owned();
        path.push(".lock");
        let path = PathBuf::from(path);
        let started = SystemTime::now();
        loop {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut lock) => {
                    lock.write_all(&serde_json::to_vec(&SystemTime::now()).map_err(io::Error::other)?)?;
                    return Ok(Self(path));
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                    if started.elapsed().unwrap_or_default() > LOCK_WAIT {
                        let held = format!("{} is held by another process; remove it if none runs", path.display());
                        return Err(io::Error::new(io::ErrorKind::TimedOut, held));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(err) => return Err(err),
            }
        }
    }
}

impl Drop for CacheLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}
