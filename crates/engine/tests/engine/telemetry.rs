//! Health telemetry against statistics computed directly from the raw outputs.

use crate::common::*;
use burn::tensor::Tensor;
use morphogen_engine::reference;
use morphogen_engine::{SeededConv2dConfig, SeededLinearConfig, Stage};
use proptest::prelude::*;

fn compare(fast: &[morphogen_engine::SeedHealth], slow: &[morphogen_engine::SeedHealth]) {
    assert_eq!(fast.len(), slow.len());
    for (f, s) in fast.iter().zip(slow) {
        let what = format!("seed {}", f.seed);
        assert_close(&[f.mean, f.variance], &[s.mean, s.variance], 1e-3, &format!("{what} mean/variance"));
        assert_eq!(f.dead_ratio, s.dead_ratio, "{what} dead ratio");
        assert!(
            (f.correlation - s.correlation).abs() < 2e-2,
            "{what} correlation {} vs {}",
            f.correlation,
            s.correlation
        );
        assert_eq!(f.stage, s.stage);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn linear_window_matches_direct_statistics(features in 1usize..24, seed_frac in 0.0f64..1.0, batches in 1usize..4) {
        let seeds = 1 + ((features - 1) as f64 * seed_frac) as usize;
        let layer = SeededLinearConfig::new(5, features).with_num_seeds(seeds).init::<B>(&device());
        let mut rows = Vec::new();
        for _ in 0..batches {
            let x = random([7, 5]);
            let h = values(layer.host.forward(x.clone()));
            rows.extend(h.chunks(features).map(<[f32]>::to_vec));
            layer.forward(x);
        }
        let report = layer.health_report();
        prop_assert_eq!(report.samples, rows.len() as u64);
        compare(&report.seeds, &reference::health(layer.chunks(), &rows, |_| Stage::Dormant));
        prop_assert_eq!(layer.health_report().samples, 0, "reading resets the window");
    }
}

#[test]
fn conv_window_counts_every_pixel_as_a_sample() {
    let layer = SeededConv2dConfig::new([2, 5], [1, 1]).with_num_seeds(2).init::<B>(&device());
    let x = random([3, 2, 4, 4]);
    let h = layer.host.forward(x.clone()); // [3, 5, 4, 4]
    let rows: Vec<Vec<f32>> = values(h.permute([0, 2, 3, 1])).chunks(5).map(<[f32]>::to_vec).collect();
    layer.forward(x);
    let report = layer.health_report();
    assert_eq!(report.samples, 48);
    compare(&report.seeds, &reference::health(layer.chunks(), &rows, |_| Stage::Dormant));
}

#[test]
fn dead_and_redundant_chunks_are_visible() {
    // Weights make seed 0's features copies of one another and seed 1's features never positive.
    let layer = SeededLinearConfig::new(1, 4).with_num_seeds(2).with_bias(false).init::<B>(&device());
    let weight = Tensor::<B, 2>::from_floats([[1.0, 1.0, -1.0, -1.0]], &device());
    let layer = morphogen_engine::SeededLinear {
        host: burn::nn::Linear { weight: burn::module::Param::from_tensor(weight), bias: None },
        ..layer
    };
    layer.forward(Tensor::<B, 2>::from_floats([[1.0], [2.0], [3.0]], &device()));
    let report = layer.health_report();
    assert!((report.seeds[0].correlation - 1.0).abs() < 1e-4, "{:?}", report.seeds[0]);
    assert_eq!(report.seeds[0].dead_ratio, 0.0);
    assert_eq!(report.seeds[1].dead_ratio, 1.0);
}

#[test]
fn blueprint_contribution_is_reported_for_active_seeds() {
    let mut layer = SeededLinearConfig::new(3, 6).with_num_seeds(3).init::<B>(&device());
    layer.request_germination(1, "low_rank", "fixed_ramp").unwrap();
    layer.forward(random([4, 3]));
    let report = layer.health_report();
    assert_eq!(report.seeds[1].stage, Stage::Germinated);
    assert_eq!(report.seeds[1].blueprint_rms, 0.0, "a new blueprint outputs zero");
    assert!(report.seeds.iter().all(|s| s.blueprint_rms == 0.0));
}

#[test]
fn telemetry_every_samples_one_pass_in_n() {
    use morphogen_engine::{LifecycleConfig, SeedOptions};
    let options = SeedOptions::new().with_lifecycle(LifecycleConfig::new().with_telemetry_every(3));
    let layer = SeededLinearConfig::new(5, 6).with_num_seeds(2).with_options(options).init::<B>(&device());
    let batches: Vec<_> = (0..7).map(|_| random([4, 5])).collect();
    for x in &batches {
        layer.forward(x.clone());
    }
    let report = layer.health_report();
    assert_eq!(report.samples, 3 * 4, "passes 0, 3 and 6 of 7 are sampled");
    let rows: Vec<Vec<f32>> = [0, 3, 6]
        .iter()
        .flat_map(|&i| {
            values(layer.host.forward(batches[i].clone())).chunks(6).map(<[f32]>::to_vec).collect::<Vec<_>>()
        })
        .collect();
    compare(&report.seeds, &reference::health(layer.chunks(), &rows, |_| Stage::Dormant));
    let err = SeededLinearConfig::new(5, 6)
        .with_options(SeedOptions::new().with_lifecycle(LifecycleConfig::new().with_telemetry_every(0)))
        .try_init::<B>(&device())
        .unwrap_err();
    assert!(err.to_string().contains("telemetry_every = 0"), "{err}");
}

/// Data-parallel replicas add up their windows: two windows over two halves of the data,
/// added, report what one window over all of it reports.
#[test]
fn windows_added_up_report_as_one_window_over_all_the_data() {
    use burn::module::Module;
    let mut half = SeededLinearConfig::new(5, 12).with_num_seeds(3).init::<B>(&device());
    // A first pass initializes the (lazy) weights, so the forks below copy them; forks have
    // telemetry windows of their own.
    half.forward(random([1, 5]));
    half.health_report();
    let (other_half, whole) = (half.clone().fork(&device()), half.clone().fork(&device()));
    let (x1, x2) = (random([7, 5]), random([4, 5]));
    half.forward(x1.clone());
    other_half.forward(x2.clone());
    whole.forward(x1);
    whole.forward(x2);
    let total = half.core.telemetry_sums() + other_half.core.telemetry_sums();
    half.core.set_telemetry_sums(total).unwrap();
    let (added, expected) = (half.health_report(), whole.health_report());
    assert_eq!(added.samples, 11);
    assert_eq!(added.samples, expected.samples);
    compare(&added.seeds, &expected.seeds);

    let error = half.core.set_telemetry_sums(Tensor::zeros([3], &device())).unwrap_err().to_string();
    assert!(error.contains(&half.core.name().to_string()) && error.contains("telemetry sums"), "{error}");
}
