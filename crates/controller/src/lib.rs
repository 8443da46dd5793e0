//! Tamiyo, the growth controller: at each epoch boundary it reads a [`SystemState`] (global
//! metrics and every layer's seeds and health) and returns [`Decisions`]: serialisable seed
//! commands, each with its reason, and possibly a rollback order. It never touches a model, so
//! the same decisions can cross a message bus.
//!
//! The policy is the design's heuristic one (section 5): grow on a validation plateau while
//! accuracy is below target, at the unhealthiest dormant seeds, within budgets; move every
//! active seed through its measured gates; cull what fails; order a rollback on non-finite
//! metrics.
//!
//! The same controller runs as a service on a message bus ([`ControllerService`]): a run sends
//! a [`DecisionRequest`] (its state with the controller's config and memory) and applies the
//! [`DecisionReply`]. On the wire, each layer's per-seed fields travel as columns (a sequence
//! as two numbers, other columns as base64 bytes): a 10,000-seed layer is a few hundred
//! kilobytes.
//!
//! A learned policy can decide growth instead ([`Controller::with_policy`], ADR 0021): a
//! [`NeuralPolicy`] scores every candidate growth (a free dormant seed with a blueprint its layer
//! can grow, described by [`CANDIDATE_FEATURES`]) with shared weights in the context of all of
//! them and the run ([`RUN_FEATURES`]), and germinates those that beat waiting, within the same
//! budgets; the gates stay the heuristic's. [`PolicyLearner`] trains one by imitating recorded
//! decisions ([`Controller::recording`]) and by policy gradient; a policy folder holds its
//! weights and a manifest checked on load ([`NeuralPolicy::load`]).
#![warn(missing_docs)]

mod compact;
mod config;
mod exchange;
mod features;
mod neural_policy;
mod policy;
mod policy_file;
mod policy_learning;
mod policy_net;
mod service;

pub use config::{ControllerConfig, GrowthTrigger, SiteSelection};
pub use exchange::{DecisionReply, DecisionRequest, Refusal};
pub use features::{Candidate, Limits, Observation, CANDIDATE_FEATURES, FEATURE_SCHEMA_VERSION, RUN_FEATURES};
pub use morphogen_contracts::{Command, Decisions, SystemState};
pub use morphogen_contracts::{PolicyManifest, POLICY_FORMAT, POLICY_TRAINING_LOG};
pub use neural_policy::{Choice, FeatureEffect, NeuralPolicy, Pick, Picking, PolicyBackend};
pub use policy::{Controller, ControllerState};
pub use policy_file::PolicyError;
pub use policy_learning::{DecisionRecord, PolicyLearner};
pub use service::{ControllerService, Handled, ServiceOptions};
