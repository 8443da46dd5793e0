//! The vectorized path against the per-seed reference loop: outputs and gradients, random
//! shapes, uneven chunks, every stage, every built-in blueprint and a custom one.
mod common;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Distribution, Tensor};
use common::*;
use morphogen_engine::reference;
use morphogen_engine::{
    Activation, BlueprintOp, BlueprintRegistry, BlueprintSpec, SeedCore, SeedOptions, SeededConv2dConfig,
    SeededLinearConfig, Stage, Width,
};
use proptest::prelude::*;

/// Replaces every bank parameter (the only rank-3 tensors) with random values, so blueprints
/// contribute something measurable.
struct RandomBanks;

impl ModuleMapper<B> for RandomBanks {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        if D != 3 {
            return param;
        }
        param.map(|t| Tensor::random(t.shape(), Distribution::Normal(0.0, 0.5), &t.device()).require_grad())
    }
}

fn custom() -> BlueprintSpec {
    BlueprintSpec {
        name: "gelu_tanh".into(),
        ops: vec![
            BlueprintOp::Dense { out: Width::Fixed(3), bias: false },
            BlueprintOp::Act(Activation::Gelu),
            BlueprintOp::Dense { out: Width::Ratio(1.5), bias: true },
            BlueprintOp::Act(Activation::Tanh),
            BlueprintOp::Dense { out: Width::Chunk, bias: true },
        ],
    }
}

fn registry() -> BlueprintRegistry {
    BlueprintRegistry::default().register(custom()).unwrap()
}

const STAGES: [Stage; 11] = Stage::ALL;

/// Drives a seed along legal edges to `target`.
fn reach(core: &mut SeedCore<B>, seed: usize, target: Stage, blueprint: &str, alpha: f32) {
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
            Germinated => core.request_germination(seed, blueprint, "fixed_ramp").unwrap(),
            _ => core.advance(seed, stage).unwrap(),
        }
        if stage == Grafting && target == Grafting {
            core.set_alpha(&[seed], alpha).unwrap();
        }
    }
}

fn check_grads(
    grads_fast: &<B as burn::tensor::backend::AutodiffBackend>::Gradients,
    grads_ref: &<B as burn::tensor::backend::AutodiffBackend>::Gradients,
    params: &[Tensor<B, 3>],
) {
    for (i, p) in params.iter().enumerate() {
        let (f, r) = (p.grad(grads_fast), p.grad(grads_ref));
        match (f, r) {
            (Some(f), Some(r)) => assert_close(&values(f), &values(r), 1e-4, &format!("bank param {i} gradient")),
            (None, Some(r)) => assert!(values(r).iter().all(|v| *v == 0.0), "bank param {i}: reference has a gradient"),
            (Some(f), None) => assert!(values(f).iter().all(|v| *v == 0.0), "bank param {i}: fast path has a gradient"),
            (None, None) => {}
        }
    }
}

fn bank_tensors(core: &SeedCore<B>) -> Vec<Tensor<B, 3>> {
    core.params().banks.iter().flatten().flat_map(|b| &b.pages).flat_map(|p| &p.params).map(|p| p.val()).collect()
}

#[derive(Debug, Clone)]
struct Case {
    features: usize,
    seeds: usize,
    d_in: usize,
    batch: usize,
    stages: Vec<(usize, usize, usize, f32, bool)>,
}

fn case(max_features: usize) -> impl Strategy<Value = Case> {
    (1usize..max_features, 1usize..6, 1usize..4).prop_flat_map(|(features, d_in, batch)| {
        (1usize..=features).prop_flat_map(move |seeds| {
            let per_seed = (0usize..11, 0usize..4, 0usize..100, 0.0f32..1.0, any::<bool>());
            proptest::collection::vec(per_seed, seeds).prop_map(move |raw| Case {
                features,
                seeds,
                d_in,
                batch,
                stages: raw.into_iter().enumerate().map(|(s, (st, bp, _, a, abl))| (s, st, bp, a, abl)).collect(),
            })
        })
    })
}

fn populate(core: &mut SeedCore<B>, case: &Case, blueprints: &[&str]) {
    let mut ablate = Vec::new();
    for &(seed, stage, bp, alpha, abl) in &case.stages {
        let stage = STAGES[stage];
        reach(core, seed, stage, blueprints[bp % blueprints.len()], alpha);
        if stage == Stage::Evaluating && abl {
            ablate.push(seed);
        }
    }
    core.set_ablation(&ablate).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn linear_fast_path_matches_reference(case in case(20)) {
        let mut layer = SeededLinearConfig::new(case.d_in, case.features)
            .with_seeds(case.seeds)
            .with_options(SeedOptions::new().with_blueprints(registry()))
            .init::<B>(&device());
        populate(&mut layer.seeds, &case, &["residual_mlp", "low_rank", "gelu_tanh"]);
        let layer = layer.map(&mut RandomBanks);
        let x = random([case.batch, 2, case.d_in]).require_grad();
        let weights = random([case.batch, 2, case.features]);

        let fast = layer.forward(x.clone());
        let h = layer.host.forward(x.clone());
        let rows = case.batch * 2;
        let slow = reference::apply(&layer.seeds, h.reshape([rows, case.features, 1]), None)
            .reshape([case.batch, 2, case.features]);
        assert_close(&values(fast.clone()), &values(slow.clone()), 1e-5, "output");

        let g_fast = (fast * weights.clone()).sum().backward();
        let g_slow = (slow * weights).sum().backward();
        assert_close(&values(x.grad(&g_fast).unwrap()), &values(x.grad(&g_slow).unwrap()), 1e-4, "input gradient");
        let (wf, ws) = (layer.host.weight.grad(&g_fast).unwrap(), layer.host.weight.grad(&g_slow).unwrap());
        assert_close(&values(wf), &values(ws), 1e-4, "host weight gradient");
        check_grads(&g_fast, &g_slow, &bank_tensors(&layer.seeds));
    }

    #[test]
    fn conv_fast_path_matches_reference(case in case(9), height in 1usize..5, width in 1usize..5) {
        let mut layer = SeededConv2dConfig::new([case.d_in, case.features], [3, 3])
            .with_padding(burn::nn::PaddingConfig2d::Same)
            .with_seeds(case.seeds)
            .with_options(SeedOptions::new().with_blueprints(registry()))
            .init::<B>(&device());
        populate(&mut layer.seeds, &case, &["small_conv", "residual_mlp", "low_rank", "gelu_tanh"]);
        let layer = layer.map(&mut RandomBanks);
        let x = random([case.batch, case.d_in, height, width]).require_grad();
        let weights = random([case.batch, case.features, height, width]);

        let fast = layer.forward(x.clone());
        let h = layer.host.forward(x.clone());
        let slow = reference::apply(&layer.seeds, h.reshape([case.batch, case.features, height * width]), Some([case.batch, height, width]))
            .reshape([case.batch, case.features, height, width]);
        assert_close(&values(fast.clone()), &values(slow.clone()), 1e-5, "output");

        let g_fast = (fast * weights.clone()).sum().backward();
        let g_slow = (slow * weights).sum().backward();
        assert_close(&values(x.grad(&g_fast).unwrap()), &values(x.grad(&g_slow).unwrap()), 1e-4, "input gradient");
        check_grads(&g_fast, &g_slow, &bank_tensors(&layer.seeds));
    }
}
