//! [`SeededBranch`]: seeds with no host layer of their own, on a branch beside a block.
//!
//! A seeded layer's blueprints can only reach the features its host computes. A branch reads
//! the tensor a block reads (a transformer block's normalized input, a residual block's input)
//! and returns only what its seeds add, which the model adds to the block's output. Its "host" is
//! the identity: with every seed dormant the branch adds exactly zero, and what its `wide_mlp`
//! (`wide_conv`) seeds grow are new hidden units (channels) of the block, each reading every
//! feature of its input (ADR 0023).

use crate::grafting::GraftSignals;
use crate::seeded_layer::seeded_layer;
use crate::seeds::{HostKind, SeedCore, SeedOptions};
use burn::config::Config;
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use morphogen_contracts::MorphogenError;

/// Configuration of a [`SeededBranch`].
#[derive(Config, Debug)]
pub struct SeededBranchConfig {
    /// Features of the tensor the branch reads and adds to, split into `num_seeds` chunks.
    pub features: usize,
    /// What the branch reads: [`HostKind::Linear`], features in the last dimension (dense
    /// blueprints); [`HostKind::Conv2d`], channels of a `[batch, channels, height, width]` image
    /// (conv blueprints too).
    #[config(default = "HostKind::Linear")]
    pub kind: HostKind,
    /// Number of seeds; `1 <= num_seeds <= features`.
    #[config(default = 1)]
    pub num_seeds: usize,
    /// Name of the branch used on its own, in errors and reports (inside a model: its path).
    #[config(default = "String::from(\"seeded_branch\")")]
    pub name: String,
    /// Lifecycle rules, blueprints and grafting strategies.
    #[config(default = "SeedOptions::new()")]
    pub options: SeedOptions,
}

/// Seeds on a branch: `forward(x)` is what the seeds holding a blueprint add to `x`'s chunks,
/// as their stages dictate; zero, and no gradient to `x`, while every seed is dormant.
///
/// Its seeds are those of a Linear or Conv2d layer (the config's `kind`) whose host is the
/// identity, so telemetry measures the branch's input and a drift gate sees a host that never
/// moves.
#[derive(Module, Debug)]
pub struct SeededBranch<B: Backend> {
    /// Seed state, banks, telemetry and kernel guard.
    pub core: SeedCore<B>,
}

impl SeededBranchConfig {
    /// Builds the branch, or says what is wrong with the config.
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> Result<SeededBranch<B>, MorphogenError> {
        let core = SeedCore::new(&self.name, self.kind, [self.features, self.num_seeds], &self.options, device)?;
        Ok(SeededBranch { core })
    }

    /// Builds the branch; panics with [`try_init`](Self::try_init)'s error (Burn's convention).
    pub fn init<B: Backend>(&self, device: &B::Device) -> SeededBranch<B> {
        self.try_init(device).unwrap_or_else(|e| panic!("{e}"))
    }
}

impl<B: Backend> SeededBranch<B> {
    /// `[..., features] -> [..., features]` (kind Linear, any number of leading dimensions) or
    /// `[batch, channels, height, width]` to the same (kind Conv2d): the seeds' contribution on `x`.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let dims = x.dims();
        let (h, spatial) = match self.core.host_kind() {
            HostKind::Linear => (x.reshape([dims[..D - 1].iter().product(), dims[D - 1], 1]), None),
            HostKind::Conv2d => {
                let [n, c, height, width] = [dims[0], dims[1], dims[2], dims[3]];
                (x.reshape([n, c, height * width]), Some([n, height, width]))
            }
        };
        // The seeds' pass returns its input plus their contributions; with nothing held it
        // returns the input itself, so the difference is exactly zero.
        (self.core.apply(h.clone(), spatial) - h).reshape(dims)
    }

    /// [`forward`](Self::forward) with the input's shape checked first.
    pub fn try_forward<const D: usize>(&self, x: Tensor<B, D>) -> Result<Tensor<B, D>, MorphogenError> {
        let features = self.core.chunks().features();
        let (feature_dim, expected) = match self.core.host_kind() {
            HostKind::Linear => (D.checked_sub(1), format!("[..., {features}]")),
            HostKind::Conv2d => ((D == 4).then_some(1), format!("[batch, {features}, height, width]")),
        };
        if feature_dim.is_none_or(|dim| x.dims()[dim] != features) {
            return Err(MorphogenError::ShapeMismatch {
                layer: self.core.name().to_string(),
                expected,
                got: x.dims().to_vec(),
            });
        }
        Ok(self.forward(x))
    }

    /// Moves every GRAFTING seed's alpha one step by its strategy (on device). The identity host
    /// has no weights to drift: a drift gate reads zero drift.
    pub fn graft_step(&mut self, signals: &GraftSignals<B>) -> Result<(), MorphogenError> {
        let features = self.core.chunks().features();
        let device = self.core.device();
        self.core.graft_step_with(signals, || Tensor::eye(features, &device))
    }
}

seeded_layer!(SeededBranch);
