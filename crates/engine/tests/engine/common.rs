//! Helpers shared by the engine's integration tests.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::Tensor;
use morphogen_engine::{reference, HostKind, SeededBranch, SeededConv2d, SeededLinear};
use morphogen_engine::{
    Activation, BlueprintInput, BlueprintOp, BlueprintRegistry, BlueprintSpec, SeedCore, Stage, Width,
};
use proptest::prelude::*;

// `random_on` serves the kernel suites, which need the `wgpu` or `cuda` feature.
#[cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(unused_imports))]
pub use morphogen_testkit::{assert_close, bits, device, random, random_on, values, RandomBanks, B};

/// A custom blueprint beside the built-ins: GELU and tanh, three dense maps.
pub fn gelu_tanh() -> BlueprintSpec {
    BlueprintSpec {
        name: "gelu_tanh".into(),
        input: BlueprintInput::Chunk,
        ops: vec![
            BlueprintOp::Dense { out: Width::Fixed(3), bias: false },
            BlueprintOp::Act(Activation::Gelu),
            BlueprintOp::Dense { out: Width::Ratio(1.5), bias: true },
            BlueprintOp::Act(Activation::Tanh),
            BlueprintOp::Dense { out: Width::Chunk, bias: true },
        ],
    }
}

/// A custom two-map blueprint with tanh and no first bias.
pub fn tanh_mlp() -> BlueprintSpec {
    BlueprintSpec {
        name: "tanh_mlp".into(),
        input: BlueprintInput::Chunk,
        ops: vec![
            BlueprintOp::Dense { out: Width::Fixed(3), bias: false },
            BlueprintOp::Act(Activation::Tanh),
            BlueprintOp::Dense { out: Width::Chunk, bias: true },
        ],
    }
}

/// The built-in blueprints plus [`gelu_tanh`] and [`tanh_mlp`].
pub fn registry() -> BlueprintRegistry {
    BlueprintRegistry::default().register(gelu_tanh()).unwrap().register(tanh_mlp()).unwrap()
}

/// The built-in grafting strategies.
pub const STRATEGIES: [&str; 4] = ["fixed_ramp", "performance_linked", "drift_controlled", "grad_norm_gated"];

/// Drives a seed along legal edges to `target`, growing `blueprint` with `strategy`.
pub fn reach<Bk: Backend>(
    core: &mut SeedCore<Bk>,
    seed: usize,
    target: Stage,
    blueprint: &str,
    strategy: &str,
    alpha: f32,
) {
    use Stage::*;
    let path: &[Stage] = match target {
        Dormant => &[],
        Germinated => &[Germinated],
        Training => &[Germinated, Training],
        Grafting => &[Germinated, Training, Grafting],
        Stabilization => &[Germinated, Training, Grafting, Stabilization],
        Evaluating => &[Germinated, Training, Grafting, Stabilization, Evaluating],
        FineTuning => &[Germinated, Training, Grafting, Stabilization, Evaluating, FineTuning],
        Fossilized => &[Germinated, Training, Grafting, Stabilization, Evaluating, FineTuning, Fossilized],
        Culled => &[Germinated, Training, Culled],
        Cancelled => &[Germinated, Cancelled],
        RolledBack => &[Germinated, Training, RolledBack],
    };
    for &stage in path {
        match stage {
            Germinated => core.request_germination(seed, blueprint, strategy).unwrap(),
            _ => core.advance(seed, stage).unwrap(),
        }
        if stage == Grafting && target == Grafting {
            core.set_alpha(&[seed], alpha).unwrap();
        }
    }
}

/// A random layer shape and, per seed: stage index, blueprint index, strategy index, alpha and
/// whether to ablate it (when EVALUATING).
#[derive(Debug, Clone)]
pub struct Case {
    pub features: usize,
    pub seeds: usize,
    pub d_in: usize,
    pub batch: usize,
    pub stages: Vec<(usize, usize, usize, f32, bool)>,
}

