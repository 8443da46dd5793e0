//! The morphogen engine: seeded layers that grow blueprints at *logical seeds* while a model
//! trains, every seed of a layer running in one vectorized pass.
//!
//! Start with [`SeededLinearConfig`] or [`SeededConv2dConfig`] in place of Burn's layers; drive
//! seeds through their lifecycle with the layers' methods (`request_germination`, `advance`,
//! `health_report`, ...; each layer's [`SeedCore`] holds the rest); list a model's seeded layers
//! with `#[derive(SeededModel)]` and address them by path through [`SeededModel`](trait@SeededModel);
//! [`SeededMultiHeadAttentionConfig`] builds attention whose four projections carry seeds;
//! [`SeededBranchConfig`] builds seeds with no host of their own, beside a block. [`reference`](mod@reference) holds the per-seed loop used as the oracle in
//! tests and the legacy baseline in benchmarks; [`storage`] names how seed state and blueprint
//! banks are laid out, for checkpoints and tools.
#![warn(missing_docs)]

// Lets `#[derive(SeededModel)]`'s `::morphogen_engine` paths resolve inside the engine too.
extern crate self as morphogen_engine;

mod attention;
#[cfg(feature = "kernels")]
mod backends;
mod bank;
mod blend;
mod blueprint;
mod branch;
mod chunks;
mod config;
mod conv;
#[cfg(feature = "kernels")]
mod cube;
mod faulty_kernels;
mod grafting;
mod guard;
mod linear;
mod model;
mod precision;
pub mod reference;
mod registry;
mod seeded_layer;
mod seeds;
mod state;
mod telemetry;

pub use attention::{SeededMultiHeadAttention, SeededMultiHeadAttentionConfig};
#[cfg(feature = "kernels")]
pub use backends::persist_kernel_caches;
#[cfg(feature = "cuda")]
pub use backends::CubeCuda;
pub use blueprint::{Activation, BlueprintInput, BlueprintOp, BlueprintRegistry, BlueprintSpec, ParamShape, Width};
pub use branch::{SeededBranch, SeededBranchConfig};
pub use chunks::ChunkMap;
pub use config::LifecycleConfig;
pub use conv::{SeededConv2d, SeededConv2dConfig};
pub use faulty_kernels::{avoid_faulty_kernels, KernelSwap, FAULTY_KERNELS};
pub use grafting::{Gate, GraftMemory, GraftSignals, GraftingConfig, GraftingSpec, StrategyRegistry};
pub use linear::{SeededLinear, SeededLinearConfig};
#[doc(hidden)]
pub use model::derive_support as __derive;
pub use model::{SeedControl, SeededModel};
pub use morphogen_contracts::*;
/// `#[derive(SeededModel)]`: see [`SeededModel`](trait@SeededModel).
pub use morphogen_derive::SeededModel;
pub use precision::Precision;
pub use registry::{Registry, Spec};
pub use seeds::{HostKind, SeedCore, SeedOptions};

/// How a layer's seed state and blueprint banks are stored: the module record a checkpoint
/// saves ([`SeedParams`](storage::SeedParams)), the device state columns and their host copy,
/// and the bank pages. Training code does not need these; checkpoints and tools do.
pub mod storage {
    pub use crate::bank::{BankPage, BlueprintBank};
    pub use crate::seeds::SeedParams;
    pub use crate::state::{SeedRow, SeedTable, StateColumns, COLUMNS};
}

/// Burn, re-exported so users and macros name the exact version morphogen is built on.
pub use burn;
