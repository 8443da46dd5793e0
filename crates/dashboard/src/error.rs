//! What can go wrong while showing a run.

use std::path::PathBuf;

/// A failure of the dashboard, the report or the terminal view.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// The run folder (or folder of runs) does not exist or is not a folder.
    #[error("{} is not a folder; pass a run folder written by `morphogen train` (e.g. runs/fashion-mlp) or a folder of them", path.display())]
    NotAFolder {
        /// The path given.
        path: PathBuf,
    },
    /// A folder given as a policy has no `manifest.json`, or one that is not JSON or not a
    /// policy's (a checkpoint's, say).
    #[error("{}: {problem}; pass a policy folder written by `morphogen controller train-policy --out` (its manifest.json has \"format\": \"morphogen-policy\"), or a run folder", path.display())]
    NotAPolicy {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The server could not listen on the address asked for.
    #[error(
        "cannot listen on {addr}: {source}; pick another address with --addr (e.g. 127.0.0.1:0 for any free port)"
    )]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The terminal could not be set up or drawn to.
    #[error("terminal: {0}; `morphogen watch` needs an interactive terminal (use `morphogen report` elsewhere)")]
    Terminal(std::io::Error),
    /// The server stopped with an error.
    #[error("the dashboard server failed: {0}")]
    Serve(std::io::Error),
}

impl DashboardError {
    /// Whether the request itself was wrong (a missing folder, an address in use), as opposed
    /// to a failure while running: the CLI exits with 2 for these.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            DashboardError::NotAFolder { .. } | DashboardError::NotAPolicy { .. } | DashboardError::Bind { .. }
        )
    }
}