/// Cases with up to `max_features` features.
pub fn case(max_features: usize) -> impl Strategy<Value = Case> {
    (1usize..max_features, 1usize..6, 1usize..4).prop_flat_map(|(features, d_in, batch)| {
        (1usize..=features).prop_flat_map(move |seeds| {
            let per_seed = (0usize..11, 0usize..10, 0usize..4, 0.0f32..1.0, any::<bool>());
            proptest::collection::vec(per_seed, seeds).prop_map(move |stages| Case {
                features,
                seeds,
                d_in,
                batch,
                stages,
            })
        })
    })
}

/// Puts every seed of `case` in its stage, with its blueprint (from `blueprints`) and strategy.
pub fn populate<Bk: Backend>(core: &mut SeedCore<Bk>, case: &Case, blueprints: &[&str]) {
    let mut ablate = Vec::new();
    for (seed, &(stage, bp, strategy, alpha, abl)) in case.stages.iter().enumerate() {
        let stage = Stage::ALL[stage];
        reach(core, seed, stage, blueprints[bp % blueprints.len()], STRATEGIES[strategy], alpha);
        if stage == Stage::Evaluating && abl {
            ablate.push(seed);
        }
    }
    core.set_ablation(&ablate).unwrap();
}

/// Every bank parameter of `core`.
pub fn bank_tensors<Bk: Backend>(core: &SeedCore<Bk>) -> Vec<Tensor<Bk, 3>> {
    core.params().banks.iter().flatten().flat_map(|b| &b.pages).flat_map(|p| &p.params).map(|p| p.val()).collect()
}

/// `module` with every trainable parameter its own new leaf (same values and ids): a reference
/// computed on it shares no autodiff node with the original, so the two sides' backward passes
/// cannot touch each other's graph.
fn own_leaves<Bk: AutodiffBackend, M: Module<Bk>>(module: M) -> M {
    module.map(&mut OwnLeaves)
}

struct OwnLeaves;

impl<Bk: AutodiffBackend> ModuleMapper<Bk> for OwnLeaves {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<Bk, D>>) -> Param<Tensor<Bk, D>> {
        param.map(|t| if t.is_require_grad() { t.detach().require_grad() } else { t })
    }
}

/// A seeded Linear layer on `x` (`[batch, n, d_in]`) against the reference loop on
/// [`own_leaves`] copies of `x` and the layer: see [`compare_with_reference`].
pub fn linear_matches_reference<Bk: AutodiffBackend>(
    layer: &SeededLinear<Bk>,
    x: Tensor<Bk, 3>,
    weights: Tensor<Bk, 3>,
    output: impl Fn(&[f32], &[f32], &str),
    gradient: impl Fn(&[f32], &[f32], &str),
) {
    let x = x.require_grad();
    let fast = layer.forward(x.clone());
    // After the forward: the host's lazily initialized weights exist, so the twin copies them.
    let (twin, x_twin) = (own_leaves(layer.clone()), x.clone().detach().require_grad());
    let [batch, n, _] = x.dims();
    let features = fast.dims()[2];
    let h = twin.host.forward(x_twin.clone()).reshape([batch * n, features, 1]);
    let slow = reference::apply(&twin.core, h, None).reshape([batch, n, features]);
    compare_with_reference(
        Side { out: fast, x: &x, host_weight: Some(layer.host.weight.val()), core: &layer.core },
        Side { out: slow, x: &x_twin, host_weight: Some(twin.host.weight.val()), core: &twin.core },
        weights,
        output,
        gradient,
    );
}

/// A seeded Conv2d layer on `x` (`[batch, c_in, height, width]`, same padding) against the
/// reference loop on [`own_leaves`] copies of `x` and the layer: see [`compare_with_reference`].
pub fn conv_matches_reference<Bk: AutodiffBackend>(
    layer: &SeededConv2d<Bk>,
    x: Tensor<Bk, 4>,
    weights: Tensor<Bk, 4>,
    output: impl Fn(&[f32], &[f32], &str),
    gradient: impl Fn(&[f32], &[f32], &str),
) {
    let x = x.require_grad();
    let fast = layer.forward(x.clone());
    // After the forward: the host's lazily initialized weights exist, so the twin copies them.
    let (twin, x_twin) = (own_leaves(layer.clone()), x.clone().detach().require_grad());
    let [batch, features, height, width] = fast.dims();
    let h = twin.host.forward(x_twin.clone()).reshape([batch, features, height * width]);
    let slow = reference::apply(&twin.core, h, Some([batch, height, width])).reshape([batch, features, height, width]);
    compare_with_reference(
        Side { out: fast, x: &x, host_weight: None, core: &layer.core },
        Side { out: slow, x: &x_twin, host_weight: None, core: &twin.core },
        weights,
        output,
        gradient,
    );
}

