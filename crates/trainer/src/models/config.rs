//! The presets' settings, [`ModelConfig`]: which architecture, its sizes, and its seeds.

use crate::TrainError;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use morphogen_engine::{
    BlueprintSpec, GraftingConfig, HostKind, LifecycleConfig, MorphogenError, Precision, SeedOptions, SeededBranch,
    SeededBranchConfig, SeededModel, StrategyRegistry,
};
use serde::{Deserialize, Serialize};

/// Which preset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// `pixels -> hidden -> hidden -> classes`, both hidden layers seeded.
    Mlp,
    /// Two seeded 3x3 conv layers (`channels[0]`, `channels[1]`) with 2x2 pooling, then a linear head.
    Cnn,
    /// A stem, three stages of two residual blocks with batch norm (widths `width`, `2 width`,
    /// `4 width`; every block conv seeded), global average pooling and a linear head.
    Resnet,
    /// A decoder-only, pre-norm, causal transformer of `layers` blocks (`d_model` wide, `heads`
    /// heads, `context` positions); attention projections and MLP layers seeded.
    Transformer,
}

/// What a model learns: which [`Task`](crate::Task) a run trains it on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// Image classification ([`ImageClassification`](crate::ImageClassification), Fashion-MNIST).
    Classify,
    /// Next-character language modelling ([`NextCharacter`](crate::NextCharacter), a folder of
    /// `.txt` files).
    Lm,
}

impl ModelKind {
    /// The preset's name, as `--model` and the config file spell it.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Mlp => "mlp",
            ModelKind::Cnn => "cnn",
            ModelKind::Resnet => "resnet",
            ModelKind::Transformer => "transformer",
        }
    }

    /// The task the preset learns: images for the MLP, CNN and ResNet, text for the transformer.
    pub fn task(self) -> TaskKind {
        match self {
            ModelKind::Mlp | ModelKind::Cnn | ModelKind::Resnet => TaskKind::Classify,
            ModelKind::Transformer => TaskKind::Lm,
        }
    }

    /// An error unless the preset can learn `task`.
    pub fn check_task(self, task: TaskKind) -> Result<(), TrainError> {
        if self.task() == task {
            return Ok(());
        }
        let hint = match self.task() {
            TaskKind::Classify => "it classifies images: use --task classify, or --model transformer for --task lm",
            TaskKind::Lm => "it models text: use --task lm, or --model mlp|cnn|resnet for --task classify",
        };
        Err(TrainError::TaskMismatch {
            model: self.name().into(),
            task: format!("{task:?}").to_lowercase(),
            hint: hint.into(),
        })
    }
}

