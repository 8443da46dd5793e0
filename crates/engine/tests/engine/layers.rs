//! Seeded layers against their plain host layers and the lifecycle's output semantics.

use crate::common::*;
use burn::module::Module;
use burn::tensor::Tensor;
use morphogen_engine::{GraftSignals, HostKind, SeededBranchConfig, SeededConv2dConfig, SeededLinearConfig, Stage};

fn linear(seeds: usize) -> morphogen_engine::SeededLinear<B> {
    SeededLinearConfig::new(12, 10).with_num_seeds(seeds).with_name("fc".into()).init(&device())
}

#[test]
fn all_dormant_linear_is_bit_identical_to_host_with_leading_dims() {
    let layer = linear(3);
    let x = random([2, 3, 12]).require_grad();
    let seeded = layer.forward(x.clone());
    let plain = layer.host.forward(x.clone());
    assert_eq!(seeded.dims(), [2, 3, 10]);
    assert_eq!(bits(seeded.clone()), bits(plain.clone()));
    let g1 = (seeded * 1.5).sum().backward();
    let g2 = (plain * 1.5).sum().backward();
    let w1 = layer.host.weight.grad(&g1).unwrap();
    let w2 = layer.host.weight.grad(&g2).unwrap();
    assert_eq!(bits(w1), bits(w2));
    assert_eq!(bits(x.grad(&g1).unwrap()), bits(x.grad(&g2).unwrap()));
}

#[test]
fn all_dormant_conv_is_bit_identical_to_host() {
    let layer = SeededConv2dConfig::new([3, 7], [3, 3]).with_num_seeds(3).init::<B>(&device());
    let x = random([2, 3, 6, 5]);
    let seeded = layer.forward(x.clone());
    let plain = layer.host.forward(x);
    assert_eq!(bits(seeded.clone()), bits(plain.clone()));
    let g1 = seeded.sum().backward();
    let g2 = plain.sum().backward();
    assert_eq!(bits(layer.host.weight.grad(&g1).unwrap()), bits(layer.host.weight.grad(&g2).unwrap()));
}

/// A trained host conv keeps its weights inside the seeded layer: with seeds dormant the output
/// is exactly the host's. A host of another shape is a typed error.
#[test]
fn wrapping_a_conv_keeps_its_output_and_checks_its_shape() {
    let host = burn::nn::conv::Conv2dConfig::new([3, 6], [3, 3])
        .with_padding(burn::nn::PaddingConfig2d::Same)
        .with_stride([2, 1])
        .init::<B>(&device());
    let x = random([2, 3, 7, 5]);
    let expected = bits(host.forward(x.clone()));
    let config = SeededConv2dConfig::new([3, 6], [3, 3]).with_num_seeds(3);
    let wrapped = config.try_wrap(host.clone()).unwrap();
    assert_eq!(bits(wrapped.forward(x)), expected);
    assert_eq!(wrapped.num_seeds(), 3);

    for wrong in [SeededConv2dConfig::new([3, 8], [3, 3]), SeededConv2dConfig::new([3, 6], [5, 5])] {
        let err = wrong.try_wrap(host.clone()).unwrap_err();
        assert!(
            matches!(err, morphogen_engine::MorphogenError::ShapeMismatch { ref got, .. } if got == &[3, 6, 3, 3]),
            "{err}"
        );
    }
}

#[test]
fn germination_and_training_never_change_output_or_host_gradients() {
    let mut layer = linear(4);
    let x = random([5, 12]);
    let before = values(layer.forward(x.clone()));
    let g_before = layer.forward(x.clone()).powi_scalar(2).sum().backward();
    let host_grad = values(layer.host.weight.grad(&g_before).unwrap());

    layer.request_germination(1, "residual_mlp", "fixed_ramp").unwrap();
    assert_eq!(values(layer.forward(x.clone())), before, "germination changed the output");
    layer.advance(1, Stage::Training).unwrap();
    let y = layer.forward(x.clone());
    assert_eq!(values(y.clone()), before, "TRAINING changed the output");
    let grads = y.powi_scalar(2).sum().backward();
    assert_eq!(values(layer.host.weight.grad(&grads).unwrap()), host_grad, "TRAINING changed host gradients");
    let bank = layer.core.params().banks[0].as_ref().unwrap();
    let last_weight = &bank.pages[0].params[2];
    let g = values(last_weight.grad(&grads).unwrap());
    assert!(g.iter().any(|v| *v != 0.0), "the blueprint must learn in TRAINING");
}

