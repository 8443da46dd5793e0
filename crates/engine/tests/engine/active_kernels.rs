//! The active-seed kernel (`blend::kernel`) against the per-seed reference loop, on real CubeCL
//! backends: outputs and gradients (input, host weights, every bank parameter) on random shapes,
//! uneven chunks, every stage and strategy, several bank pages, and blueprints the kernel runs
//! (`residual_mlp`, `low_rank`, a tanh chain) beside ones it leaves to the tensor path
//! (`gelu_tanh`, `small_conv`, and `wide_mlp` and `wide_conv`, which read the whole layer). wgpu
//! runs in CI on Mesa's software Vulkan; CUDA is opt-in with `MORPHOGEN_CUDA_TESTS=1`.
#![cfg(any(feature = "wgpu", feature = "cuda"))]

use crate::common::{
    assert_close, branch_matches_reference, case, conv_matches_reference, linear_matches_reference, populate,
    random_on, registry, values, Case,
};
use burn::module::Module;
use burn::tensor::backend::AutodiffBackend;
use morphogen_engine::{
    reference, HostKind, LifecycleConfig, SeedOptions, SeededBranchConfig, SeededConv2dConfig, SeededLinearConfig,
    Stage,
};
use proptest::prelude::*;

/// Blueprints the kernel runs.
const KERNEL_BLUEPRINTS: [&str; 3] = ["residual_mlp", "low_rank", "tanh_mlp"];

/// Kernels on, bank pages of `page_rows` rows first (several pages per bank), the custom
/// blueprints registered; FOSSILIZED blueprints learn on single-row pages and stay frozen on
/// larger ones, so both roles reach the kernel.
fn options(page_rows: usize) -> SeedOptions {
    let lifecycle = LifecycleConfig::new()
        .with_kernel_check_every(0)
        .with_bank_page_rows(page_rows)
        .with_train_fossilized(page_rows == 1);
    SeedOptions::new().with_lifecycle(lifecycle).with_blueprints(registry())
}

/// How the kernel's values are compared with the reference loop's.
#[derive(Clone, Copy, Debug)]
enum Tolerance {
    /// Every element within this relative tolerance (`crate::common::assert_close`): both sides in f32.
    #[cfg_attr(not(feature = "wgpu"), allow(dead_code))]
    Elementwise(f32),
    /// Per tensor, `|kernel - reference| <= tol * max(1, |reference|)` in the Euclidean norm (the
    /// elementwise rule's `max(1, |x|)`, for whole tensors): for CUDA,
    /// where the reference loop's matmuls run through TF32 (10-bit mantissa) and single elements
    /// that cancel can differ by several percent.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    Normwise(f32),
}

/// The `n` elements where `kernel` and `reference` differ most, as `(index, kernel, reference)`:
/// where a failed check's error sits (one sample, one row, one group) says what went wrong.
fn largest_differences(kernel: &[f32], reference: &[f32], n: usize) -> Vec<(usize, f32, f32)> {
    let mut all: Vec<_> = kernel.iter().zip(reference).enumerate().map(|(i, (&k, &r))| (i, k, r)).collect();
    all.sort_by(|a, b| (b.1 - b.2).abs().total_cmp(&(a.1 - a.2).abs()));
    all.truncate(n);
    all
}

impl Tolerance {
    fn check(self, kernel: &[f32], reference: &[f32], what: &str) {
        match self {
            Tolerance::Elementwise(tol) => assert_close(kernel, reference, tol, what),
            Tolerance::Normwise(tol) => {
                assert_eq!(kernel.len(), reference.len(), "{what}: lengths differ");
                let norm = |v: &mut dyn Iterator<Item = f32>| v.map(|x| (x as f64).powi(2)).sum::<f64>().sqrt();
                let diff = norm(&mut kernel.iter().zip(reference).map(|(a, b)| a - b));
                let scale = norm(&mut reference.iter().copied()).max(1.0);
                assert!(
                    diff <= tol as f64 * scale,
                    "{what}: |kernel - reference| = {diff} > {tol} x {scale}; largest differences (index, kernel, reference): {:?}",
                    largest_differences(kernel, reference, 5)
                );
            }
        }
    }
}

/// Whether some seed of `case` holds one of `kernel_blueprints` (drawn from `blueprints`).
fn holds_kernel_blueprint(case: &Case, blueprints: &[&str]) -> bool {
    case.stages.iter().any(|&(stage, bp, ..)| {
        let holds = !matches!(Stage::ALL[stage], Stage::Dormant | Stage::Culled | Stage::Cancelled | Stage::RolledBack);
        holds && KERNEL_BLUEPRINTS.contains(&blueprints[bp % blueprints.len()])
    })
}

