//! The vectorized path against the per-seed reference loop: outputs and gradients, random
//! shapes, uneven chunks, every stage and strategy, every built-in blueprint and two custom ones.
mod common;

use burn::module::Module;
use common::*;
use morphogen_engine::reference;
use morphogen_engine::{SeedOptions, SeededConv2dConfig, SeededLinearConfig};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn linear_fast_path_matches_reference(case in case(20)) {
        let mut layer = SeededLinearConfig::new(case.d_in, case.features)
            .with_seeds(case.seeds)
            .with_options(SeedOptions::new().with_blueprints(registry()))
            .init::<B>(&device());
        populate(&mut layer.seeds, &case, &["residual_mlp", "low_rank", "gelu_tanh", "tanh_mlp"]);
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
        check_grads::<B>(&g_fast, &g_slow, &bank_tensors(&layer.seeds), |a, b, w| assert_close(a, b, 1e-4, w));
    }

    #[test]
    fn conv_fast_path_matches_reference(case in case(9), height in 1usize..5, width in 1usize..5) {
        let mut layer = SeededConv2dConfig::new([case.d_in, case.features], [3, 3])
            .with_padding(burn::nn::PaddingConfig2d::Same)
            .with_seeds(case.seeds)
            .with_options(SeedOptions::new().with_blueprints(registry()))
            .init::<B>(&device());
        populate(&mut layer.seeds, &case, &["small_conv", "residual_mlp", "low_rank", "gelu_tanh", "tanh_mlp"]);
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
        check_grads::<B>(&g_fast, &g_slow, &bank_tensors(&layer.seeds), |a, b, w| assert_close(a, b, 1e-4, w));
    }
}
