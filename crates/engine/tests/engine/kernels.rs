//! CubeCL kernels against the tensor path and the reference statistics, on real CubeCL backends:
//! wgpu (in CI on Mesa's software Vulkan: `--features wgpu`) and CUDA (`--features cuda`, opt-in
//! with `MORPHOGEN_CUDA_TESTS=1` since CI has no GPU).
#![cfg(any(feature = "wgpu", feature = "cuda"))]

use crate::common::{assert_close, random_on, values};
use burn::module::Module;
use burn::tensor::backend::Backend;
use morphogen_engine::{reference, LifecycleConfig, SeedHealth, SeedOptions, Stage};
use morphogen_engine::{SeededConv2d, SeededConv2dConfig, SeededLinear, SeededLinearConfig};
use proptest::prelude::*;

/// Widest chunk every device's tile takes (the smallest tile is 64 features wide).
const ALWAYS_IN_TILE: usize = 64;

/// Kernels on or off; the guard's own check off, so these tests see the kernel's sums.
fn options(kernels: bool) -> SeedOptions {
    SeedOptions::new().with_lifecycle(LifecycleConfig::new().with_kernels(kernels).with_kernel_check_every(0))
}

/// A kernel layer and a tensor-path layer with the same weights.
fn linear_pair<B: Backend>(d_in: usize, features: usize, seeds: usize) -> (SeededLinear<B>, SeededLinear<B>) {
    let device = Default::default();
    let config = SeededLinearConfig::new(d_in, features).with_num_seeds(seeds);
    let fast = config.clone().with_options(options(true)).init::<B>(&device);
    // Burn initialises parameters lazily, per clone: read them before cloning the record.
    let _ = (fast.host.weight.val(), fast.host.bias.as_ref().map(|b| b.val()));
    let slow = config.with_options(options(false)).init::<B>(&device).load_record(fast.clone().into_record());
    (fast, slow)
}

fn conv_pair<B: Backend>(channels: [usize; 2], seeds: usize) -> (SeededConv2d<B>, SeededConv2d<B>) {
    let device = Default::default();
    let config = SeededConv2dConfig::new(channels, [3, 3]).with_num_seeds(seeds);
    let fast = config.clone().with_options(options(true)).init::<B>(&device);
    let _ = (fast.host.weight.val(), fast.host.bias.as_ref().map(|b| b.val()));
    let slow = config.with_options(options(false)).init::<B>(&device).load_record(fast.clone().into_record());
    (fast, slow)
}

/// Kernel and tensor path agree closely (same sums, other summation order); both match the
/// statistics computed from the raw outputs.
fn check(kernel: &[SeedHealth], tensor: &[SeedHealth], direct: &[SeedHealth]) {
    assert_eq!(kernel.len(), direct.len());
    for ((k, t), d) in kernel.iter().zip(tensor).zip(direct) {
        let what = format!("seed {}", k.seed);
        let stats = |h: &SeedHealth| [h.mean, h.variance];
        assert_close(&stats(k), &stats(d), 1e-3, &format!("{what}: kernel vs direct"));
        assert_close(&stats(t), &stats(d), 1e-3, &format!("{what}: tensor path vs direct"));
        assert_close(&stats(k), &stats(t), 1e-4, &format!("{what}: kernel vs tensor path"));
        // The one-pass correlation subtracts near-equal sums: f32 order effects reach ~1e-2.
        for (other, name) in [(t, "tensor path"), (d, "direct")] {
            let (a, b) = (k.correlation, other.correlation);
            assert!((a - b).abs() < 2e-2, "{what} correlation {a} vs {b} ({name})");
        }
        assert_eq!(k.dead_ratio, t.dead_ratio, "{what} dead ratio, kernel vs tensor path");
        assert_eq!(k.dead_ratio, d.dead_ratio, "{what} dead ratio, kernel vs direct");
    }
}

fn linear_case<B: Backend>(d_in: usize, features: usize, seeds: usize, batches: &[[usize; 2]]) {
    let (fast, slow) = linear_pair::<B>(d_in, features, seeds);
    let mut rows = Vec::new();
    for &[a, b] in batches {
        let x = random_on::<B, 3>([a, b, d_in]);
        rows.extend(values(fast.host.forward(x.clone())).chunks(features).map(<[f32]>::to_vec));
        fast.forward(x.clone());
        slow.forward(x);
    }
    if fast.chunks().width() <= ALWAYS_IN_TILE {
        assert_eq!(fast.core.telemetry_kernel_passes(), batches.len() as u64, "every pass on the kernel");
    }
    assert_eq!(slow.core.telemetry_kernel_passes(), 0, "kernels off: tensor path");
    let (k, t) = (fast.health_report(), slow.health_report());
    assert_eq!(k.samples, rows.len() as u64);
    check(&k.seeds, &t.seeds, &reference::health(fast.chunks(), &rows, |_| Stage::Dormant));
}

