//! Tolaria, the trainer: the epoch loop over a seeded model, its loss, optimizer and data. At
//! each epoch end it measures the controller's gates, asks the controller for decisions,
//! applies them, logs every transition, and keeps a known-good state to roll back to on a
//! NaN/Inf or spiking loss.
//!
//! Users with their own loop call `controller.step(&state)` and `model.apply_command(...)`
//! themselves; [`measure_system`] builds the controller's input from a model.
#![warn(missing_docs)]

mod data;
mod events;
mod models;
mod trainer;

pub use data::{fashion_mnist, Dataset, FASHION_MNIST_DIR};
pub use events::{EventLog, Observer, StageCounts};
pub use models::{Cnn, Mlp, ModelConfig, ModelKind};
pub use trainer::{measure_system, Classifier, TrainOutcome, Trainer, TrainerConfig};

use std::path::PathBuf;

/// What can stop a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The data set is not where it was looked for.
    #[error(
        "Fashion-MNIST not found in {dir}: install Debian's package with `apt-get install dataset-fashion-mnist`, \
         or pass --data DIR with train-images-idx3-ubyte.gz and the three other IDX files"
    )]
    MissingData {
        /// The folder searched.
        dir: PathBuf,
    },
    /// A data file is unreadable or malformed.
    #[error("{path}: {problem}")]
    Data {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A morphogen operation failed (bad config, illegal command, missing signal...).
    #[error(transparent)]
    Morphogen(#[from] morphogen_contracts::MorphogenError),
    /// Training diverged more often than the configured number of rollbacks allows.
    #[error("training diverged {rollbacks} times (last: {reason}); lower the learning rate or raise max_rollbacks")]
    Diverged {
        /// Rollbacks done.
        rollbacks: u32,
        /// Why the last one happened.
        reason: String,
    },
    /// Saving or restoring a checkpoint failed.
    #[error(transparent)]
    Checkpoint(Box<morphogen_checkpoint::CheckpointError>),
    /// Writing the event log failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl From<morphogen_checkpoint::CheckpointError> for TrainError {
    fn from(error: morphogen_checkpoint::CheckpointError) -> Self {
        TrainError::Checkpoint(Box::new(error))
    }
}
