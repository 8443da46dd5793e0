//! [`CheckpointDir`]: a directory of checkpoints with retention, `latest` and rollback.
//!
//! Checkpoints are subdirectories named `step-<step, 12 digits>` (a second save at the same step
//! adds `-1`, `-2`, ...), ordered by step then by that suffix. One process writes to a directory
//! at a time. A checkpoint found damaged when it is read is moved to `quarantine/` (with a
//! `reason.txt`), so it is never restored or counted toward retention again, and is kept for
//! inspection.

use crate::error::CheckpointError;
use crate::io::{write_checkpoint, Checkpoint, TEMP_PREFIX};
use crate::manifest::Progress;
use crate::snapshot::Snapshot;
use burn::module::{AutodiffModule, Module};
use burn::optim::Optimizer;
use burn::tensor::backend::{AutodiffBackend, Backend};
use morphogen_engine::{SeedAddress, SeededModel, Stage};
use std::cmp::Ordering;
use std::fs;
use std::path::{Path, PathBuf};

/// Whether a lower or a higher metric is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Goal {
    /// Lower is better (losses).
    Minimize,
    /// Higher is better (accuracies).
    Maximize,
}

/// Which checkpoints a directory keeps after each save: the newest `keep_last` (at least one)
/// and the `keep_best` with the best metric. Checkpoints whose manifest cannot be read are
/// never deleted (they are left for inspection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Newest checkpoints kept (at least 1).
    pub keep_last: usize,
    /// Best checkpoints by metric kept, in addition.
    pub keep_best: usize,
    /// Which metric values are better.
    pub goal: Goal,
}

impl Default for Retention {
    /// The newest 3 and the best 1 by a loss-like (minimized) metric.
    fn default() -> Self {
        Self { keep_last: 3, keep_best: 1, goal: Goal::Minimize }
    }
}

/// One checkpoint of a directory, from its manifest.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Its directory.
    pub path: PathBuf,
    /// Epoch and step.
    pub progress: Progress,
    /// Its metric, if any.
    pub metric: Option<f64>,
    order: (u64, u64),
}

/// What a save did.
#[derive(Clone, Debug, PartialEq)]
pub struct Saved {
    /// The new checkpoint's directory.
    pub path: PathBuf,
    /// Bytes written.
    pub bytes: u64,
    /// Checkpoints retention deleted.
    pub removed: Vec<PathBuf>,
}

/// What a rollback restored.
#[derive(Debug)]
pub struct Rollback {
    /// The checkpoint restored (progress, RNG, caller JSON such as controller state).
    pub checkpoint: Checkpoint,
    /// Seeds that were active (TRAINING..FINE_TUNING) in the model before the rollback: the
    /// trainer records them as ROLLED_BACK in its event log.
    pub rolled_back: Vec<SeedAddress>,
    /// Newer checkpoints that could not be restored (but are not damaged), and why.
    pub skipped: Vec<String>,
    /// Newer checkpoints found damaged and moved to quarantine.
    pub quarantined: Vec<Quarantined>,
}

/// A checkpoint moved to the quarantine folder because it failed verification.
#[derive(Clone, Debug, PartialEq)]
pub struct Quarantined {
    /// Where it was.
    pub from: PathBuf,
    /// Where it is now.
    pub to: PathBuf,
    /// What failed.
    pub reason: String,
}

impl std::fmt::Display for Quarantined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "checkpoint {} failed verification ({}); moved to {}",
            self.from.display(),
            self.reason,
            self.to.display()
        )
    }
}

/// The folder, inside a checkpoint directory, that damaged checkpoints are moved to.
pub const QUARANTINE_DIR: &str = "quarantine";

/// A checkpoint directory found by a scan.
struct Found {
    path: PathBuf,
    order: (u64, u64),
    entry: Option<Entry>,
}

/// A directory of checkpoints.
#[derive(Clone, Debug)]
pub struct CheckpointDir {
    root: PathBuf,
    retention: Retention,
}

fn parse_name(name: &str) -> Option<(u64, u64)> {
    let rest = name.strip_prefix("step-")?;
    let (step, suffix) = match rest.split_once('-') {
        Some((step, n)) => (step, n.parse().ok()?),
        None => (rest, 0),
    };
    (step.len() == 12 && step.bytes().all(|b| b.is_ascii_digit()))
        .then(|| step.parse().ok())
        .flatten()
        .map(|s| (s, suffix))
}