fn conv_case<B: Backend>(channels: [usize; 2], seeds: usize, batch: usize, side: usize) {
    let (fast, slow) = conv_pair::<B>(channels, seeds);
    let x = random_on::<B, 4>([batch, channels[0], side, side]);
    let h = fast.host.forward(x.clone());
    let rows: Vec<Vec<f32>> = values(h.permute([0, 2, 3, 1])).chunks(channels[1]).map(<[f32]>::to_vec).collect();
    fast.forward(x.clone());
    slow.forward(x);
    assert_eq!(fast.core.telemetry_kernel_passes(), 1, "conv telemetry on the kernel");
    let (k, t) = (fast.health_report(), slow.health_report());
    check(&k.seeds, &t.seeds, &reference::health(fast.chunks(), &rows, |_| Stage::Dormant));
}

/// The proptest strategy: features, a seed count from 1 (one wide chunk) to one per feature,
/// and one to three batches of `[a, b]` leading dims (at least 8 samples each: the statistics are
/// ill-conditioned on fewer).
fn linear_shapes() -> impl Strategy<Value = (usize, usize, Vec<[usize; 2]>)> {
    (1usize..700, 0.0f64..1.0, proptest::collection::vec((1usize..9, 8usize..24), 1..4)).prop_map(
        |(features, frac, batches)| {
            let seeds = 1 + ((features - 1) as f64 * frac) as usize;
            (features, seeds, batches.into_iter().map(|(a, b)| [a, b]).collect())
        },
    )
}

/// A kernel check that can only fail (tolerance 0 against a different summation order) sends
/// the layer to the tensor path with the tensor path's sums: nothing is lost, it is reported
/// once; `fall_back_from_kernels` does the same without a report.
fn guarded_fallback<B: Backend>() {
    let device = Default::default();
    let strict = LifecycleConfig::new().with_kernel_check_every(1).with_kernel_check_tolerance(0.0);
    let config = SeededLinearConfig::new(16, 300).with_num_seeds(30);
    let fast = config.clone().with_options(SeedOptions::new().with_lifecycle(strict)).init::<B>(&device);
    let _ = (fast.host.weight.val(), fast.host.bias.as_ref().map(|b| b.val()));
    let slow = config.with_options(options(false)).init::<B>(&device).load_record(fast.clone().into_record());
    for _ in 0..3 {
        let x = random_on::<B, 2>([64, 16]);
        fast.forward(x.clone());
        slow.forward(x);
    }
    let reason = fast.core.take_kernel_fallback().expect("a zero-tolerance check fails");
    assert!(reason.contains("kernel check failed on kernel pass 1"), "{reason}");
    assert_eq!(fast.core.take_kernel_fallback(), None, "reported once");
    assert_eq!(fast.kernel_fallback().as_deref(), Some(reason.as_str()), "still on the tensor path");
    assert_eq!(fast.core.telemetry_kernel_passes(), 0, "every pass on the tensor path");
    let (k, t) = (fast.health_report(), slow.health_report());
    assert_eq!(k, t, "the window holds the tensor path's sums");

    let (on, _) = linear_pair::<B>(8, 40, 4);
    on.core.fall_back_from_kernels("flag 'kernels' off for this run");
    on.forward(random_on::<B, 2>([9, 8]));
    assert_eq!(on.core.telemetry_kernel_passes(), 0);
    assert_eq!(on.core.take_kernel_fallback(), None, "a deliberate switch is no failure to report");
    assert_eq!(on.kernel_fallback().as_deref(), Some("flag 'kernels' off for this run"));

    let checked = SeededLinearConfig::new(16, 300).with_num_seeds(30).init::<B>(&device); // default guard
    checked.forward(random_on::<B, 2>([64, 16]));
    assert_eq!(checked.kernel_fallback(), None, "the default first-pass check agrees");
    assert_eq!(checked.core.telemetry_kernel_passes(), 1);
}

