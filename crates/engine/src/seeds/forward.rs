//! The forward pass: telemetry on the host output, then every bank blended in, each through its
//! kernel while the guard trusts it.

use super::SeedCore;
use crate::blend::{apply_bank, kernel, BankPass, BankResult};
use crate::guard::{first_difference, Kernel};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

impl<B: Backend> SeedCore<B> {
    /// Applies every seed to the host output `h`: `[a, features, p]`. `spatial` is
    /// `[batch, height, width]` for Conv2d hosts. With no blueprint held, returns `h` untouched.
    pub fn apply(&self, h: Tensor<B, 3>, spatial: Option<[usize; 3]>) -> Tensor<B, 3> {
        let _span = tracing::trace_span!("seeded_layer", layer = self.setup.name.as_str()).entered();
        let sampled = self.observe(&h);
        let alpha = self.params.state.alpha.val();
        let host_output = h.clone();
        self.indices.iter().fold(h, |h, index| {
            let pass = BankPass {
                host_output: host_output.clone(),
                index,
                bank: self.params.banks[index.blueprint].as_ref().expect("indexed banks exist"),
                spec: self.setup.blueprints.get(index.blueprint),
                chunks: &self.setup.chunks,
                alpha: alpha.clone(),
                spatial,
                sampled,
            };
            let (h, sumsq) = self.blend(h, &pass);
            if let Some(sumsq) = sumsq {
                self.shared.telemetry().observe_blueprints(sumsq);
            }
            h
        })
    }

    /// Adds `h` to the telemetry window when this pass is a sampled one; says whether it was.
    fn observe(&self, h: &Tensor<B, 3>) -> bool {
        let lifecycle = &self.setup.lifecycle;
        if !lifecycle.telemetry {
            return false;
        }
        let mut window = self.shared.telemetry();
        let due = window.sample_pass(lifecycle.telemetry_every);
        if due {
            window.observe(h.clone(), &self.setup.chunks, lifecycle, &mut self.shared.guard());
        }
        due
    }

    /// One bank's pass: the active-seed kernel's result where the backend has the kernel and
    /// the guard trusts it (checked against the tensor path on its check passes; only the
    /// forward output is compared, the kernel tests cover gradients), else the tensor path's.
    fn blend(&self, h: Tensor<B, 3>, pass: &BankPass<'_, B>) -> BankResult<B> {
        let dtype = h.dtype();
        let fast = |h: &Tensor<B, 3>| kernel::apply_bank(h, pass);
        let slow = |h: Tensor<B, 3>| apply_bank(h, pass);
        let differ = |fast: &BankResult<B>, slow: &BankResult<B>, tolerance| {
            first_difference(fast.0.clone(), slow.0.clone(), tolerance).map(|d| format!("output {d}"))
        };
        let lifecycle = &self.setup.lifecycle;
        self.shared.guard().guarded(Kernel::Blend, lifecycle, h, fast, slow, differ, dtype).0
    }

    /// Forward passes since the last health report whose telemetry ran on a CubeCL kernel
    /// (always 0 on backends without kernels, or with `LifecycleConfig::kernels` off).
    pub fn telemetry_kernel_passes(&self) -> u64 {
        self.shared.telemetry().kernel_passes()
    }

    /// Bank passes (one per blueprint bank per forward) that ran on the active-seed kernel, over
    /// the layer's life: 0 where the backend has no kernels or no bank holds a blueprint the
    /// kernel runs.
    pub fn blend_kernel_passes(&self) -> u64 {
        self.shared.guard().passes(Kernel::Blend)
    }

    /// Why this layer left the kernel path (a failed check, or [`fall_back_from_kernels`](Self::fall_back_from_kernels)), if it did.
    pub fn kernel_fallback(&self) -> Option<String> {
        self.shared.guard().fallback().map(str::to_string)
    }

    /// A fallback not yet taken: `Some(reason)` once after a failed kernel check, then `None`.
    /// The trainer reports it as a fast-path fallback.
    pub fn take_kernel_fallback(&self) -> Option<String> {
        self.shared.guard().take_fallback()
    }

    /// Sends this layer to the tensor path for the rest of its life (e.g. the `kernels` flag was
    /// switched off for the run). Not reported as a failure by [`take_kernel_fallback`](Self::take_kernel_fallback).
    pub fn fall_back_from_kernels(&self, reason: &str) {
        self.shared.guard().fall_back(reason.to_string(), false);
    }
}
