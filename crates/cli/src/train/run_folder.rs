//! The run folder `<runs-dir>/<name>/`: the files `morphogen train` writes (the config, the
//! event, metric and per-seed logs, the final model; checkpoints go to `checkpoints/`).

use crate::error::CliError;
use morphogen::burn::module::Module;
use morphogen::burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use morphogen::burn::tensor::backend::Backend;
use morphogen::trainer::{EventLog, RunConfig, TrainError};
use std::path::{Path, PathBuf};

/// A run's folder, created.
pub struct RunFolder {
    dir: PathBuf,
    /// Whether this run created the folder (it did not exist before).
    new: bool,
}

impl RunFolder {
    /// Creates `<runs_dir>/<name>/` (and its parents) and writes the run's `config.toml` into it.
    pub fn create(config: &RunConfig) -> Result<Self, CliError> {
        let dir = config.run.runs_dir.join(&config.run.name);
        let new = !dir.exists();
        std::fs::create_dir_all(&dir).map_err(|source| CliError::Write { path: dir.clone(), source })?;
        let path = dir.join("config.toml");
        let text = toml::to_string_pretty(config).expect("configs serialise");
        std::fs::write(&path, text).map_err(|source| CliError::Write { path, source })?;
        Ok(Self { dir, new })
    }

    /// `error`, after removing the folder if this run created it and `error` is a replica
    /// started with other settings: bad input leaves nothing written.
    pub fn undo_if_refused(&self, error: CliError) -> CliError {
        if self.new && matches!(error, CliError::Train(TrainError::ReplicaSettingsDiffer { .. })) {
            std::fs::remove_dir_all(&self.dir).ok();
        }
        error
    }

    /// The folder itself.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// `events.jsonl`, every transition; appended to when `resume`, else started afresh.
    pub fn events(&self, resume: bool) -> Result<EventLog, CliError> {
        Ok(EventLog::to_file(&self.dir.join("events.jsonl"), resume)?)
    }

    /// `metrics.jsonl`: one line of global metrics per epoch.
    pub fn metrics_path(&self) -> PathBuf {
        self.dir.join("metrics.jsonl")
    }

    /// `layers.jsonl`: every seed's state, one line per epoch.
    pub fn layers_path(&self) -> PathBuf {
        self.dir.join("layers.jsonl")
    }

    /// Saves `model` as `model.mpk`, full precision.
    pub fn save_model<B: Backend, M: Module<B>>(&self, model: &M) -> Result<(), CliError> {
        let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
        let path = self.dir.join("model");
        model
            .clone()
            .save_file(&path, &recorder)
            .map_err(|e| CliError::Write { path, source: std::io::Error::other(e.to_string()) })
    }
}
