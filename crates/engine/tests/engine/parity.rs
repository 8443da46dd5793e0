//! The vectorized path against the per-seed reference loop: outputs and gradients, random
//! shapes, uneven chunks, every stage and strategy (FOSSILIZED blueprints frozen or learning),
//! every built-in blueprint and two custom ones; Linear and Conv2d layers, and branches (seeds
//! with the identity as host).

use crate::common::*;
use burn::module::Module;
use morphogen_engine::{
    HostKind, LifecycleConfig, SeedOptions, SeededBranch, SeededBranchConfig, SeededConv2dConfig, SeededLinearConfig,
};
use proptest::prelude::*;

/// Outputs agree within 1e-5, gradients within 1e-4 (relative to `max(1, |x|)`).
fn output_within(a: &[f32], b: &[f32], what: &str) {
    assert_close(a, b, 1e-5, what);
}

fn gradient_within(a: &[f32], b: &[f32], what: &str) {
    assert_close(a, b, 1e-4, what);
}

/// Every blueprint a Conv2d host may hold.
const CONV_BLUEPRINTS: [&str; 8] =
    ["small_conv", "residual_mlp", "low_rank", "gelu_tanh", "tanh_mlp", "wide_conv", "inner_conv", "wide_mlp"];

/// Blueprints for a Linear host.
const LINEAR_BLUEPRINTS: [&str; 5] = ["residual_mlp", "low_rank", "gelu_tanh", "tanh_mlp", "wide_mlp"];

/// A branch of `kind` over `case.features`, its seeds placed as `case` says holding `blueprints`,
/// banks random.
fn populated_branch(case: &Case, kind: HostKind, train_fossilized: bool, blueprints: &[&str]) -> SeededBranch<B> {
    let mut branch = SeededBranchConfig::new(case.features)
        .with_kind(kind)
        .with_num_seeds(case.seeds)
        .with_options(options(train_fossilized))
        .init::<B>(&device());
    populate(&mut branch.core, case, blueprints);
    branch.map(&mut RandomBanks)
}

/// The test blueprints, FOSSILIZED blueprints learning or frozen.
fn options(train_fossilized: bool) -> SeedOptions {
    let lifecycle = LifecycleConfig::new().with_train_fossilized(train_fossilized);
    SeedOptions::new().with_lifecycle(lifecycle).with_blueprints(registry())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn linear_fast_path_matches_reference(case in case(20), train_fossilized in any::<bool>()) {
        let mut layer = SeededLinearConfig::new(case.d_in, case.features)
            .with_num_seeds(case.seeds)
            .with_options(options(train_fossilized))
            .init::<B>(&device());
        populate(&mut layer.core, &case, &LINEAR_BLUEPRINTS);
        let layer = layer.map(&mut RandomBanks);
        let x = random([case.batch, 2, case.d_in]);
        let weights = random([case.batch, 2, case.features]);
        linear_matches_reference(&layer, x, weights, output_within, gradient_within);
    }

    #[test]
    fn branch_fast_path_matches_reference(case in case(20), train_fossilized in any::<bool>()) {
        let branch = populated_branch(&case, HostKind::Linear, train_fossilized, &LINEAR_BLUEPRINTS);
        let x = random([case.batch, 2, case.features]);
        let weights = random([case.batch, 2, case.features]);
        branch_matches_reference(&branch, x, weights, output_within, gradient_within);
    }

    #[test]
    fn conv_branch_fast_path_matches_reference(
        case in case(9),
        height in 1usize..5,
        width in 1usize..5,
        train_fossilized in any::<bool>(),
    ) {
        let branch = populated_branch(&case, HostKind::Conv2d, train_fossilized, &CONV_BLUEPRINTS);
        let x = random([case.batch, case.features, height, width]);
        let weights = random([case.batch, case.features, height, width]);
        branch_matches_reference(&branch, x, weights, output_within, gradient_within);
    }

    #[test]
    fn conv_fast_path_matches_reference(
        case in case(9),
        height in 1usize..5,
        width in 1usize..5,
        train_fossilized in any::<bool>(),
    ) {
        let mut layer = SeededConv2dConfig::new([case.d_in, case.features], [3, 3])
            .with_padding(burn::nn::PaddingConfig2d::Same)
            .with_num_seeds(case.seeds)
            .with_options(options(train_fossilized))
            .init::<B>(&device());
        populate(&mut layer.core, &case, &CONV_BLUEPRINTS);
        let layer = layer.map(&mut RandomBanks);
        let x = random([case.batch, case.d_in, height, width]);
        let weights = random([case.batch, case.features, height, width]);
        conv_matches_reference(&layer, x, weights, output_within, gradient_within);
    }
}
