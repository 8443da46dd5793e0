//! Plain data shared by every part of morphogen: the seed lifecycle, seed and health reports,
//! controller commands and the error type. No tensors here, so these types can cross process
//! boundaries (message bus, event logs, checkpoints' JSON) unchanged.
#![warn(missing_docs)]

mod command;
mod error;
mod io_advice;
mod policy_manifest;
mod report;
mod stage;
mod system;

pub use command::{Command, CommandKind, Decisions, SeedAddress};
pub use error::MorphogenError;
pub use io_advice::io_advice;
pub use policy_manifest::{PolicyManifest, POLICY_FORMAT, POLICY_MANIFEST, POLICY_TRAINING_LOG, POLICY_WEIGHTS};
pub use report::{LayerHealthReport, SeedHealth, SeedInfo};
pub use stage::Stage;
pub use system::{GlobalMetrics, LayerState, Score, SeedEvaluation, SystemState, TransitionEvent};

/// Version of the serialised forms in this crate; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// Result type used across morphogen.
pub type Result<T, E = MorphogenError> = std::result::Result<T, E>;
