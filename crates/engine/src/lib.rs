//! The morphogen engine: seeded layers that grow blueprints at *logical seeds* while a model
//! trains, every seed of a layer running in one vectorized pass.
//!
//! Start with [`SeededLinearConfig`] or [`SeededConv2dConfig`] in place of Burn's layers; drive
//! seeds through their lifecycle with the methods of [`SeedCore`] (which the layers dereference
//! to); list a model's seeded layers with [`SeededModel`]. [`reference`](mod@reference) holds the per-seed loop
//! used as the oracle in tests and the legacy baseline in benchmarks.
#![warn(missing_docs)]

mod bank;
mod blend;
mod blueprint;
mod chunks;
mod config;
mod conv;
#[cfg(feature = "kernels")]
mod cube;
mod grafting;
mod linear;
mod model;
pub mod reference;
mod registry;
mod seeds;
mod state;
mod telemetry;

pub use bank::{BankPage, BlueprintBank};
pub use blueprint::{Activation, BlueprintOp, BlueprintRegistry, BlueprintSpec, ParamShape, Width};
pub use chunks::{ChunkMap, UniformGroup};
pub use config::LifecycleConfig;
pub use conv::{SeededConv2d, SeededConv2dConfig};
pub use grafting::{Gate, GraftSignals, GraftingConfig, GraftingSpec, StrategyRegistry};
pub use linear::{SeededLinear, SeededLinearConfig};
pub use model::{SeedControl, SeededModel};
pub use morphogen_contracts::*;
pub use registry::{Registry, Spec};
pub use seeds::GraftMemory;
pub use seeds::{HostKind, SeedCore, SeedOptions, SeedParams};
pub use state::{SeedRow, SeedTable, StateColumns, COLUMNS};
pub use telemetry::WindowSums;

/// Burn, re-exported so users and macros name the exact version morphogen is built on.
pub use burn;