/// `case` on a Linear host with inputs `[case.batch, per_batch, d_in]`.
fn linear_case<B: AutodiffBackend>(case: &Case, per_batch: usize, blueprints: &[&str], tol: Tolerance) {
    let mut layer = SeededLinearConfig::new(case.d_in, case.features)
        .with_num_seeds(case.seeds)
        .with_options(options(2))
        .init::<B>(&Default::default());
    populate(&mut layer.core, case, blueprints);
    let layer = layer.map(&mut crate::common::RandomBanks);
    let x = random_on::<B, 3>([case.batch, per_batch, case.d_in]);
    let weights = random_on::<B, 3>([case.batch, per_batch, case.features]);
    let check = |a: &[f32], b: &[f32], what: &str| tol.check(a, b, what);
    linear_matches_reference(&layer, x, weights, check, check);
    if holds_kernel_blueprint(case, blueprints) {
        assert!(layer.core.blend_kernel_passes() > 0, "the kernel ran");
    }
}

fn conv_case<B: AutodiffBackend>(case: &Case, side: usize, tol: Tolerance) {
    let blueprints = ["residual_mlp", "small_conv", "low_rank", "tanh_mlp", "wide_conv", "inner_conv"];
    let mut layer = SeededConv2dConfig::new([case.d_in, case.features], [3, 3])
        .with_padding(burn::nn::PaddingConfig2d::Same)
        .with_num_seeds(case.seeds)
        .with_options(options(2))
        .init::<B>(&Default::default());
    populate(&mut layer.core, case, &blueprints);
    let layer = layer.map(&mut crate::common::RandomBanks);
    let x = random_on::<B, 4>([case.batch, case.d_in, side, side]);
    let weights = random_on::<B, 4>([case.batch, case.features, side, side]);
    let check = |a: &[f32], b: &[f32], what: &str| tol.check(a, b, what);
    conv_matches_reference(&layer, x, weights, check, check);
    if holds_kernel_blueprint(case, &blueprints) {
        assert!(layer.core.blend_kernel_passes() > 0, "the kernel ran");
    }
}

/// `case` on a branch of `kind` (the identity as host): a Linear one on `[batch, 5, features]`, a
/// Conv2d one on `[batch, features, 3, 3]` images; banks first paged by `page_rows` (1: FOSSILIZED
/// blueprints learn).
fn branch_case<B: AutodiffBackend>(case: &Case, kind: HostKind, page_rows: usize, tol: Tolerance) {
    let blueprints = match kind {
        HostKind::Linear => ["residual_mlp", "low_rank", "tanh_mlp", "wide_mlp"],
        HostKind::Conv2d => ["residual_mlp", "small_conv", "tanh_mlp", "inner_conv"],
    };
    let mut branch = SeededBranchConfig::new(case.features)
        .with_kind(kind)
        .with_num_seeds(case.seeds)
        .with_options(options(page_rows))
        .init::<B>(&Default::default());
    populate(&mut branch.core, case, &blueprints);
    let branch = branch.map(&mut crate::common::RandomBanks);
    let check = |a: &[f32], b: &[f32], what: &str| tol.check(a, b, what);
    match kind {
        HostKind::Linear => {
            let shape = [case.batch, 5, case.features];
            branch_matches_reference(&branch, random_on::<B, 3>(shape), random_on::<B, 3>(shape), check, check);
        }
        HostKind::Conv2d => {
            let shape = [case.batch, case.features, 3, 3];
            branch_matches_reference(&branch, random_on::<B, 4>(shape), random_on::<B, 4>(shape), check, check);
        }
    }
    if holds_kernel_blueprint(case, &blueprints) {
        assert!(branch.core.blend_kernel_passes() > 0, "the kernel ran");
    }
}

/// `seeds` seeds, each in an active stage (cycling through them) with a kernel blueprint.
fn active_stages(seeds: usize) -> Vec<(usize, usize, usize, f32, bool)> {
    let active = [Stage::Grafting, Stage::Stabilization, Stage::Evaluating, Stage::FineTuning, Stage::Fossilized];
    (0..seeds)
        .map(|seed| {
            let stage = Stage::ALL.iter().position(|s| *s == active[seed % active.len()]).unwrap();
            (stage, seed % KERNEL_BLUEPRINTS.len(), seed % 4, 0.25 + 0.1 * (seed % 8) as f32, false)
        })
        .collect()
}