/// A preset host model and its seeds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Which preset.
    pub kind: ModelKind,
    /// MLP hidden width.
    pub hidden: usize,
    /// CNN channels of the two conv layers.
    pub channels: [usize; 2],
    /// ResNet channels of the first stage (the second and third have twice and four times as many).
    pub width: usize,
    /// ResNet channels inside a block (its first conv's outputs, its second conv's inputs), as a
    /// multiple of the stage's width, rounded: the block's inner width, which unlike `width`
    /// leaves the residual stream as it is.
    pub inner_ratio: f32,
    /// ResNet: a seeded branch beside each block that keeps its shape (`blocks.<i>.branch`: the
    /// blocks that neither stride nor change channels), reading the block's input and adding to
    /// its residual; what its `wide_conv` seeds grow are new channels inside the block, each
    /// reading every channel of its input. Off: no branch.
    pub block_branch: bool,
    /// Transformer blocks.
    pub layers: usize,
    /// Transformer width.
    pub d_model: usize,
    /// Transformer MLP width (its first layer's outputs), as a multiple of `d_model`, rounded:
    /// the block's inner width, which unlike `d_model` leaves the residual stream as it is.
    pub mlp_ratio: f32,
    /// Transformer: a seeded branch beside each block's MLP (`blocks.<i>.mlp.branch`), reading
    /// the MLP's input and adding to its output; what its seeds grow are new hidden units of
    /// the MLP, each reading every feature (`wide_mlp`). Off: no branch.
    pub mlp_branch: bool,
    /// Transformer attention heads (`d_model` must be a multiple).
    pub heads: usize,
    /// Transformer context: positions seen at once.
    pub context: usize,
    /// Seeds per seeded layer (at most the layer's output features or channels; `seeds` in
    /// configs written before it was renamed).
    #[serde(alias = "seeds")]
    pub num_seeds: usize,
    /// Hidden width of the `residual_mlp`, `wide_mlp` and `wide_conv` blueprints, as a multiple
    /// of the chunk.
    pub blueprint_hidden_ratio: f32,
    /// Epochs a culled seed waits before it may grow again.
    pub embargo_epochs: u32,
    /// FOSSILIZED blueprints keep learning with the host (`LifecycleConfig::train_fossilized`)
    /// instead of staying frozen.
    pub train_fossilized: bool,
    /// Optimizer steps a GRAFTING seed's alpha takes to ramp from 0 to 1 at full speed (the engine's
    /// `GraftingConfig::ramp_steps`); with few steps an epoch, fewer ramp steps let seeds finish
    /// their lifecycle in fewer epochs.
    pub graft_ramp_steps: u32,
    /// Use morphogen's CubeCL kernels where the backend has them (`LifecycleConfig::kernels`).
    pub kernels: bool,
    /// Measure seed telemetry on one training pass in this many (`LifecycleConfig::telemetry_every`):
    /// 1 measures every pass; 4 costs a quarter as much on a GPU, the per-epoch means then
    /// coming from a quarter of the batches.
    pub telemetry_every: usize,
    /// The float type the Linear layers' and attention's products compute in (`f32`, or `bf16`
    /// / `f16` for mixed precision: f32 parameters and optimizer; the MLP and transformer
    /// presets, on a GPU backend).
    pub precision: Precision,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            kind: ModelKind::Mlp,
            hidden: 32,
            channels: [8, 16],
            width: 16,
            inner_ratio: 1.0,
            block_branch: false,
            layers: 2,
            d_model: 64,
            mlp_ratio: 4.0,
            mlp_branch: false,
            heads: 4,
            context: 64,
            num_seeds: 8,
            blueprint_hidden_ratio: 4.0,
            embargo_epochs: 2,
            train_fossilized: false,
            graft_ramp_steps: 100,
            kernels: true,
            telemetry_every: 1,
            precision: Precision::F32,
        }
    }
}

impl ModelConfig {
    /// Checks every size is usable; the error names the field.
    pub fn validate(&self) -> Result<(), MorphogenError> {
        let bad = |field: &str, hint: &str| MorphogenError::InvalidConfig {
            component: format!("model.{field}"),
            problem: format!("{field} is not usable for the {:?} preset", self.kind),
            hint: hint.into(),
        };
        let sizes = [
            ("hidden", self.hidden),
            ("width", self.width),
            ("layers", self.layers),
            ("d_model", self.d_model),
            ("heads", self.heads),
            ("context", self.context),
            ("num_seeds", self.num_seeds),
            ("graft_ramp_steps", self.graft_ramp_steps as usize),
            ("telemetry_every", self.telemetry_every),
        ];
        if let Some((field, _)) = sizes.iter().find(|(_, size)| *size == 0) {
            return Err(bad(field, "use a positive number"));
        }
        if self.channels.contains(&0) {
            return Err(bad("channels", "use two positive channel counts"));
        }
        if self.kind == ModelKind::Transformer && !self.d_model.is_multiple_of(self.heads) {
            return Err(bad("heads", "use a number of heads that divides d_model"));
        }
        let ratios = [
            ("blueprint_hidden_ratio", self.blueprint_hidden_ratio),
            ("inner_ratio", self.inner_ratio),
            ("mlp_ratio", self.mlp_ratio),
        ];
        if let Some((field, _)) = ratios.iter().find(|(_, ratio)| ratio.is_nan() || *ratio <= 0.0) {
            return Err(bad(field, "use a positive ratio"));
        }
        if self.block_branch && self.kind != ModelKind::Resnet {
            return Err(bad(
                "block_branch",
                "block_branch is built for the resnet preset: use mlp_branch on the transformer",
            ));
        }
        if self.mlp_branch && self.kind != ModelKind::Transformer {
            return Err(bad(
                "mlp_branch",
                "mlp_branch is built for the transformer preset: use block_branch on the resnet",
            ));
        }
        if self.precision != Precision::F32 && matches!(self.kind, ModelKind::Cnn | ModelKind::Resnet) {
            return Err(bad(
                "precision",
                "half-precision products are built for the Linear presets (mlp, transformer): use precision = \"f32\"",
            ));
        }
        Ok(())
    }

