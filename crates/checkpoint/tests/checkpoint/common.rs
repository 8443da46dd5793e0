//! Models and helpers shared by the checkpoint tests (generic tensor helpers come from
//! `morphogen_testkit`).

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use morphogen_engine::{
    seeded_model, storage::SeedTable, GraftingConfig, SeedControl, SeedOptions, SeededLinear, SeededLinearConfig,
    SeededModel, Stage, StrategyRegistry,
};
use morphogen_testkit::bits;

/// A two-layer MLP whose layers are both seeded.
#[derive(Module, Debug)]
pub struct Net<B: Backend> {
    pub fc1: SeededLinear<B>,
    pub fc2: SeededLinear<B>,
}

seeded_model!(Net { fc1, fc2 });

impl<Bk: Backend> Net<Bk> {
    pub fn forward(&self, x: Tensor<Bk, 2>) -> Tensor<Bk, 2> {
        self.fc2.forward(burn::tensor::activation::relu(self.fc1.forward(x)))
    }
}

/// Short ramps so grafting moves visibly within a few steps.
pub fn options() -> SeedOptions {
    SeedOptions::new()
        .with_strategies(StrategyRegistry::from_config(&GraftingConfig::new().with_ramp_steps(4)).unwrap())
}

/// A freshly built `Net` (every seed dormant, no bank allocated).
pub fn net<Bk: Backend>(device: &Bk::Device) -> Net<Bk> {
    Net {
        fc1: SeededLinearConfig::new(6, 10)
            .with_num_seeds(4)
            .with_name("fc1".into())
            .with_options(options())
            .init(device),
        fc2: SeededLinearConfig::new(10, 3)
            .with_num_seeds(3)
            .with_name("fc2".into())
            .with_options(options())
            .init(device),
    }
}

/// Moves seeds through the listed stages (after germination).
pub fn advance<Bk: Backend>(layer: &mut impl SeedControl<Bk>, seeds: &[usize], stages: &[Stage]) {
    for &stage in stages {
        layer.seed_core_mut().advance_many(seeds, stage).unwrap();
    }
}

/// A grown `Net`: blueprints in several stages on both layers, with a performance-linked and a
/// drift-controlled strategy in use (so gate memory exists after a grafting step).
pub fn grown<Bk: Backend>(device: &Bk::Device) -> Net<Bk> {
    let mut model = net::<Bk>(device);
    model.fc1.request_germinations(&[0, 2], "residual_mlp", "performance_linked").unwrap();
    advance(&mut model.fc1, &[0, 2], &[Stage::Training, Stage::Grafting]);
    model.fc1.request_germination(3, "low_rank", "drift_controlled").unwrap();
    advance(&mut model.fc1, &[3], &[Stage::Training, Stage::Grafting]);
    model.fc1.request_germination(1, "low_rank", "fixed_ramp").unwrap();
    model.fc2.request_germination(1, "residual_mlp", "fixed_ramp").unwrap();
    advance(&mut model.fc2, &[1], &[Stage::Training]);
    model
}

/// A parameter's id, shape and bit pattern.
pub type ParamBits = (u64, Vec<usize>, Vec<u32>);

/// A seeded layer's host table and alpha bits.
pub type SeedState = (SeedTable, Vec<u32>);

struct Bits(Vec<ParamBits>);

impl<Bk: Backend> ModuleVisitor<Bk> for Bits {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<Bk, D>>) {
        self.0.push((param.id.val(), param.dims().to_vec(), bits(param.val())));
    }
}

/// Every float parameter of a module: id, shape and bit pattern, in visiting order.
pub fn param_bits<Bk: Backend, M: Module<Bk>>(module: &M) -> Vec<ParamBits> {
    let mut visitor = Bits(Vec::new());
    module.visit(&mut visitor);
    visitor.0
}

/// Every seeded layer's host table and alpha column (bit patterns).
pub fn seed_states<Bk: Backend, M: SeededModel<Bk>>(model: &M) -> Vec<SeedState> {
    let mut states = Vec::new();
    model.visit_seeded(&mut |_, layer| {
        let core = layer.seed_core();
        states.push((core.table().clone(), bits(core.params().state.alpha.val())));
    });
    states
}

/// Everything a restore could change: parameters and seed states.
pub fn fingerprint<Bk: Backend, M: Module<Bk> + SeededModel<Bk>>(model: &M) -> (Vec<ParamBits>, Vec<SeedState>) {
    (param_bits(model), seed_states(model))
}
