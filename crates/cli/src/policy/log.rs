//! `training.jsonl`: one line per episode (phase, preset, seed, reward, score, parameters added,
//! germinations, culls, the policy's loss after its step), written as episodes end beside the
//! `--out` folder and moved into it with the policy, so a run cut short keeps its curves.

use super::episode::Episode;
use crate::error::CliError;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The log being written.
pub struct TrainingLog {
    path: PathBuf,
    file: std::fs::File,
}

impl TrainingLog {
    /// Starts the log of the policy that will be saved as `out`.
    pub fn create(out: &Path) -> Result<Self, CliError> {
        let path = out.with_extension("training.jsonl");
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| CliError::Write { path: parent.into(), source })?;
        }
        let file = std::fs::File::create(&path).map_err(|source| CliError::Write { path: path.clone(), source })?;
        Ok(Self { path, file })
    }

    /// Appends episode `index` of `phase`.
    pub fn episode(
        &mut self,
        index: usize,
        phase: &str,
        episode: &Episode,
        reward: f32,
        policy_loss: Option<f32>,
    ) -> Result<(), CliError> {
        let line = serde_json::json!({
            "episode": index,
            "phase": phase,
            "preset": episode.preset.name(),
            "seed": episode.seed,
            "reward": reward,
            "score": episode.score,
            "params_added": episode.params_added,
            "host_params": episode.host_params,
            "germinated": episode.germinated,
            "culled": episode.culled,
            "policy_loss": policy_loss,
        });
        writeln!(self.file, "{line}")
            .and_then(|()| self.file.flush())
            .map_err(|source| CliError::Write { path: self.path.clone(), source })
    }

    /// Moves the log into the saved policy folder `out`.
    pub fn finish(self, out: &Path) -> Result<(), CliError> {
        let target = out.join(morphogen::controller::POLICY_TRAINING_LOG);
        std::fs::rename(&self.path, &target).map_err(|source| CliError::Write { path: target, source })
    }
}
