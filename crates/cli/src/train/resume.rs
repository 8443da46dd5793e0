//! Resuming a run: its folder brought back to agree with the checkpoint it resumes from.
//!
//! A process can die after appending an epoch's records to the logs and before that epoch's
//! checkpoint is on disk, or a newer checkpoint can turn out damaged; either way the logs then
//! hold records the resumed run will write again. Before the logs are reopened, every checkpoint
//! is verified (damaged ones go to `checkpoints/quarantine/`), and each log record of an epoch
//! after the newest checkpoint's, or cut short by the kill, moves to `superseded.jsonl`, which no
//! reader shows.

use super::run_folder::RunFolder;
use crate::error::CliError;
use morphogen::checkpoint::{CheckpointDir, Quarantined};
use morphogen::trainer::TrainError;
use std::fs;
use std::io::Write;
use std::path::Path;

/// The logs whose records carry the epoch they belong to.
const LOGS: [&str; 3] = ["metrics.jsonl", "layers.jsonl", "events.jsonl"];

/// Where superseded records go, each with the file it came from.
const SUPERSEDED: &str = "superseded.jsonl";

/// Verifies `checkpoints` (quarantining damaged ones) and moves the records past the newest
/// checkpoint's epoch out of `folder`'s logs. Returns what was quarantined.
pub fn agree_with_checkpoint(folder: &RunFolder, checkpoints: &Path) -> Result<Vec<Quarantined>, CliError> {
    let dir = CheckpointDir::open(checkpoints).map_err(TrainError::from)?;
    let quarantined = dir.verify_all().map_err(TrainError::from)?;
    let epoch = dir.list().map_err(TrainError::from)?.last().map_or(0, |entry| entry.progress.epoch);
    for log in LOGS {
        supersede_after(folder.path(), log, epoch)?;
    }
    Ok(quarantined)
}

/// Rewrites `folder/log` without its records past `epoch` (and lines that do not parse),
/// appending those to `superseded.jsonl`. A missing log is left missing.
fn supersede_after(folder: &Path, log: &str, epoch: u64) -> Result<(), CliError> {
    let path = folder.join(log);
    let Ok(text) = fs::read_to_string(&path) else { return Ok(()) };
    let (kept, superseded): (Vec<&str>, Vec<&str>) = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .partition(|line| record_epoch(line).is_some_and(|e| e <= epoch));
    if superseded.is_empty() {
        return Ok(());
    }
    let write = |path: &Path, source| CliError::Write { path: path.to_path_buf(), source };
    let moved = folder.join(SUPERSEDED);
    let mut out = fs::OpenOptions::new().create(true).append(true).open(&moved).map_err(|e| write(&moved, e))?;
    for line in &superseded {
        let record = serde_json::json!({ "file": log, "resumed_after_epoch": epoch, "line": line });
        writeln!(out, "{record}").map_err(|e| write(&moved, e))?;
    }
    out.sync_all().map_err(|e| write(&moved, e))?;
    let temp = folder.join(format!(".{log}.tmp"));
    let body: String = kept.iter().map(|line| format!("{line}\n")).collect();
    fs::write(&temp, body).map_err(|e| write(&temp, e))?;
    fs::rename(&temp, &path).map_err(|e| write(&path, e))
}

/// The `epoch` field of a JSON record line, if it parses.
fn record_epoch(line: &str) -> Option<u64> {
    serde_json::from_str::<serde_json::Value>(line).ok()?.get("epoch")?.as_u64()
}
