//! Configuration shared by every seeded layer.

use burn::config::Config;

/// Lifecycle rules and resources of a seeded layer.
#[derive(Config, Debug, PartialEq)]
pub struct LifecycleConfig {
    /// Epochs a culled seed must wait before it may germinate again.
    #[config(default = 3)]
    pub embargo_epochs: u32,
    /// Failures (culls, rollbacks) after which a seed never germinates again.
    #[config(default = 3)]
    pub quarantine_after: u32,
    /// Whether a FOSSILIZED seed may be reset to DORMANT (dropping its blueprint).
    #[config(default = false)]
    pub reuse_fossilized: bool,
    /// Whether FOSSILIZED blueprints keep learning with the host, as part of it (joint
    /// training), instead of staying frozen from fossilization on.
    #[config(default = false)]
    pub train_fossilized: bool,
    /// Whether the forward pass accumulates health telemetry.
    #[config(default = true)]
    pub telemetry: bool,
    /// Accumulate telemetry on one forward pass in every `telemetry_every` (1: every pass). The
    /// statistics are means over the window, so sampling trades their precision for speed.
    #[config(default = 1)]
    pub telemetry_every: usize,
    /// Use morphogen's CubeCL kernels where the backend has them (CUDA, wgpu builds); the tensor
    /// path, which gives the same results, otherwise.
    #[config(default = true)]
    pub kernels: bool,
    /// Check each kernel (telemetry; active seeds) against the tensor path on its first pass and
    /// every this many kernel passes after (0: never). A check reads both results back to the host once; a
    /// disagreement sends the layer to the tensor path for the rest of the run.
    #[config(default = 1000)]
    pub kernel_check_every: usize,
    /// Largest difference a check accepts, relative to `max(1, |tensor path value|)`. Suits
    /// f32; on f16/bf16 outputs at least 0.1 is used, as the tensor path sums in the half type.
    /// The active-seed kernel's check (its forward output) allows ten times this: the tensor
    /// path's blueprint matmuls may run through TF32 on CUDA.
    #[config(default = 1e-3)]
    pub kernel_check_tolerance: f32,
    /// Rows of a blueprint bank's first page; later pages double.
    #[config(default = 64)]
    pub bank_page_rows: usize,
}

impl LifecycleConfig {
    /// Whether a blueprint held by a seed in `stage` learns: in TRAINING, GRAFTING and
    /// FINE_TUNING, and in FOSSILIZED with `train_fossilized`.
    pub fn trains_blueprint(&self, stage: morphogen_contracts::Stage) -> bool {
        stage.trains_blueprint() || (self.train_fossilized && stage == morphogen_contracts::Stage::Fossilized)
    }

    /// Whether a kernel's `pass`-th pass (counted from 1) is checked against the tensor path:
    /// the first and every `kernel_check_every` after; none with 0.
    pub(crate) fn kernel_check_due(&self, pass: u64) -> bool {
        let every = self.kernel_check_every as u64;
        every > 0 && (pass - 1).is_multiple_of(every)
    }

    /// Checks the values are usable.
    pub fn validate(&self, layer: &str) -> Result<(), morphogen_contracts::MorphogenError> {
        if self.kernel_check_tolerance.is_nan() || self.kernel_check_tolerance < 0.0 {
            return Err(morphogen_contracts::MorphogenError::InvalidConfig {
                component: format!("lifecycle of layer '{layer}'"),
                problem: format!("kernel_check_tolerance = {}", self.kernel_check_tolerance),
                hint: "use a tolerance >= 0 (1e-3 suits f32)".into(),
            });
        }
        if self.quarantine_after == 0 || self.bank_page_rows == 0 || self.telemetry_every == 0 {
            return Err(morphogen_contracts::MorphogenError::InvalidConfig {
                component: format!("lifecycle of layer '{layer}'"),
                problem: format!(
                    "quarantine_after = {}, bank_page_rows = {}, telemetry_every = {}",
                    self.quarantine_after, self.bank_page_rows, self.telemetry_every
                ),
                hint: "each must be at least 1".into(),
            });
        }
        Ok(())
    }
}
