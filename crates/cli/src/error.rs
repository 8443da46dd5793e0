//! What can go wrong, and the exit code each failure gives.

use morphogen::burn::tensor::backend::ExecutionError;
use morphogen::trainer::TrainError;
use morphogen::MorphogenError;
use std::path::PathBuf;

/// A failure of a `morphogen` command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The backend asked for is not compiled into this binary.
    #[error("the {backend} backend is not in this build of morphogen; rebuild with `cargo build --release -p morphogen-cli --features {feature}`")]
    BackendNotBuilt {
        /// The backend's name on the command line.
        backend: &'static str,
        /// The cargo feature that builds it in.
        feature: &'static str,
    },
    /// A device index names no device of the backend.
    #[error("--devices: device {index} does not exist; this backend has {count} device(s), numbered from 0")]
    NoSuchDevice {
        /// The index asked for.
        index: usize,
        /// Devices the backend has.
        count: usize,
    },
    /// The engine refused an operation.
    #[error(transparent)]
    Engine(#[from] MorphogenError),
    /// The backend failed while running or syncing.
    #[error("the backend failed: {0}")]
    Execution(#[from] ExecutionError),
    /// The JSON file could not be written.
    #[error("cannot write {}: {source}{}", path.display(), morphogen::io_advice(source))]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A config file could not be read or parsed.
    #[error("config {}: {problem}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// Training stopped.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// A feature flag command failed.
    #[error(transparent)]
    Flags(#[from] morphogen_flags::FlagError),
    /// A message-bus command failed.
    #[error(transparent)]
    Bus(#[from] morphogen_bus::BusError),
    /// A dashboard, report or watch command failed.
    #[error(transparent)]
    Dashboard(#[from] morphogen_dashboard::DashboardError),
    /// A signal stopped the run after a step; it can be resumed.
    #[error("{message}")]
    Stopped {
        /// The signal's number (SIGINT 2, SIGTERM 15).
        signal: i32,
        /// Where the run stopped and how to resume it.
        message: String,
    },
    /// A policy file could not be read or written.
    #[error(transparent)]
    Policy(#[from] morphogen::controller::PolicyError),
    /// The rows could not be encoded as JSON.
    #[error("cannot encode the rows as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl CliError {
    /// The process exit status: 2 for a request this binary cannot serve (as for bad flags),
    /// 1 for failures while running.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::BackendNotBuilt { .. } | CliError::Config { .. } | CliError::NoSuchDevice { .. } => 2,
            CliError::Engine(MorphogenError::InvalidConfig { .. }) => 2,
            CliError::Train(
                TrainError::TaskMismatch { .. }
                | TrainError::ReplicaSettingsDiffer { .. }
                | TrainError::Coordinator { .. }
                | TrainError::NodeAddress { .. },
            ) => 2,
            CliError::Train(TrainError::Morphogen(MorphogenError::InvalidConfig { .. })) => 2,
            CliError::Flags(error) if error.is_user_error() => 2,
            CliError::Dashboard(error) if error.is_user_error() => 2,
            CliError::Bus(morphogen_bus::BusError::BadUrl { .. }) => 2,
            CliError::Policy(_) => 2,
            // The shell's convention for a process ended by a signal.
            CliError::Stopped { signal, .. } => 128 + *signal as u8,
            _ => 1,
        }
    }
}
