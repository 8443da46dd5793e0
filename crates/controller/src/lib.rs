//! Tamiyo, the growth controller: at each epoch boundary it reads a [`SystemState`] (global
//! metrics and every layer's seeds and health) and returns [`Decisions`]: serialisable seed
//! commands, each with its reason, and possibly a rollback order. It never touches a model, so
//! the same decisions can cross a message bus.
//!
//! The policy is the design's heuristic one (section 5): grow on a validation plateau while
//! accuracy is below target, at the unhealthiest dormant seeds, within budgets; move every
//! active seed through its measured gates; cull what fails; order a rollback on non-finite
//! metrics.
#![warn(missing_docs)]

mod config;
mod policy;

pub use config::ControllerConfig;
pub use morphogen_contracts::{Command, Decisions, SystemState};
pub use policy::{Controller, ControllerState};
