//! The manifest of a neural controller's policy folder (`manifest.json` beside
//! `weights.safetensors` and `training.jsonl`): what the controller checks before loading the
//! weights, and what the policy report shows.

use serde::{Deserialize, Serialize};

/// What a policy manifest's `format` says.
pub const POLICY_FORMAT: &str = "morphogen-policy";
/// The manifest file of a policy folder (a checkpoint folder has one too, of another format).
pub const POLICY_MANIFEST: &str = "manifest.json";
/// The weights file of a policy folder (safetensors).
pub const POLICY_WEIGHTS: &str = "weights.safetensors";
/// The training log of a policy folder: one JSON object an episode.
pub const POLICY_TRAINING_LOG: &str = "training.jsonl";

/// A policy's `manifest.json`. Fields added later are ignored by older readers; the schema
/// version says whether the features still mean the same.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyManifest {
    /// Always [`POLICY_FORMAT`].
    pub format: String,
    /// The feature schema the policy was trained on.
    pub schema_version: u32,
    /// Candidate feature names, in column order.
    pub candidate_features: Vec<String>,
    /// Run feature names, in column order.
    pub run_features: Vec<String>,
    /// Units per hidden layer.
    pub hidden: usize,
    /// How it was trained (presets, episodes, algorithm, `feature_importance`): free-form, for
    /// people.
    #[serde(default)]
    pub training: serde_json::Value,
    /// SHA-256 of the weights file, hex (filled in when saved).
    #[serde(default)]
    pub weights_sha256: String,
}

impl PolicyManifest {
    /// `training.feature_importance` (feature name to mean absolute effect on the score), most
    /// important first (ties by name); entries that are not numbers are left out. Empty when
    /// the training did not record it.
    pub fn feature_importance(&self) -> Vec<(&str, f64)> {
        let Some(entries) = self.training.get("feature_importance").and_then(|v| v.as_object()) else {
            return Vec::new();
        };
        let mut ranked: Vec<(&str, f64)> =
            entries.iter().filter_map(|(name, value)| Some((name.as_str(), value.as_f64()?))).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
        ranked
    }
}