/// A seeded branch on `x` (`[batch, n, features]` for kind Linear, `[batch, channels, height,
/// width]` for Conv2d) against the reference loop on [`own_leaves`] copies of `x` and the
/// branch, its host the identity: the reference's output minus its input is what the branch
/// adds. See [`compare_with_reference`].
pub fn branch_matches_reference<Bk: AutodiffBackend, const D: usize>(
    branch: &SeededBranch<Bk>,
    x: Tensor<Bk, D>,
    weights: Tensor<Bk, D>,
    output: impl Fn(&[f32], &[f32], &str),
    gradient: impl Fn(&[f32], &[f32], &str),
) {
    let x = x.require_grad();
    let fast = branch.forward(x.clone());
    let (twin, x_twin) = (own_leaves(branch.clone()), x.clone().detach().require_grad());
    let dims = x.dims();
    let (h, spatial) = match branch.core.host_kind() {
        HostKind::Linear => (x_twin.clone().reshape([dims[..D - 1].iter().product(), dims[D - 1], 1]), None),
        HostKind::Conv2d => {
            (x_twin.clone().reshape([dims[0], dims[1], dims[2] * dims[3]]), Some([dims[0], dims[2], dims[3]]))
        }
    };
    let slow = (reference::apply(&twin.core, h.clone(), spatial) - h).reshape(dims);
    compare_with_reference(
        Side { out: fast, x: &x, host_weight: None, core: &branch.core },
        Side { out: slow, x: &x_twin, host_weight: None, core: &twin.core },
        weights,
        output,
        gradient,
    );
}

/// One side of a comparison with the reference loop: its output for input `x`, and the layer
/// that computed it (host weight given for Linear hosts).
struct Side<'a, Bk: AutodiffBackend, const D: usize> {
    out: Tensor<Bk, D>,
    x: &'a Tensor<Bk, D>,
    host_weight: Option<Tensor<Bk, 2>>,
    core: &'a SeedCore<Bk>,
}

/// A seeded layer's side `fast` against the reference loop's side `slow` (computed on
/// [`own_leaves`] copies of the input and layer): the outputs by `output`, then, after
/// backpropagating `sum(out * weights)` through each, the gradients of the input, of the host
/// weight (when given) and of every bank parameter by `gradient`; a missing bank gradient counts
/// as zero.
fn compare_with_reference<Bk: AutodiffBackend, const D: usize>(
    fast: Side<'_, Bk, D>,
    slow: Side<'_, Bk, D>,
    weights: Tensor<Bk, D>,
    output: impl Fn(&[f32], &[f32], &str),
    gradient: impl Fn(&[f32], &[f32], &str),
) {
    output(&values(fast.out.clone()), &values(slow.out.clone()), "output");
    let g_fast = (fast.out * weights.clone()).sum().backward();
    let g_slow = (slow.out * weights).sum().backward();
    gradient(&values(fast.x.grad(&g_fast).unwrap()), &values(slow.x.grad(&g_slow).unwrap()), "input gradient");
    if let (Some(f), Some(s)) = (&fast.host_weight, &slow.host_weight) {
        gradient(&values(f.grad(&g_fast).unwrap()), &values(s.grad(&g_slow).unwrap()), "host weight gradient");
    }
    let banks = bank_tensors(fast.core).into_iter().zip(bank_tensors(slow.core)).enumerate();
    for (i, (f, s)) in banks {
        match (f.grad(&g_fast), s.grad(&g_slow)) {
            (Some(f), Some(s)) => gradient(&values(f), &values(s), &format!("bank param {i} gradient")),
            (None, Some(s)) => assert!(values(s).iter().all(|v| *v == 0.0), "bank param {i}: reference has a gradient"),
            (Some(f), None) => assert!(values(f).iter().all(|v| *v == 0.0), "bank param {i}: fast path has a gradient"),
            (None, None) => {}
        }
    }
}