macro_rules! kernel_tests {
    ($module:ident, $backend:ty, $enabled:expr) => {
        mod $module {
            use super::*;
            type W = $backend;
            type Wd = burn::backend::Autodiff<$backend>;

            proptest! {
                #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

                #[test]
                fn linear_telemetry_kernel_matches((features, seeds, batches) in linear_shapes()) {
                    if $enabled {
                        linear_case::<Wd>(6, features, seeds, &batches);
                    }
                }
            }

            #[test]
            fn bare_backend_and_edge_chunks() {
                if !$enabled {
                    return;
                }
                linear_case::<W>(4, 64, 1, &[[3, 5]]); // one chunk, the widest any tile takes
                linear_case::<W>(4, 300, 300, &[[2, 40]]); // one feature per seed, several spans
                linear_case::<W>(4, 1000, 7, &[[1, 9], [2, 8]]); // chunks wider than a small tile

                // Row groups of several tiles (the next tile loading while this one is summed),
                // the last group one full tile and a part of one.
                linear_case::<W>(4, 64, 16, &[[4, 5005]]);
                // The narrow kernel over whole blocks of rows with uneven chunks (4 and 5 wide),
                // then a pass of fewer rows than the first pass's row groups.
                linear_case::<W>(4, 70, 16, &[[4, 5005], [1, 9]]);
            }

            #[test]
            fn failed_check_falls_back_to_the_tensor_path() {
                if $enabled {
                    guarded_fallback::<Wd>();
                }
            }

            #[test]
            fn conv_telemetry_kernel_matches() {
                if !$enabled {
                    return;
                }
                conv_case::<Wd>([3, 10], 3, 2, 5);
                conv_case::<W>([2, 33], 33, 3, 4);
            }
        }
    };
}

#[cfg(feature = "wgpu")]
kernel_tests!(wgpu, burn::backend::Wgpu, true);

#[cfg(feature = "cuda")]
kernel_tests!(cuda, burn::backend::Cuda, std::env::var_os("MORPHOGEN_CUDA_TESTS").is_some());

/// Half-precision host outputs: the kernel reads f16/bf16 and sums in f32; its statistics match
/// those computed from the same outputs within half-precision tolerances.
#[cfg(feature = "cuda")]
fn half_case<B: Backend>() {
    if std::env::var_os("MORPHOGEN_CUDA_TESTS").is_none() {
        return;
    }
    let layer = SeededLinearConfig::new(32, 1000)
        .with_num_seeds(100)
        .with_options(options(true))
        .init::<B>(&Default::default());
    let x = random_on::<B, 2>([256, 32]);
    let rows: Vec<Vec<f32>> = values(layer.host.forward(x.clone())).chunks(1000).map(<[f32]>::to_vec).collect();
    layer.forward(x);
    assert_eq!(layer.kernel_fallback(), None, "the half-precision check agrees");
    assert_eq!(layer.core.telemetry_kernel_passes(), 1);
    let report = layer.health_report();
    let direct = reference::health(layer.chunks(), &rows, |_| Stage::Dormant);
    for (k, d) in report.seeds.iter().zip(&direct) {
        assert_close(&[k.mean, k.variance], &[d.mean, d.variance], 1e-2, &format!("seed {}", k.seed));
        assert_eq!(k.dead_ratio, d.dead_ratio, "seed {}", k.seed);
        assert!(
            (k.correlation - d.correlation).abs() < 5e-2,
            "seed {}: {} vs {}",
            k.seed,
            k.correlation,
            d.correlation
        );
    }
}

#[cfg(feature = "cuda")]
#[test]
fn cuda_f16_and_bf16_outputs() {
    half_case::<burn::backend::Autodiff<burn::backend::Cuda<burn::tensor::f16>>>();
    half_case::<burn::backend::Cuda<burn::tensor::bf16>>();
}

/// Chunks wider than 256 features take the kernel's 512-feature span (wgpu devices, software
/// Vulkan included, allow 512 threads a cube).
#[cfg(feature = "wgpu")]
#[test]
fn wgpu_wide_chunks_take_the_kernel() {
    type W = burn::backend::Wgpu;
    linear_case::<W>(4, 900, 2, &[[2, 40], [3, 9]]); // 450-feature chunks
    let (fast, _) = linear_pair::<W>(4, 900, 2);
    fast.forward(random_on::<W, 2>([16, 4]));
    assert_eq!(fast.core.telemetry_kernel_passes(), 1, "a 450-feature chunk on the kernel");
}