/// A transformer MLP's first layer on `[batch, seq, d_model]` activations (made by swapping
/// the axes of a `[batch, d_model, seq]` tensor, as attention code does), every seed in an
/// active stage with a kernel blueprint: the kernel runs and matches the reference loop.
fn sequence_case<B: AutodiffBackend>(tol: Tolerance) {
    let case = Case { features: 128, seeds: 8, d_in: 32, batch: 2, stages: active_stages(8) };
    let mut layer = SeededLinearConfig::new(case.d_in, case.features)
        .with_num_seeds(case.seeds)
        .with_options(options(2))
        .init::<B>(&Default::default());
    populate(&mut layer.core, &case, &KERNEL_BLUEPRINTS);
    let layer = layer.map(&mut crate::common::RandomBanks);
    let x = random_on::<B, 3>([2, case.d_in, 16]).swap_dims(1, 2);
    let weights = random_on::<B, 3>([2, 16, case.features]);
    let check = |a: &[f32], b: &[f32], what: &str| tol.check(a, b, what);
    linear_matches_reference(&layer, x, weights, check, check);
    assert!(layer.core.blend_kernel_passes() > 0, "the kernel ran");
}

/// Banks of more pages than one op takes: with single-row first pages, 300 seeds over three
/// blueprints need 100 rows (seven pages) each, and all in `residual_mlp`, 300 rows (nine pages),
/// which run as two ops. Both match the reference loop.
fn many_pages_case<B: AutodiffBackend>(blueprints: &[&str], tol: Tolerance) {
    let case = Case { features: 300, seeds: 300, d_in: 3, batch: 2, stages: active_stages(300) };
    let mut layer = SeededLinearConfig::new(case.d_in, case.features)
        .with_num_seeds(case.seeds)
        .with_options(options(1))
        .init::<B>(&Default::default());
    populate(&mut layer.core, &case, blueprints);
    let layer = layer.map(&mut crate::common::RandomBanks);
    let x = random_on::<B, 3>([case.batch, 4, case.d_in]);
    let weights = random_on::<B, 3>([case.batch, 4, case.features]);
    let check = |a: &[f32], b: &[f32], what: &str| tol.check(a, b, what);
    linear_matches_reference(&layer, x, weights, check, check);
    assert!(layer.core.blend_kernel_passes() > 0, "the kernel ran");
}

/// Blueprints reading the whole layer on 1x1 images, in stages that hold one: the input gradient
/// through the host output matches the reference loop (a random case once caught it wrong).
fn wide_conv_on_one_pixel<B: AutodiffBackend>(tol: Tolerance) {
    for stage in [Stage::Germinated, Stage::Training, Stage::Stabilization, Stage::Fossilized] {
        let stage = Stage::ALL.iter().position(|s| *s == stage).unwrap();
        let case = Case { features: 3, seeds: 1, d_in: 3, batch: 3, stages: vec![(stage, 4, 3, 0.65, false)] };
        conv_case::<B>(&case, 1, tol);
    }
}

macro_rules! active_kernel_tests {
    ($module:ident, $backend:ty, $enabled:expr, $tol:expr) => {
        mod $module {
            use super::*;
            type Wd = burn::backend::Autodiff<$backend>;

            #[test]
            fn linear_active_kernel_on_sequences() {
                if $enabled {
                    sequence_case::<Wd>($tol);
                }
            }

            #[test]
            fn wide_conv_on_one_pixel_images() {
                if $enabled {
                    wide_conv_on_one_pixel::<Wd>($tol);
                }
            }

            #[test]
            fn linear_active_kernel_over_many_pages() {
                if $enabled {
                    many_pages_case::<Wd>(&["residual_mlp"], $tol);
                    many_pages_case::<Wd>(&KERNEL_BLUEPRINTS, $tol);
                }
            }

            proptest! {
                #![proptest_config(ProptestConfig { cases: 2, ..ProptestConfig::default() })]

                /// Thousands of samples: several tiles a cube and several sample groups a row.
                #[test]
                fn linear_active_kernel_with_thousands_of_samples(case in case(24)) {
                    if $enabled {
                        linear_case::<Wd>(&Case { batch: 2, ..case }, 1500, &KERNEL_BLUEPRINTS, $tol);
                    }
                }
            }

            proptest! {
                #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

                #[test]
                fn linear_active_kernel_matches_reference(case in case(40)) {
                    if $enabled {
                        linear_case::<Wd>(&case, 5, &["residual_mlp", "low_rank", "tanh_mlp", "gelu_tanh", "wide_mlp"], $tol);
                    }
                }

                /// Hundreds of samples: rows split their samples over several cubes, whose
                /// parameter gradients are summed.
                #[test]
                fn linear_active_kernel_with_sample_groups(case in case(24)) {
                    if $enabled {
                        linear_case::<Wd>(&Case { batch: 2, ..case }, 150, &KERNEL_BLUEPRINTS, $tol);
                    }
                }

                #[test]
                fn branch_active_kernel_matches_reference(case in case(12), conv in any::<bool>(), page_rows in 1usize..3) {
                    if $enabled {
                        let kind = if conv { HostKind::Conv2d } else { HostKind::Linear };
                        branch_case::<Wd>(&case, kind, page_rows, $tol);
                    }
                }

                #[test]
                fn conv_active_kernel_matches_reference(case in case(9), side in 1usize..5) {
                    if $enabled {
                        conv_case::<Wd>(&case, side, $tol);
                    }
                }
            }
        }
    };
}

