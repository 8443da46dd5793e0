//! A policy on disk: a folder holding `weights.safetensors` (the network's tensors) and
//! `manifest.json` (feature schema, sizes, how it was trained, the weights' SHA-256). Loading
//! checks all of it and refuses a policy that does not fit, so a run can fall back to the
//! heuristic instead of deciding from garbage.

use crate::features::{CANDIDATE_FEATURES, FEATURE_SCHEMA_VERSION, RUN_FEATURES};
use crate::neural_policy::NeuralPolicy;
use crate::policy_net::PolicyNet;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};

/// What names a policy folder's manifest.
pub const POLICY_FORMAT: &str = "morphogen-policy";
const MANIFEST_FILE: &str = "manifest.json";
const WEIGHTS_FILE: &str = "weights.safetensors";

/// The manifest of a policy file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyManifest {
    /// Always [`POLICY_FORMAT`].
    pub format: String,
    /// The feature schema the policy was trained on ([`FEATURE_SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// Candidate feature names, in column order.
    pub candidate_features: Vec<String>,
    /// Run feature names, in column order.
    pub run_features: Vec<String>,
    /// Units per hidden layer.
    pub hidden: usize,
    /// How it was trained (presets, episodes, rewards): free-form, for people.
    pub training: serde_json::Value,
    /// SHA-256 of `weights.safetensors`, hex (filled in when saved).
    #[serde(default)]
    pub weights_sha256: String,
}

/// Why a policy file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Reading or writing failed.
    #[error("policy {path}: cannot {action}: {source}; check the path (train a policy with `morphogen controller train-policy`)")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The files are damaged.
    #[error("policy {path} is damaged: {problem}; train it again with `morphogen controller train-policy`")]
    Corrupt {
        /// The folder.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The policy was made for other features or by another version.
    #[error("policy {path} does not fit this morphogen: {problem}; train one with this version's `morphogen controller train-policy`")]
    Mismatch {
        /// The folder.
        path: PathBuf,
        /// What differs.
        problem: String,
    },
    /// Saving would replace a policy already there.
    #[error("policy {path} already exists; choose another --out or move it away (nothing was overwritten)")]
    Exists {
        /// The folder.
        path: PathBuf,
    },
}

impl PolicyManifest {
    /// The manifest of a policy with `hidden` units trained as `training` says.
    pub fn describe(hidden: usize, training: serde_json::Value) -> Self {
        Self {
            format: POLICY_FORMAT.into(),
            schema_version: FEATURE_SCHEMA_VERSION,
            candidate_features: CANDIDATE_FEATURES.iter().map(|s| s.to_string()).collect(),
            run_features: RUN_FEATURES.iter().map(|s| s.to_string()).collect(),
            hidden,
            training,
            weights_sha256: String::new(),
        }
    }

    /// Why a policy with this manifest cannot serve this version's features, if it cannot.
    fn mismatch(&self) -> Option<String> {
        let expected = Self::describe(self.hidden, serde_json::Value::Null);
        if self.format != POLICY_FORMAT {
            return Some(format!("format {:?}, expected {POLICY_FORMAT:?}", self.format));
        }
        if self.schema_version != expected.schema_version {
            return Some(format!(
                "feature schema {}, this version reads {}",
                self.schema_version, expected.schema_version
            ));
        }
        if (&self.candidate_features, &self.run_features) != (&expected.candidate_features, &expected.run_features) {
            return Some("its feature names differ from this version's".into());
        }
        (self.hidden == 0).then(|| "hidden size 0".into())
    }
}

impl NeuralPolicy {
    /// Saves to the folder `path`, which must not exist yet; written beside it, then moved into
    /// place, so a crash leaves no half policy.
    pub fn save(&self, path: &Path, training: serde_json::Value) -> Result<(), PolicyError> {
        if path.exists() {
            return Err(PolicyError::Exists { path: path.into() });
        }
        let corrupt = |problem: String| PolicyError::Corrupt { path: path.into(), problem };
        let mut store = SafetensorsStore::from_bytes(None);
        self.net.save_into(&mut store).map_err(|e| corrupt(e.to_string()))?;
        let weights = store.get_bytes().map_err(|e| corrupt(e.to_string()))?;
        let manifest = PolicyManifest {
            training,
            weights_sha256: sha256_hex(&weights),
            ..PolicyManifest::describe(self.net.hidden(), serde_json::Value::Null)
        };
        let manifest = serde_json::to_vec_pretty(&manifest).map_err(|e| corrupt(e.to_string()))?;
        let temp = path.with_extension(format!("partial-{}", std::process::id()));
        fs::create_dir_all(&temp).map_err(io("create", &temp))?;
        fs::write(temp.join(WEIGHTS_FILE), &weights).map_err(io("write", &temp))?;
        fs::write(temp.join(MANIFEST_FILE), manifest).map_err(io("write", &temp))?;
        fs::rename(&temp, path).map_err(io("move into place", path))
    }

    /// Loads the policy folder `path`, checking the manifest against this version's features
    /// and the weights against their hash and the network's shapes.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let read = |name: &str| {
            let file = path.join(name);
            fs::read(&file).map_err(|source| PolicyError::Io { action: "read", path: file, source })
        };
        let corrupt = |problem: String| PolicyError::Corrupt { path: path.into(), problem };
        let manifest: PolicyManifest = serde_json::from_slice(&read(MANIFEST_FILE)?)
            .map_err(|e| corrupt(format!("{MANIFEST_FILE} is not a policy manifest: {e}")))?;
        if let Some(problem) = manifest.mismatch() {
            return Err(PolicyError::Mismatch { path: path.into(), problem });
        }
        let weights = read(WEIGHTS_FILE)?;
        if sha256_hex(&weights) != manifest.weights_sha256 {
            return Err(corrupt(format!("{WEIGHTS_FILE} does not match the hash in {MANIFEST_FILE}")));
        }
        let mut net = PolicyNet::new(manifest.hidden, &Default::default());
        let mut store = SafetensorsStore::from_bytes(Some(weights)).validate(true);
        let applied = net.load_from(&mut store).map_err(|e| corrupt(e.to_string()))?;
        if !applied.is_success() || !applied.missing.is_empty() || !applied.unused.is_empty() {
            return Err(corrupt(format!("its tensors do not fit the network: {applied:?}")));
        }
        Ok(Self { net, manifest })
    }
}

/// A failed `action` on `path`, as a [`PolicyError`].
fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PolicyError {
    let path = path.to_path_buf();
    move |source| PolicyError::Io { action, path, source }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