fn blueprint_grad_nonzero(layer: &morphogen_engine::SeededLinear<B>, x: Tensor<B, 2>) -> bool {
    let grads = layer.forward(x).powi_scalar(2).sum().backward();
    let bank = layer.core.params().banks[0].as_ref().unwrap();
    bank.pages[0].params.iter().any(|p| p.grad(&grads).is_some_and(|g| values(g).iter().any(|v| *v != 0.0)))
}

#[test]
fn frozen_stages_get_no_gradient_and_full_contribution() {
    let mut layer = linear(2);
    let x = random([4, 12]);
    layer.request_germination(0, "residual_mlp", "fixed_ramp").unwrap();
    layer.advance(0, Stage::Training).unwrap();
    layer.advance(0, Stage::Grafting).unwrap();
    assert!(!blueprint_grad_nonzero(&layer, x.clone()), "GRAFTING at alpha 0 adds nothing");
    for _ in 0..3 {
        layer.graft_step(&GraftSignals::new()).unwrap();
    }
    assert!((layer.seed(0).unwrap().alpha - 0.03).abs() < 1e-6);
    assert!(blueprint_grad_nonzero(&layer, x.clone()), "GRAFTING trains the blueprint");
    for stage in [Stage::Stabilization, Stage::Evaluating] {
        layer.advance(0, stage).unwrap();
        assert!(!blueprint_grad_nonzero(&layer, x.clone()), "{stage} must freeze the blueprint");
        assert_eq!(layer.seed(0).unwrap().alpha, 1.0);
    }
    layer.advance(0, Stage::FineTuning).unwrap();
    assert!(blueprint_grad_nonzero(&layer, x.clone()), "FINE_TUNING trains the blueprint");
    layer.advance(0, Stage::Fossilized).unwrap();
    assert!(!blueprint_grad_nonzero(&layer, x), "FOSSILIZED is frozen");
}

#[test]
fn fossilized_blueprints_learn_only_when_the_lifecycle_says_so() {
    for train_fossilized in [false, true] {
        let lifecycle = morphogen_engine::LifecycleConfig::new().with_train_fossilized(train_fossilized);
        let options = morphogen_engine::SeedOptions::new().with_lifecycle(lifecycle);
        let mut layer = SeededLinearConfig::new(12, 10).with_num_seeds(2).with_options(options).init::<B>(&device());
        layer.request_germination(0, "residual_mlp", "fixed_ramp").unwrap();
        for stage in [Stage::Training, Stage::Grafting, Stage::Stabilization, Stage::Evaluating, Stage::FineTuning] {
            layer.advance(0, stage).unwrap();
        }
        layer.advance(0, Stage::Fossilized).unwrap();
        let layer = layer.map(&mut RandomBanks);
        assert_eq!(
            blueprint_grad_nonzero(&layer, random([4, 12])),
            train_fossilized,
            "train_fossilized {train_fossilized}"
        );
    }
}

#[test]
fn a_branch_adds_zero_until_its_seeds_graft_then_what_they_grow() {
    let kinds =
        [(HostKind::Linear, "wide_mlp", "[..., 8]"), (HostKind::Conv2d, "wide_conv", "[batch, 8, height, width]")];
    for (kind, blueprint, expected_shape) in kinds {
        let mut branch = SeededBranchConfig::new(8).with_kind(kind).with_num_seeds(2).init::<B>(&device());
        // 8 both in dimension 1 (a Conv2d branch's channels) and last (a Linear one's features).
        let x = random([3, 8, 2, 8]).require_grad();
        let dormant = branch.forward(x.clone());
        assert!(values(dormant.clone()).iter().all(|v| *v == 0.0), "{kind}: a dormant branch adds exactly zero");
        let grads = (dormant * 2.0).sum().backward();
        assert!(values(x.grad(&grads).unwrap()).iter().all(|v| *v == 0.0), "{kind}: and passes no gradient");

        branch.request_germination(1, blueprint, "fixed_ramp").unwrap();
        branch.advance(1, Stage::Training).unwrap();
        let mut branch = branch.map(&mut RandomBanks);
        let training = values(branch.forward(x.clone()));
        assert!(training.iter().all(|v| *v == 0.0), "{kind}: TRAINING adds nothing yet");
        branch.advance(1, Stage::Grafting).unwrap();
        branch.set_alpha(&[1], 1.0).unwrap();
        let grafted = branch.forward(x.clone());
        let features_last = if kind == HostKind::Conv2d { grafted.swap_dims(1, 3) } else { grafted };
        let grafted = features_last.reshape([48, 8]);
        let chunks = branch.chunks().clone();
        let on = |range: std::ops::Range<usize>| values(grafted.clone().slice([0..48, range]));
        assert!(on(chunks.range(0)).iter().all(|v| *v == 0.0), "{kind}: the dormant seed's chunk stays zero");
        assert!(on(chunks.range(1)).iter().any(|v| *v != 0.0), "{kind}: the grafted seed adds its blueprint");
        let err = branch.try_forward(random([2, 7, 1, 1])).unwrap_err().to_string();
        assert!(err.contains(expected_shape), "{kind}: {err}");
    }
}