    /// The seed options every seeded layer of a preset gets.
    pub(crate) fn options(&self) -> Result<SeedOptions, MorphogenError> {
        let ratio = self.blueprint_hidden_ratio;
        let blueprints = SeedOptions::new()
            .blueprints
            .register(BlueprintSpec::residual_mlp(ratio))?
            .register(BlueprintSpec::wide_mlp(ratio))?
            .register(BlueprintSpec::wide_conv(ratio))?
            .register(BlueprintSpec::inner_conv(ratio))?;
        let grafting = GraftingConfig::new().with_ramp_steps(self.graft_ramp_steps);
        Ok(SeedOptions::new()
            .with_blueprints(blueprints)
            .with_strategies(StrategyRegistry::from_config(&grafting)?)
            .with_lifecycle(
                LifecycleConfig::new()
                    .with_embargo_epochs(self.embargo_epochs)
                    .with_train_fossilized(self.train_fossilized)
                    .with_kernels(self.kernels)
                    .with_telemetry_every(self.telemetry_every),
            ))
    }

    /// `ratio` times `width`, rounded, at least 1: a block's inner width.
    pub(crate) fn inner_width(ratio: f32, width: usize) -> usize {
        ((ratio as f64 * width as f64).round() as usize).max(1)
    }

    /// Seeds for a layer with `outputs` output features or channels: the configured count, at
    /// most one per output.
    pub(crate) fn seeds_for(&self, outputs: usize) -> usize {
        self.num_seeds.min(outputs)
    }

    /// A seeded branch of `kind` over `features` if `wanted`, with the preset's seeds and options.
    pub(crate) fn branch<B: Backend>(
        &self,
        wanted: bool,
        kind: HostKind,
        features: usize,
        device: &B::Device,
    ) -> Result<Option<SeededBranch<B>>, MorphogenError> {
        let build = || {
            SeededBranchConfig::new(features)
                .with_kind(kind)
                .with_num_seeds(self.seeds_for(features))
                .with_options(self.options()?)
                .try_init(device)
        };
        wanted.then(build).transpose()
    }
}

/// `y` plus what `branch`, if there is one, adds on `x` (the input of the block it sits beside).
pub(crate) fn plus_branch<B: Backend, const D: usize>(
    y: Tensor<B, D>,
    branch: &Option<SeededBranch<B>>,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    match branch {
        Some(branch) => y + branch.forward(x),
        None => y,
    }
}

/// `model` with every seeded layer named by its path, so errors and spans name paths from the
/// first forward pass on.
pub(crate) fn named<B: Backend, M: SeededModel<B>>(mut model: M) -> M {
    model.name_layers_by_path();
    model
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ratio_that_is_not_positive_or_a_branch_on_the_wrong_preset_is_refused_by_name() {
        let resnet = ModelConfig { kind: ModelKind::Resnet, ..ModelConfig::default() };
        let transformer = ModelConfig { kind: ModelKind::Transformer, ..ModelConfig::default() };
        for (config, field) in [
            (ModelConfig { mlp_branch: true, ..resnet.clone() }, "model.mlp_branch"),
            (ModelConfig { block_branch: true, ..transformer.clone() }, "model.block_branch"),
            (ModelConfig { inner_ratio: 0.0, ..ModelConfig::default() }, "model.inner_ratio"),
            (ModelConfig { mlp_ratio: f32::NAN, ..ModelConfig::default() }, "model.mlp_ratio"),
            (ModelConfig { blueprint_hidden_ratio: -1.0, ..ModelConfig::default() }, "model.blueprint_hidden_ratio"),
        ] {
            match config.validate() {
                Err(MorphogenError::InvalidConfig { component, .. }) => assert_eq!(component, field),
                other => panic!("{field}: expected InvalidConfig, got {other:?}"),
            }
        }
        assert_eq!(ModelConfig::default().validate(), Ok(()));
        assert_eq!(ModelConfig { block_branch: true, ..resnet }.validate(), Ok(()));
        assert_eq!(ModelConfig { mlp_branch: true, ..transformer }.validate(), Ok(()));
    }

    #[test]
    fn inner_widths_round_and_stay_positive() {
        assert_eq!(ModelConfig::inner_width(1.5, 8), 12);
        assert_eq!(ModelConfig::inner_width(1.4, 5), 7);
        assert_eq!(ModelConfig::inner_width(0.01, 8), 1);
    }
}
