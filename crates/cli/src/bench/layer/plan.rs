//! What `morphogen bench layer` measures: the grid of shapes, its points, the active seeds'
//! blueprint and stage, and the iteration counts.

use super::timer::Timer;
use clap::ValueEnum;
use serde::Serialize;
use std::fmt;

/// Blueprint every active seed grows.
pub const BLUEPRINT: &str = "residual_mlp";
/// Grafting strategy of every active seed.
pub const STRATEGY: &str = "fixed_ramp";
/// `graft_step` calls made in GRAFTING to move alpha off zero.
pub const GRAFT_STEPS: usize = 10;

/// The stage active seeds are timed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActiveStage {
    /// GRAFTING, alpha moved off zero by a few fixed-ramp steps: the blueprint is blended in.
    Grafting,
    /// FINE_TUNING: alpha 1, the blueprint fully active and still training.
    FineTuning,
}

/// The shapes to measure: every combination of the four lists.
#[derive(Clone, Debug, Serialize)]
pub struct Grid {
    /// Batch sizes.
    pub batches: Vec<usize>,
    /// Hidden sizes (the layer is hidden -> hidden).
    pub hidden: Vec<usize>,
    /// Seed counts.
    pub seeds: Vec<usize>,
    /// Percent of seeds holding an active blueprint.
    pub active_percent: Vec<usize>,
}

/// Everything a benchmark run needs besides the backend (written into the JSON settings).
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    /// The shapes.
    pub grid: Grid,
    /// Timed iterations per measurement.
    pub iters: usize,
    /// Untimed iterations before each measurement.
    pub warmup: usize,
    /// The reference loop runs only where seeds <= this.
    pub reference_max_seeds: usize,
    /// Timed iterations of the reference loop (after one warm-up).
    pub reference_iters: usize,
    /// Calls per timed sample (not for the reference loop).
    pub burst: usize,
    /// Whether the seeded layer accumulates health telemetry.
    pub telemetry: bool,
    /// Telemetry on one forward pass in every this many.
    pub telemetry_every: usize,
    /// Stage of the active seeds.
    #[serde(rename = "active_stage")]
    pub stage: ActiveStage,
}

impl Plan {
    /// The grid's combinations, batch slowest, active percent fastest.
    pub fn cases(&self) -> Vec<Case> {
        let g = &self.grid;
        let mut cases = Vec::new();
        for &batch in &g.batches {
            for &hidden in &g.hidden {
                for &seeds in &g.seeds {
                    for &active_percent in &g.active_percent {
                        cases.push(Case::new(batch, hidden, seeds, active_percent));
                    }
                }
            }
        }
        cases
    }

    /// How the layer and host paths are timed.
    pub fn timer(&self) -> Timer {
        Timer { warmup: self.warmup, iters: self.iters, burst: self.burst }
    }

    /// How the (slow) reference loop is timed.
    pub fn reference_timer(&self) -> Timer {
        Timer { warmup: 1, iters: self.reference_iters, burst: 1 }
    }
}

/// One point of the grid.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Case {
    /// Rows of the input.
    pub batch: usize,
    /// Features in and out.
    pub hidden: usize,
    /// Seeds of the layer.
    pub seeds: usize,
    /// Percent of seeds asked to be active.
    pub active_percent: usize,
    /// Seeds made active: `active_percent` of `seeds`, rounded.
    pub active_seeds: usize,
}

impl Case {
    /// A case, with the active seed count rounded from the percentage.
    pub fn new(batch: usize, hidden: usize, seeds: usize, active_percent: usize) -> Self {
        let active_seeds = (seeds * active_percent + 50) / 100;
        Case { batch, hidden, seeds, active_percent, active_seeds }
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "batch {} hidden {} seeds {} active {}% ({} seeds)",
            self.batch, self.hidden, self.seeds, self.active_percent, self.active_seeds
        )
    }
}