impl CheckpointDir {
    /// Opens (creating if needed) a checkpoint directory with the default [`Retention`].
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, CheckpointError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(CheckpointError::io("create directory", &root))?;
        Ok(Self { root, retention: Retention::default() })
    }

    /// Sets the retention policy.
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes `snapshot` as a new checkpoint (atomically), reads it back to verify it, then
    /// applies retention.
    pub fn save(&self, snapshot: &Snapshot) -> Result<Saved, CheckpointError> {
        self.remove_temporaries()?;
        let step = snapshot.progress().step;
        let base = format!("step-{step:012}");
        let path = (0..)
            .map(|n| if n == 0 { self.root.join(&base) } else { self.root.join(format!("{base}-{n}")) })
            .find(|p| !p.exists())
            .expect("some suffix is free");
        let bytes = write_checkpoint(&path, snapshot)?;
        Checkpoint::read(&path)?;
        let removed = self.prune()?;
        Ok(Saved { path, bytes, removed })
    }

    /// Deletes temporary directories left by interrupted saves.
    pub fn remove_temporaries(&self) -> Result<Vec<PathBuf>, CheckpointError> {
        let mut removed = Vec::new();
        for (name, path) in self.children()? {
            if name.starts_with(TEMP_PREFIX) {
                fs::remove_dir_all(&path).map_err(CheckpointError::io("remove", &path))?;
                removed.push(path);
            }
        }
        Ok(removed)
    }

    fn children(&self) -> Result<Vec<(String, PathBuf)>, CheckpointError> {
        let entries = fs::read_dir(&self.root).map_err(CheckpointError::io("list", &self.root))?;
        let mut children = Vec::new();
        for entry in entries {
            let entry = entry.map_err(CheckpointError::io("list", &self.root))?;
            if let Some(name) = entry.file_name().to_str() {
                children.push((name.to_string(), entry.path()));
            }
        }
        Ok(children)
    }

    /// Checkpoint directories, oldest first, with their manifest if it reads and verifies.
    fn scan(&self) -> Result<Vec<Found>, CheckpointError> {
        let mut found: Vec<Found> = self
            .children()?
            .into_iter()
            .filter_map(|(name, path)| Some((path, parse_name(&name)?)))
            .filter(|(path, _)| path.is_dir())
            .map(|(path, order)| {
                let entry = Checkpoint::read_manifest(&path).ok().map(|m| Entry {
                    path: path.clone(),
                    progress: m.progress,
                    metric: m.metric,
                    order,
                });
                Found { path, order, entry }
            })
            .collect();
        found.sort_by_key(|f| f.order);
        Ok(found)
    }

    /// Checkpoints whose manifest reads and verifies, oldest first.
    pub fn list(&self) -> Result<Vec<Entry>, CheckpointError> {
        Ok(self.scan()?.into_iter().filter_map(|f| f.entry).collect())
    }

    /// The newest checkpoint that reads and verifies completely.
    pub fn latest(&self) -> Result<Checkpoint, CheckpointError> {
        let mut skipped = Vec::new();
        for Found { path, .. } in self.scan()?.into_iter().rev() {
            match Checkpoint::read(&path) {
                Ok(checkpoint) => return Ok(checkpoint),
                Err(e) => skipped.push(e.to_string()),
            }
        }
        Err(CheckpointError::NoCheckpoint { dir: self.root.clone(), skipped })
    }

    /// Reads and verifies every checkpoint; each damaged one is moved to quarantine. Run it when
    /// a run resumes, so retention counts only checkpoints that can be restored.
    pub fn verify_all(&self) -> Result<Vec<Quarantined>, CheckpointError> {
        let mut quarantined = Vec::new();
        for Found { path, .. } in self.scan()? {
            if let Err(error) = Checkpoint::read(&path) {
                if error.is_corruption() {
                    quarantined.push(self.quarantine(&path, &error.to_string())?);
                }
            }
        }
        Ok(quarantined)
    }

    /// Moves the checkpoint at `path` into the quarantine folder with a `reason.txt`.
    fn quarantine(&self, path: &Path, reason: &str) -> Result<Quarantined, CheckpointError> {
        let folder = self.root.join(QUARANTINE_DIR);
        fs::create_dir_all(&folder).map_err(CheckpointError::io("create directory", &folder))?;
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let to = (0..)
            .map(|n| if n == 0 { folder.join(&name) } else { folder.join(format!("{name}.{n}")) })
            .find(|p| !p.exists())
            .expect("some suffix is free");
        fs::rename(path, &to).map_err(CheckpointError::io("move into quarantine", path))?;
        let note = to.join("reason.txt");
        fs::write(&note, format!("{reason}\n")).map_err(CheckpointError::io("write", &note))?;
        Ok(Quarantined { from: path.to_path_buf(), to, reason: reason.to_string() })
    }

    /// Deletes what the retention policy does not keep; returns the deleted directories.
    fn prune(&self) -> Result<Vec<PathBuf>, CheckpointError> {
        let entries = self.list()?;
        let keep = kept(&entries, self.retention);
        let mut removed = Vec::new();
        for entry in entries.iter().filter(|e| !keep.contains(&e.order)) {
            fs::remove_dir_all(&entry.path).map_err(CheckpointError::io("remove", &entry.path))?;
            removed.push(entry.path.clone());
        }
        Ok(removed)
    }

    /// Restores the newest checkpoint that reads, verifies and fits `model` (the last known-good
    /// state). On error `model` is unchanged.
    pub fn rollback<B, M>(&self, model: &mut M) -> Result<Rollback, CheckpointError>
    where
        B: Backend,
        M: Module<B> + SeededModel<B>,
    {
        self.rollback_by(model, |checkpoint, model| checkpoint.restore(model))
    }

    /// [`rollback`](Self::rollback) restoring the optimizer's state too.
    pub fn rollback_with_optimizer<B, M, O>(
        &self,
        model: &mut M,
        optimizer: &mut O,
    ) -> Result<Rollback, CheckpointError>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B> + SeededModel<B>,
        O: Optimizer<M, B>,
    {
        self.rollback_by(model, |checkpoint, model| checkpoint.restore_with_optimizer(model, optimizer))
    }

    fn rollback_by<B, M>(
        &self,
        model: &mut M,
        mut restore: impl FnMut(&Checkpoint, &mut M) -> Result<(), CheckpointError>,
    ) -> Result<Rollback, CheckpointError>
    where
        B: Backend,
        M: SeededModel<B>,
    {
        let rolled_back = active_seeds(model);
        let (mut skipped, mut quarantined) = (Vec::new(), Vec::new());
        for Found { path, .. } in self.scan()?.into_iter().rev() {
            let checkpoint = match Checkpoint::read(&path) {
                Ok(checkpoint) => checkpoint,
                Err(e) if e.is_corruption() => {
                    quarantined.push(self.quarantine(&path, &e.to_string())?);
                    continue;
                }
                Err(e) => {
                    skipped.push(format!("{}: {e}", path.display()));
                    continue;
                }
            };
            match restore(&checkpoint, model) {
                Ok(()) => return Ok(Rollback { checkpoint, rolled_back, skipped, quarantined }),
                Err(e) => skipped.push(format!("{}: {e}", path.display())),
            }
        }
        skipped.extend(quarantined.iter().map(|q| format!("{} (quarantined): {}", q.from.display(), q.reason)));
        Err(CheckpointError::NoCheckpoint { dir: self.root.clone(), skipped })
    }
}

