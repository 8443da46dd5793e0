//! A policy folder written by `morphogen controller train-policy --out`: its `manifest.json`
//! and `training.jsonl`, one line an episode, read for the policy report.

use crate::tail::{JsonlTail, Record};
use crate::DashboardError;
use morphogen_contracts::{PolicyManifest, POLICY_FORMAT, POLICY_MANIFEST, POLICY_TRAINING_LOG};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Which part of the training an episode belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyPhase {
    /// Learning to copy the heuristic controller's picks.
    Imitation,
    /// Policy-gradient learning from the episode's reward.
    Reinforce,
}

impl PolicyPhase {
    /// The name in `training.jsonl`.
    pub fn name(self) -> &'static str {
        match self {
            PolicyPhase::Imitation => "imitation",
            PolicyPhase::Reinforce => "reinforce",
        }
    }
}

/// One line of `training.jsonl`: a training run of one preset, grown by the policy (fields the
/// report does not show are ignored).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct PolicyEpisode {
    /// The episode's number, from 0, in training order.
    pub episode: u64,
    /// Imitation or reinforce.
    pub phase: PolicyPhase,
    /// The model preset trained (`mlp`, `cnn`, ...).
    pub preset: String,
    /// What the policy was rewarded with.
    pub reward: f64,
    /// The task's score at the episode's end.
    pub score: f64,
    /// Parameters the grown seeds added to the host.
    pub params_added: u64,
}

impl Record for PolicyEpisode {}

/// A policy folder, read once: its manifest (which must be a policy's) and its training log
/// (malformed lines skipped and counted).
#[derive(Debug)]
pub struct PolicyFolder {
    name: String,
    manifest: PolicyManifest,
    training: JsonlTail<PolicyEpisode>,
}

impl PolicyFolder {
    /// Whether `dir` holds a `manifest.json`: it is meant as a policy folder (or is some other
    /// folder with a manifest, which [`PolicyFolder::open`] refuses), not as a run folder.
    pub fn has_manifest(dir: &Path) -> bool {
        dir.join(POLICY_MANIFEST).is_file()
    }

    /// The policy in `dir`. A missing `training.jsonl` is not an error (see
    /// [`PolicyFolder::messages`]); a missing folder is, and so is a manifest that is missing,
    /// not JSON, or not a policy's ([`DashboardError::NotAPolicy`], naming the file).
    pub fn open(dir: &Path) -> Result<Self, DashboardError> {
        if !dir.is_dir() {
            return Err(DashboardError::NotAFolder { path: dir.into() });
        }
        let manifest = read_manifest(&dir.join(POLICY_MANIFEST))?;
        let name = dir.canonicalize().unwrap_or_else(|_| dir.into());
        let name = name.file_name().map_or_else(|| "policy".into(), |n| n.to_string_lossy().into_owned());
        let mut training = JsonlTail::new(&dir.join(POLICY_TRAINING_LOG));
        training.refresh();
        Ok(Self { name, manifest, training })
    }

    /// The folder's name (`grow.policy`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The manifest.
    pub fn manifest(&self) -> &PolicyManifest {
        &self.manifest
    }

    /// The episodes of `training.jsonl`, in file order.
    pub fn episodes(&self) -> &[PolicyEpisode] {
        self.training.records()
    }

    /// Lines of `training.jsonl` skipped because they did not parse.
    pub fn skipped(&self) -> usize {
        self.training.skipped()
    }

    /// What is missing, skipped or unfinished in `training.jsonl`, one sentence each.
    pub fn messages(&self) -> Vec<String> {
        self.training.messages("the policy was saved without its training log, so there are no curves")
    }
}

/// The manifest at `path`, if it is a policy's.
fn read_manifest(path: &Path) -> Result<PolicyManifest, DashboardError> {
    let refuse = |problem: String| DashboardError::NotAPolicy { path: PathBuf::from(path), problem };
    let bytes = std::fs::read(path).map_err(|e| refuse(format!("cannot read it: {e}")))?;
    let json: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| refuse(format!("not JSON: {e}")))?;
    match json.get("format").and_then(|f| f.as_str()) {
        Some(POLICY_FORMAT) => {}
        Some(other) => return Err(refuse(format!("its format is {other:?}, not {POLICY_FORMAT:?}"))),
        None => return Err(refuse("it has no \"format\"".into())),
    }
    serde_json::from_value(json).map_err(|e| refuse(format!("not a complete policy manifest: {e}")))
}
