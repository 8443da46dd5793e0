//! A policy on disk: a folder holding `weights.safetensors` (the network's tensors) and
//! `manifest.json` (feature schema, sizes, how it was trained, the weights' SHA-256). Loading
//! checks all of it and refuses a policy that does not fit, so a run can fall back to the
//! heuristic instead of deciding from garbage.

use crate::features::{CANDIDATE_FEATURES, FEATURE_SCHEMA_VERSION, RUN_FEATURES};
use crate::neural_policy::NeuralPolicy;
use crate::policy_net::PolicyNet;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use morphogen_checkpoint::sha256_hex;
use morphogen_contracts::{PolicyManifest, POLICY_FORMAT, POLICY_MANIFEST, POLICY_WEIGHTS};
use safetensors::SafeTensors;
use std::fs;
use std::path::{Path, PathBuf};

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

/// The manifest of a policy with `hidden` units trained as `training` says, for this version's
/// features.
pub(crate) fn manifest_for(hidden: usize, training: serde_json::Value) -> PolicyManifest {
    PolicyManifest {
        format: POLICY_FORMAT.into(),
        schema_version: FEATURE_SCHEMA_VERSION,
        candidate_features: CANDIDATE_FEATURES.iter().map(|s| s.to_string()).collect(),
        run_features: RUN_FEATURES.iter().map(|s| s.to_string()).collect(),
        hidden,
        training,
        weights_sha256: String::new(),
    }
}

/// Why a policy with `manifest` cannot serve this version's features, if it cannot.
fn mismatch(manifest: &PolicyManifest) -> Option<String> {
    let expected = manifest_for(manifest.hidden, serde_json::Value::Null);
    if manifest.format != POLICY_FORMAT {
        return Some(format!("format {:?}, expected {POLICY_FORMAT:?}", manifest.format));
    }
    if manifest.schema_version != expected.schema_version {
        return Some(format!(
            "feature schema {}, this version reads {}",
            manifest.schema_version, expected.schema_version
        ));
    }
    if (&manifest.candidate_features, &manifest.run_features) != (&expected.candidate_features, &expected.run_features)
    {
        return Some("its feature names differ from this version's".into());
    }
    (!(1..=MAX_HIDDEN).contains(&manifest.hidden))
        .then(|| format!("hidden size {}, expected 1 to {MAX_HIDDEN}", manifest.hidden))
}

/// The largest hidden size a policy may name (a network of about 50 M parameters): a damaged
/// manifest must not make the loader allocate without bound.
const MAX_HIDDEN: usize = 4096;

/// `net`'s tensors as safetensors bytes.
fn encode(net: &PolicyNet<crate::neural_policy::PolicyBackend>) -> Result<Vec<u8>, String> {
    let mut store = SafetensorsStore::from_bytes(None);
    net.save_into(&mut store).map_err(|e| e.to_string())?;
    store.get_bytes().map_err(|e| e.to_string())
}

/// Why `weights` cannot fill `net`, if they cannot: every tensor `net` has, of its dtype and
/// shape, and no other (Burn's loader panics on a tensor of another dtype).
fn misfit(weights: &[u8], net: &PolicyNet<crate::neural_policy::PolicyBackend>) -> Option<String> {
    let bytes = encode(net).ok()?;
    let expected = SafeTensors::deserialize(&bytes).ok()?;
    let found = match SafeTensors::deserialize(weights) {
        Ok(found) => found,
        Err(e) => return Some(format!("not a safetensors file: {e}")),
    };
    if found.len() != expected.len() {
        return Some(format!("{} tensors, the network has {}", found.len(), expected.len()));
    }
    let misfit = expected.iter().find_map(|(name, want)| match found.tensor(name) {
        Err(_) => Some(format!("tensor {name} is missing")),
        Ok(got) if (got.dtype(), got.shape()) != (want.dtype(), want.shape()) => Some(format!(
            "tensor {name} is {:?} {:?}, the network's is {:?} {:?}",
            got.dtype(),
            got.shape(),
            want.dtype(),
            want.shape()
        )),
        Ok(_) => None,
    });
    misfit
}

impl NeuralPolicy {
    /// Saves to the folder `path`, which must not exist yet; written beside it, then moved into
    /// place, so a crash leaves no half policy.
    pub fn save(&self, path: &Path, training: serde_json::Value) -> Result<(), PolicyError> {
        if path.exists() {
            return Err(PolicyError::Exists { path: path.into() });
        }
        let corrupt = |problem: String| PolicyError::Corrupt { path: path.into(), problem };
        let weights = encode(&self.net).map_err(corrupt)?;
        let manifest = PolicyManifest {
            training,
            weights_sha256: sha256_hex(&weights),
            ..manifest_for(self.net.hidden(), serde_json::Value::Null)
        };
        let manifest = serde_json::to_vec_pretty(&manifest).map_err(|e| corrupt(e.to_string()))?;
        let temp = path.with_extension(format!("partial-{}", std::process::id()));
        fs::create_dir_all(&temp).map_err(io("create", &temp))?;
        fs::write(temp.join(POLICY_WEIGHTS), &weights).map_err(io("write", &temp))?;
        fs::write(temp.join(POLICY_MANIFEST), manifest).map_err(io("write", &temp))?;
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
        let manifest: PolicyManifest = serde_json::from_slice(&read(POLICY_MANIFEST)?)
            .map_err(|e| corrupt(format!("{POLICY_MANIFEST} is not a policy manifest: {e}")))?;
        if let Some(problem) = mismatch(&manifest) {
            return Err(PolicyError::Mismatch { path: path.into(), problem });
        }
        let weights = read(POLICY_WEIGHTS)?;
        if sha256_hex(&weights) != manifest.weights_sha256 {
            return Err(corrupt(format!("{POLICY_WEIGHTS} does not match the hash in {POLICY_MANIFEST}")));
        }
        let mut net = PolicyNet::new(manifest.hidden, &Default::default());
        if let Some(problem) = misfit(&weights, &net) {
            return Err(corrupt(format!("{POLICY_WEIGHTS}: {problem}")));
        }
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