#[cfg(feature = "wgpu")]
active_kernel_tests!(wgpu, burn::backend::Wgpu, true, Tolerance::Elementwise(1e-4));

// Burn's CUDA matmul runs f32 through TF32 tensor cores (10-bit mantissa, cubek-matmul's
// `adjust_dtypes`), so the reference loop rounds at about 5e-4 per product while the kernel
// computes in f32; where a hidden pre-activation sits near zero the two disagree on the ReLU gate
// and that sample's whole term differs. On an H100: up to 3% for single elements, 1.6% by norm
// for gradients summed over 300 samples. CUDA therefore compares whole tensors at 5e-2, which
// still catches wrong gating, rows or sample groups (errors of order 1); precision is checked on
// wgpu, element by element at 1e-4, with the same kernel source.
#[cfg(feature = "cuda")]
active_kernel_tests!(
    cuda,
    burn::backend::Cuda,
    std::env::var_os("MORPHOGEN_CUDA_TESTS").is_some(),
    Tolerance::Normwise(5e-2)
);

/// A check that can only fail (tolerance 0 against another summation order) sends the layer to
/// the tensor path with the tensor path's output: reported once, every later pass on the tensor
/// path, and the output equal to a tensor-path layer's.
fn failed_check_falls_back<B: AutodiffBackend>() {
    let strict =
        LifecycleConfig::new().with_telemetry(false).with_kernel_check_every(1).with_kernel_check_tolerance(0.0);
    let config = SeededLinearConfig::new(6, 40).with_num_seeds(8);
    let mut layer =
        config.clone().with_options(SeedOptions::new().with_lifecycle(strict)).init::<B>(&Default::default());
    for seed in 0..4 {
        crate::common::reach(&mut layer.core, seed, Stage::FineTuning, "residual_mlp", "fixed_ramp", 1.0);
    }
    let layer = layer.map(&mut crate::common::RandomBanks);
    let x = random_on::<B, 2>([32, 6]);
    let first = layer.forward(x.clone());
    let reason = layer.core.take_kernel_fallback().expect("a zero-tolerance check fails");
    assert!(reason.contains("active-seed kernel check failed on bank pass 1"), "{reason}");
    assert_eq!(layer.core.take_kernel_fallback(), None, "reported once");
    let second = layer.forward(x.clone());
    assert_eq!(layer.core.blend_kernel_passes(), 1, "after the fallback, the tensor path");
    let h = layer.host.forward(x).reshape([32, 40, 1]);
    let slow = reference::apply(&layer.core, h, None).reshape([32, 40]);
    assert_close(&values(first), &values(slow.clone()), 1e-5, "the failed pass returns the tensor path's output");
    assert_close(&values(second), &values(slow), 1e-5, "later passes");
}

#[cfg(feature = "wgpu")]
#[test]
fn wgpu_failed_active_check_falls_back() {
    failed_check_falls_back::<burn::backend::Autodiff<burn::backend::Wgpu>>();
}

#[cfg(feature = "cuda")]
#[test]
fn cuda_failed_active_check_falls_back() {
    if std::env::var_os("MORPHOGEN_CUDA_TESTS").is_some() {
        failed_check_falls_back::<burn::backend::Autodiff<burn::backend::Cuda>>();
    }
}