#[test]
fn conv_layer_grows_small_conv_and_dense_blueprints() {
    let mut layer = SeededConv2dConfig::new([2, 6], [3, 3]).with_num_seeds(4).init::<B>(&device());
    layer.request_germination(0, "small_conv", "fixed_ramp").unwrap();
    layer.request_germination(3, "residual_mlp", "fixed_ramp").unwrap();
    layer.advance_many(&[0, 3], Stage::Training).unwrap();
    let x = random([2, 2, 5, 5]);
    let y = layer.forward(x.clone());
    assert_eq!(values(y.clone()), values(layer.host.forward(x)));
    let grads = y.sum().backward();
    let conv_bank = layer.core.params().banks[2].as_ref().unwrap();
    assert!(conv_bank.pages[0].params[2].grad(&grads).is_some());
}

#[test]
fn one_seed_per_feature_works() {
    let mut layer = linear(10);
    layer.request_germinations(&(0..10).collect::<Vec<_>>(), "low_rank", "fixed_ramp").unwrap();
    layer.advance_many(&(0..10).collect::<Vec<_>>(), Stage::Training).unwrap();
    let x = random([3, 12]);
    assert_eq!(values(layer.forward(x.clone())), values(layer.host.forward(x)));
}

#[test]
fn invalid_configs_are_errors_not_panics() {
    let err = SeededLinearConfig::new(4, 3).with_num_seeds(4).try_init::<B>(&device()).unwrap_err();
    assert!(err.to_string().contains("num_seeds = 4"), "{err}");
    let err = SeededConv2dConfig::new([3, 4], [3, 3]).with_groups(2).try_init::<B>(&device()).unwrap_err();
    assert!(err.to_string().contains("groups"), "{err}");
    let panic = std::panic::catch_unwind(|| SeededLinearConfig::new(4, 3).with_num_seeds(0).init::<B>(&device()));
    assert!(panic.is_err());
}

#[test]
fn wrong_input_shape_is_a_typed_error() {
    let layer = linear(2);
    let err = layer.try_forward(random([3, 11])).unwrap_err();
    assert!(err.to_string().contains("[..., 12]"), "{err}");
}

#[test]
fn a_dormant_seed_costs_at_most_32_bytes() {
    let layer = SeededLinearConfig::new(64, 4096).with_num_seeds(1000).init::<B>(&device());
    assert!(layer.state_bytes() <= 32 * 1000, "{} bytes", layer.state_bytes());
    assert_eq!(layer.bank_bytes(), 0, "banks are allocated lazily");
}

#[test]
fn invariant_checks_catch_non_finite_blueprints() {
    use burn::module::Module;
    let mut layer = linear(2);
    layer.request_germination(0, "residual_mlp", "fixed_ramp").unwrap();
    layer.check_invariants().unwrap();
    struct Poison;
    impl burn::module::ModuleMapper<B> for Poison {
        fn map_float<const D: usize>(
            &mut self,
            p: burn::module::Param<Tensor<B, D>>,
        ) -> burn::module::Param<Tensor<B, D>> {
            if D == 3 {
                p.map(|t| t * f32::NAN)
            } else {
                p
            }
        }
    }
    let layer = layer.map(&mut Poison);
    let err = layer.check_invariants().unwrap_err();
    assert!(err.to_string().contains("non-finite") && err.to_string().contains("residual_mlp"), "{err}");
}
