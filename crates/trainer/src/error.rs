//! What can stop a training run, and the kinds of error a run reports.

use morphogen_contracts::io_advice;
use std::path::PathBuf;

/// What can stop a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The data set is not where it was looked for.
    #[error("{dataset} not found in {dir}: {how}")]
    MissingData {
        /// The folder searched.
        dir: PathBuf,
        /// Which data set.
        dataset: &'static str,
        /// How to get it.
        how: &'static str,
    },
    /// A data file is unreadable or malformed.
    #[error("{path}: {problem}")]
    Data {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The model preset cannot learn the task asked for.
    #[error("the {model} preset cannot serve the task '{task}': {hint}")]
    TaskMismatch {
        /// The preset.
        model: String,
        /// The task asked for.
        task: String,
        /// What to use instead.
        hint: String,
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
    /// A collective operation among data-parallel replicas failed.
    #[error("replica {rank} could not {operation}: {problem}; start every replica with the same model and group size")]
    Collective {
        /// The replica reporting it.
        rank: usize,
        /// What it was doing.
        operation: String,
        /// What went wrong.
        problem: String,
    },
    /// A collective operation waited longer than the replica's timeout for its peers.
    #[error("replica {rank} waited {waited:?} for the other replicas to {operation}; one of them died or hangs: see its log, then resume from the last checkpoint")]
    ReplicaTimeout {
        /// The replica that waited.
        rank: usize,
        /// What it was waiting to do.
        operation: String,
        /// How long it waited.
        waited: std::time::Duration,
    },
    /// The coordinator of a group over several processes cannot be reached or started.
    #[error("the coordinator at {address}: {problem}; start node 0 (it runs the coordinator) with the same --coordinator, and check that this host can reach it")]
    Coordinator {
        /// The coordinator's address.
        address: std::net::SocketAddr,
        /// What went wrong.
        problem: String,
    },
    /// Another node of the group stopped answering while this replica waited on it.
    #[error("replica {rank}: node {node} ({address}) stopped answering while the group was to {operation}; it died or its host is unreachable: the newest checkpoint stays, restart every node with --resume")]
    NodeLost {
        /// The replica that noticed.
        rank: usize,
        /// The node that stopped answering.
        node: usize,
        /// Its tensor address.
        address: std::net::SocketAddr,
        /// What the group was doing.
        operation: String,
    },
    /// A node cannot serve its tensors on its address.
    #[error(
        "node address {address}: cannot listen ({problem}); pass another --node-address, or stop what holds the port"
    )]
    NodeAddress {
        /// The address.
        address: std::net::SocketAddr,
        /// Why not.
        problem: String,
    },
    /// Another replica of the group failed, so this one stopped waiting for it.
    #[error(
        "replica {rank}: replica {failed} failed ({problem}) while the group was to {operation}; \
         stop the run and resume from the last checkpoint"
    )]
    ReplicaFailed {
        /// The replica that stopped.
        rank: usize,
        /// The replica that failed.
        failed: usize,
        /// What the group was doing.
        operation: String,
        /// Why it failed.
        problem: String,
    },
    /// A replica was started with other settings than rank 0 (checked before the first step).
    #[error(
        "replica {rank} was started with {setting} = {here}, rank 0 with {rank_0}; start every \
         replica with the same config (only the checkpoint directory may differ)"
    )]
    ReplicaSettingsDiffer {
        /// The lowest rank whose settings differ from rank 0's.
        rank: usize,
        /// The first setting that differs, as a dotted path (`trainer.learning_rate`).
        setting: String,
        /// Its value on that replica, as JSON.
        here: String,
        /// Its value on rank 0, as JSON.
        rank_0: String,
    },
    /// A replica's seeds are no longer in lockstep with rank 0's.
    #[error("replica {rank}'s seeds differ from rank 0's, first at {layer}; apply every growth decision on every replica at the same step")]
    ReplicasDiverged {
        /// The replica that differs.
        rank: usize,
        /// The first seeded layer (by its path) whose seed state differs.
        layer: String,
    },
    /// Writing the event log failed.
    #[error("writing {path}: {source}{}", io_advice(.source))]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl TrainError {
    /// The kind of this error, as the observer and the error counter see it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            TrainError::MissingData { .. } | TrainError::Data { .. } => ErrorKind::Data,
            TrainError::Morphogen(_) | TrainError::TaskMismatch { .. } => ErrorKind::Engine,
            TrainError::Diverged { .. } => ErrorKind::Diverged,
            TrainError::Checkpoint(_) => ErrorKind::Checkpoint,
            TrainError::Io { .. } => ErrorKind::Io,
            TrainError::Collective { .. }
            | TrainError::Coordinator { .. }
            | TrainError::NodeAddress { .. }
            | TrainError::NodeLost { .. }
            | TrainError::ReplicaTimeout { .. }
            | TrainError::ReplicaFailed { .. }
            | TrainError::ReplicaSettingsDiffer { .. }
            | TrainError::ReplicasDiverged { .. } => ErrorKind::Replicas,
        }
    }
}

/// What kind of error a run reports to its observer (the `kind` label of
/// `morphogen_errors_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// A step's loss was NaN or infinite (the run rolls back).
    NonFiniteLoss,
    /// A step's loss spiked above `spike_factor` times its moving average (the run rolls back).
    LossSpike,
    /// The engine refused an operation (bad config, illegal command, broken invariant).
    Engine,
    /// Saving or restoring a checkpoint failed.
    Checkpoint,
    /// A checkpoint failed verification and was moved to quarantine (the run goes on from an
    /// older one).
    CheckpointCorrupt,
    /// The data set is missing or malformed.
    Data,
    /// Writing a run file failed.
    Io,
    /// Rollbacks ran out.
    Diverged,
    /// No decision came over the message bus in time, or the bus failed (the run goes on).
    Bus,
    /// Data-parallel replicas failed to communicate or fell out of lockstep.
    Replicas,
    /// The neural controller's policy could not be loaded or could not decide: the heuristic
    /// decided instead (the run goes on).
    Policy,
    /// Reported by other code through [`Signals`](crate::Signals) under its own judgement.
    Other,
}

impl ErrorKind {
    /// The label value: `non_finite_loss`, `loss_spike`, `engine`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NonFiniteLoss => "non_finite_loss",
            ErrorKind::LossSpike => "loss_spike",
            ErrorKind::Engine => "engine",
            ErrorKind::Checkpoint => "checkpoint",
            ErrorKind::CheckpointCorrupt => "checkpoint_corrupt",
            ErrorKind::Data => "data",
            ErrorKind::Io => "io",
            ErrorKind::Diverged => "diverged",
            ErrorKind::Bus => "bus",
            ErrorKind::Replicas => "replicas",
            ErrorKind::Policy => "policy",
            ErrorKind::Other => "other",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<morphogen_checkpoint::CheckpointError> for TrainError {
    fn from(error: morphogen_checkpoint::CheckpointError) -> Self {
        TrainError::Checkpoint(Box::new(error))
    }
}