/// Orders of the entries retention keeps.
fn kept(entries: &[Entry], retention: Retention) -> Vec<(u64, u64)> {
    let mut keep: Vec<(u64, u64)> = entries.iter().rev().take(retention.keep_last.max(1)).map(|e| e.order).collect();
    let mut ranked: Vec<&Entry> = entries.iter().filter(|e| e.metric.is_some()).collect();
    ranked.sort_by(|a, b| {
        let by_metric = a.metric.partial_cmp(&b.metric).unwrap_or(Ordering::Equal);
        let by_metric = if retention.goal == Goal::Maximize { by_metric.reverse() } else { by_metric };
        by_metric.then(b.order.cmp(&a.order))
    });
    keep.extend(ranked.iter().take(retention.keep_best).map(|e| e.order));
    keep
}

/// Seeds in an active stage (TRAINING, GRAFTING, STABILIZATION, EVALUATING, FINE_TUNING), by layer
/// name: the seeds a rollback reverts.
pub fn active_seeds<B: Backend, M: SeededModel<B>>(model: &M) -> Vec<SeedAddress> {
    let mut active = Vec::new();
    model.visit_seeded(&mut |name, layer| {
        for (seed, row) in layer.seed_core().table().iter().enumerate() {
            if (Stage::Training..=Stage::FineTuning).contains(&row.stage) {
                active.push(SeedAddress { layer: name.to_string(), seed });
            }
        }
    });
    active
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(step: u64, metric: Option<f64>) -> Entry {
        Entry { path: PathBuf::new(), progress: Progress { epoch: 0, step }, metric, order: (step, 0) }
    }

    #[test]
    fn retention_keeps_the_newest_and_the_best() {
        let entries: Vec<Entry> = [(1, Some(0.5)), (2, Some(0.1)), (3, Some(0.9)), (4, None), (5, Some(0.7))]
            .map(|(s, m)| entry(s, m))
            .into();
        let keep = |last, best, goal| {
            let mut k = kept(&entries, Retention { keep_last: last, keep_best: best, goal });
            k.sort();
            k.dedup();
            k.into_iter().map(|o| o.0).collect::<Vec<_>>()
        };
        assert_eq!(keep(2, 1, Goal::Minimize), [2, 4, 5]);
        assert_eq!(keep(1, 2, Goal::Maximize), [3, 5]);
        assert_eq!(keep(0, 0, Goal::Minimize), [5], "the newest is always kept");
    }

    #[test]
    fn names_parse_in_order() {
        assert_eq!(parse_name("step-000000000120"), Some((120, 0)));
        assert_eq!(parse_name("step-000000000120-2"), Some((120, 2)));
        for bad in ["step-120", ".tmp-step-000000000120-1-2", "step-00000000012x", "other"] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }
}
