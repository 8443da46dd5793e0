//! Mixed precision: half-precision products against f32 on a backend that has them (wgpu where
//! the Vulkan device has the half type, CUDA opt-in), and the typed refusal where it has not.

use crate::common::*;
use morphogen_engine::{MorphogenError, Precision};

#[test]
fn cpu_backend_refuses_half_precision_by_name() {
    Precision::F32.check::<B>(&device()).expect("f32 runs everywhere");
    for precision in [Precision::Bf16, Precision::F16] {
        match precision.check::<B>(&device()) {
            Err(MorphogenError::InvalidConfig { component, problem, hint }) => {
                assert_eq!(component, "model.precision");
                assert!(problem.contains(precision.name()), "{problem}");
                assert!(hint.contains("--backend cuda"), "{hint}");
            }
            other => panic!("{precision} on ndarray: {other:?}"),
        }
    }
}

/// Half-precision products on the backends that have them.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod half {
    use crate::common::*;
    use burn::module::{Module, Param};
    use burn::tensor::backend::AutodiffBackend;
    use burn::tensor::{DType, Tensor};
    use morphogen_engine::{
        Precision, SeededLinear, SeededLinearConfig, SeededMultiHeadAttention, SeededMultiHeadAttentionConfig,
    };

    /// The gradient `param` got, as f32 values, after checking it is f32 like the parameter.
    fn f32_grad<Bk: AutodiffBackend, const D: usize>(
        param: &Param<Tensor<Bk, D>>,
        grads: &Bk::Gradients,
        what: &str,
    ) -> Vec<f32> {
        let grad = param.grad(grads).unwrap_or_else(|| panic!("{what}: no gradient"));
        assert_eq!(grad.dtype(), DType::F32, "{what}: the master weight's gradient is f32");
        values(grad)
    }

    /// Reads `layer`'s host parameters, so a copy of its record holds them (Burn initializes
    /// parameters lazily, separately in each clone).
    fn initialized<Bk: AutodiffBackend>(layer: &SeededLinear<Bk>) {
        let _ = (layer.host.weight.val(), layer.host.bias.as_ref().map(|b| b.val()));
    }

    /// A seeded Linear and a causal attention computing their products in `precision` agree with
    /// f32 copies of themselves within `tol` (relative), output and parameter gradients, and their
    /// outputs and gradients stay f32. Skipped (with a line saying so) where the device has no
    /// `precision`.
    pub fn half_matches_f32<Bk: AutodiffBackend>(precision: Precision, tol: f32) {
        let device = Default::default();
        if precision.check::<Bk>(&device).is_err() {
            eprintln!("skipped: this device has no {precision}");
            return;
        }
        let linear = SeededLinearConfig::new(24, 40).with_num_seeds(8);
        let full = linear.init::<Bk>(&device);
        initialized(&full);
        let half = linear.with_precision(precision).init::<Bk>(&device).load_record(full.clone().into_record());
        let x = random_on::<Bk, 3>([4, 5, 24]);
        let out_weights = random_on::<Bk, 3>([4, 5, 40]);
        let [a, b] = [&full, &half].map(|layer| layer.forward(x.clone()));
        assert_eq!(b.dtype(), DType::F32, "the half layer's output is f32");
        assert_close(&values(a.clone()), &values(b.clone()), tol, "linear output");
        let [ga, gb] = [a, b].map(|out| (out * out_weights.clone()).sum().backward());
        let grad = |layer: &SeededLinear<Bk>, g| f32_grad(&layer.host.weight, g, "linear weight");
        assert_close(&grad(&full, &ga), &grad(&half, &gb), tol, "linear weight gradient");

        let attention = SeededMultiHeadAttentionConfig::new(24, 4).with_num_seeds(6).with_causal(true);
        let full = attention.init::<Bk>(&device);
        [&full.query, &full.key, &full.value, &full.output].into_iter().for_each(initialized);
        let half = attention.with_precision(precision).init::<Bk>(&device).load_record(full.clone().into_record());
        let x = random_on::<Bk, 3>([3, 7, 24]);
        let [a, b] = [&full, &half].map(|layer| layer.forward(x.clone()));
        assert_close(&values(a.clone()), &values(b.clone()), tol, "attention output");
        let out_weights = random_on::<Bk, 3>([3, 7, 24]);
        let [ga, gb] = [a, b].map(|out| (out * out_weights.clone()).sum().backward());
        let grad = |layer: &SeededMultiHeadAttention<Bk>, g| f32_grad(&layer.query.host.weight, g, "query");
        assert_close(&grad(&full, &ga), &grad(&half, &gb), tol, "query weight gradient");
    }

    #[cfg(feature = "wgpu")]
    #[test]
    fn wgpu_half_products_match_f32() {
        type W = burn::backend::Autodiff<burn::backend::Wgpu>;
        half_matches_f32::<W>(Precision::F16, 2e-2);
        half_matches_f32::<W>(Precision::Bf16, 4e-2);
    }

    #[cfg(feature = "cuda")]
    #[test]
    fn cuda_half_products_match_f32() {
        if std::env::var_os("MORPHOGEN_CUDA_TESTS").is_none() {
            return;
        }
        type C = burn::backend::Autodiff<burn::backend::Cuda>;
        half_matches_f32::<C>(Precision::F16, 2e-2);
        half_matches_f32::<C>(Precision::Bf16, 4e-2);
    }
}
