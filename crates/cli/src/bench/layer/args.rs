//! The flags of `morphogen bench layer`, and their resolution into a [`Plan`].

use super::plan::{ActiveStage, Grid, Plan};
use crate::backend::BackendKind;
use clap::Args;
use std::path::PathBuf;

/// Flags of `morphogen bench layer`. Grid flags left out take the default grid, or the quick
/// one with `--quick`.
#[derive(Args, Debug)]
pub struct LayerArgs {
    /// Backend to run on (`cuda` needs a binary built with `--features cuda`).
    #[arg(long, value_enum, default_value_t = BackendKind::Ndarray)]
    pub backend: BackendKind,
    /// Small grid that finishes in seconds on CPU: batch 32, hidden 256, seeds 16,64,
    /// active 0,10,100, 5 iterations after 2 warm-ups. Explicit flags still override it.
    #[arg(long)]
    pub quick: bool,
    /// Batch sizes, comma-separated [default: 32,256; quick: 32].
    #[arg(long, value_name = "N,..", value_delimiter = ',', value_parser = positive)]
    pub batches: Option<Vec<usize>>,
    /// Hidden sizes (the layer is hidden -> hidden), comma-separated [default: 1024,4096;
    /// quick: 256].
    #[arg(long, value_name = "N,..", value_delimiter = ',', value_parser = positive)]
    pub hidden: Option<Vec<usize>>,
    /// Seed counts, comma-separated; cases with more seeds than hidden features are reported
    /// as skipped [default: 100,1000,10000; quick: 16,64].
    #[arg(long, value_name = "N,..", value_delimiter = ',', value_parser = positive)]
    pub seeds: Option<Vec<usize>>,
    /// Percent of seeds holding an active blueprint, comma-separated, each 0 to 100
    /// [default: 0,10,100].
    #[arg(long, value_name = "PCT,..", value_delimiter = ',', value_parser = percent)]
    pub active: Option<Vec<usize>>,
    /// Timed iterations per measurement; the median is reported [default: 10; quick: 5].
    #[arg(long, value_name = "N", value_parser = positive)]
    pub iters: Option<usize>,
    /// Untimed iterations before each measurement [default: 3; quick: 2].
    #[arg(long, value_name = "N")]
    pub warmup: Option<usize>,
    /// Run the (slow) per-seed reference loop only where seeds <= this; others show "skipped".
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub reference_max_seeds: usize,
    /// Timed iterations of the (slow) reference loop, after one warm-up.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = positive)]
    pub reference_iters: usize,
    /// Calls per timed sample, back to back between two syncs; the sample is their mean. Above 1
    /// the launch-and-sync latency of one call is amortised, as CUDA-event timing would.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = positive)]
    pub burst: usize,
    /// Turn the layer's health telemetry off (it is on by default), to see what it costs.
    #[arg(long)]
    pub no_telemetry: bool,
    /// Accumulate telemetry on one forward pass in every N (1: every pass).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = positive)]
    pub telemetry_every: usize,
    /// Stage the active seeds are timed in.
    #[arg(long, value_enum, default_value_t = ActiveStage::Grafting)]
    pub stage: ActiveStage,
    /// Also write every row (and the run's settings) as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
}

/// Default grid and iteration counts, before flags override them.
struct Preset {
    batches: &'static [usize],
    hidden: &'static [usize],
    seeds: &'static [usize],
    active: &'static [usize],
    iters: usize,
    warmup: usize,
}

/// The full grid (slow on CPU).
const FULL: Preset = Preset {
    batches: &[32, 256],
    hidden: &[1024, 4096],
    seeds: &[100, 1000, 10000],
    active: &[0, 10, 100],
    iters: 10,
    warmup: 3,
};

/// The `--quick` grid.
const QUICK: Preset =
    Preset { batches: &[32], hidden: &[256], seeds: &[16, 64], active: &[0, 10, 100], iters: 5, warmup: 2 };

impl LayerArgs {
    /// The plan these flags ask for: each flag given, else the preset's value.
    pub fn plan(&self) -> Plan {
        let preset = if self.quick { &QUICK } else { &FULL };
        let pick = |flag: &Option<Vec<usize>>, default: &[usize]| flag.clone().unwrap_or_else(|| default.to_vec());
        Plan {
            grid: Grid {
                batches: pick(&self.batches, preset.batches),
                hidden: pick(&self.hidden, preset.hidden),
                seeds: pick(&self.seeds, preset.seeds),
                active_percent: pick(&self.active, preset.active),
            },
            iters: self.iters.unwrap_or(preset.iters),
            warmup: self.warmup.unwrap_or(preset.warmup),
            reference_max_seeds: self.reference_max_seeds,
            reference_iters: self.reference_iters,
            burst: self.burst,
            telemetry: !self.no_telemetry,
            telemetry_every: self.telemetry_every,
            stage: self.stage,
        }
    }
}

/// Parses an integer >= 1.
fn positive(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("not a positive integer ({e})")),
    }
}

/// Parses a whole percentage, 0 to 100.
fn percent(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n <= 100 => Ok(n),
        Ok(n) => Err(format!("{n} is over 100 percent")),
        Err(e) => Err(format!("not a whole percentage 0..=100 ({e})")),
    }
}
