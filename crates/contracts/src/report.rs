use crate::Stage;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// One seed's lifecycle state, as read back from its layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeedInfo {
    /// Seed id within its layer.
    pub seed: usize,
    /// Lifecycle stage.
    pub stage: Stage,
    /// Blueprint name, while the seed holds one.
    pub blueprint: Option<String>,
    /// Grafting strategy name, while the seed holds a blueprint.
    pub strategy: Option<String>,
    /// Blend factor in `[0, 1]`.
    pub alpha: f32,
    /// Epochs spent in the current stage.
    pub epochs_in_stage: u32,
    /// Epochs of embargo left after a cull.
    pub embargo_epochs_left: u32,
    /// Culls and failures so far.
    pub failures: u32,
    /// The output features (Conv2d: channels) this seed owns.
    pub chunk: Range<usize>,
}

/// Health statistics of one seed over a telemetry window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeedHealth {
    /// Seed id within its layer.
    pub seed: usize,
    /// Lifecycle stage at report time.
    pub stage: Stage,
    /// Blend factor at report time.
    pub alpha: f32,
    /// Mean of the host output over the chunk and the window.
    pub mean: f32,
    /// Variance of the host output over the chunk and the window.
    pub variance: f32,
    /// Share of the chunk's features that never exceeded zero in the window.
    pub dead_ratio: f32,
    /// Variance-weighted mean correlation between the chunk's features, in `[-1/(n-1), 1]`
    /// (0 for one-feature chunks).
    pub correlation: f32,
    /// Root-mean-square of the blueprint's contribution (0 without a blueprint).
    pub blueprint_rms: f32,
}

/// Health of every seed of one layer over one telemetry window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerHealthReport {
    /// Layer name.
    pub layer: String,
    /// Samples (rows, or rows times pixels for Conv2d) seen in the window.
    pub samples: u64,
    /// One entry per seed, in id order.
    pub seeds: Vec<SeedHealth>,
}
