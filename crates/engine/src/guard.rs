//! The run-time kernel guard: a seeded layer trusts its CubeCL kernels only while they agree with
//! the tensor path.
//!
//! Each kernel's result is checked against the tensor path's on its first pass and every
//! `kernel_check_every` passes after (the check reads both back, so it is rare). A disagreement,
//! or a switch from outside (the `kernels` flag turned off by a rollback rule), sends the layer
//! to the tensor path for the rest of its life; a failed check is reported once, as a fast-path
//! fallback, through [`KernelGuard::take_fallback`]. One guard serves both kernels of a layer.

use crate::config::LifecycleConfig;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor};

/// The kernels a guard watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kernel {
    /// Dormant telemetry: the window's sums.
    Telemetry,
    /// Active seeds: one bank's blended output.
    Blend,
}

impl Kernel {
    /// The kernel and what one of its passes is, for fallback reasons.
    fn describes(self) -> (&'static str, &'static str) {
        match self {
            Kernel::Telemetry => ("telemetry kernel", "kernel pass"),
            Kernel::Blend => ("active-seed kernel", "bank pass"),
        }
    }

    /// How much looser this kernel's check is than `kernel_check_tolerance`: the tensor path's
    /// blueprint maps may run through TF32 on CUDA (Burn's matmul), about 1e-3 relative.
    fn slack(self) -> f32 {
        match self {
            Kernel::Telemetry => 1.0,
            Kernel::Blend => 10.0,
        }
    }
}

/// The least tolerance of a kernel check on f16/bf16 outputs, whose tensor-path sums round at
/// every addition (8-bit bf16 mantissas: a few percent over a batch).
const HALF_CHECK_TOLERANCE: f32 = 0.1;

/// Whether a layer still trusts its kernels, and why it stopped (see the module docs).
#[derive(Clone, Debug, Default)]
pub(crate) struct KernelGuard {
    /// Passes each kernel ran over the layer's life, by [`Kernel`].
    telemetry_passes: u64,
    blend_passes: u64,
    /// Why the layer left the kernel path, if it did.
    fell_back: Option<String>,
    /// Whether `fell_back` is yet to be taken by [`KernelGuard::take_fallback`].
    unreported: bool,
}

impl KernelGuard {
    /// Whether kernels may run: `lifecycle.kernels` is on and the layer has not fallen back.
    pub fn trusts_kernels(&self, lifecycle: &LifecycleConfig) -> bool {
        lifecycle.kernels && self.fell_back.is_none()
    }

    /// Passes `kernel` ran over the layer's life (checked or not).
    pub fn passes(&self, kernel: Kernel) -> u64 {
        match kernel {
            Kernel::Telemetry => self.telemetry_passes,
            Kernel::Blend => self.blend_passes,
        }
    }

    /// A pass of `kernel` on `input`: the kernel's result `fast(&input)` where the layer trusts
    /// its kernels and the kernel takes the input (`Some`), checked against the tensor path's
    /// result `slow(input)` when a check is due (compared by `differ`, which says where they
    /// differ); otherwise, and when a check fails (the layer then falls back), the tensor path's.
    /// The tensor path owns `input`, so it can work in place. The flag says whether the kernel's
    /// result was kept.
    #[allow(clippy::too_many_arguments)]
    pub fn guarded<I, T>(
        &mut self,
        kernel: Kernel,
        lifecycle: &LifecycleConfig,
        input: I,
        fast: impl FnOnce(&I) -> Option<T>,
        slow: impl FnOnce(I) -> T,
        differ: impl FnOnce(&T, &T, f32) -> Option<String>,
        dtype: DType,
    ) -> (T, bool) {
        let fast = if self.trusts_kernels(lifecycle) { fast(&input) } else { None };
        let Some(fast) = fast else {
            return (slow(input), false);
        };
        let passes = match kernel {
            Kernel::Telemetry => &mut self.telemetry_passes,
            Kernel::Blend => &mut self.blend_passes,
        };
        *passes += 1;
        let pass = *passes;
        if !lifecycle.kernel_check_due(pass) {
            return (fast, true);
        }
        let slow = slow(input);
        let tolerance = check_tolerance(lifecycle.kernel_check_tolerance * kernel.slack(), dtype);
        match differ(&fast, &slow, tolerance) {
            None => (fast, true),
            Some(reason) => {
                let (name, unit) = kernel.describes();
                self.fall_back(format!("{name} check failed on {unit} {pass}: {reason}"), true);
                (slow, false)
            }
        }
    }

    /// Leaves the kernel path for good (a first reason stands); when `report`, the reason is
    /// taken once by [`Self::take_fallback`].
    pub fn fall_back(&mut self, reason: String, report: bool) {
        if self.fell_back.is_none() {
            self.fell_back = Some(reason);
            self.unreported = report;
        }
    }

    /// Why the layer left the kernel path, if it did.
    pub fn fallback(&self) -> Option<&str> {
        self.fell_back.as_deref()
    }

    /// The fallback reason, once: `None` again after it was taken (or when there is none).
    pub fn take_fallback(&mut self) -> Option<String> {
        let unreported = std::mem::take(&mut self.unreported);
        unreported.then(|| self.fell_back.clone()).flatten()
    }
}

/// The first element where `kernel` and `tensor` differ by more than `tolerance` relative to
/// `max(1, |tensor|)` (NaN agreeing with NaN), as `"i is a on the kernel, b on the tensor path"`;
/// `None` when they agree. Reads both back to the host.
pub(crate) fn first_difference<B: Backend, const D: usize>(
    kernel: Tensor<B, D>,
    tensor: Tensor<B, D>,
    tolerance: f32,
) -> Option<String> {
    let flat = |t: Tensor<B, D>| -> Vec<f32> { t.into_data().convert::<f32>().to_vec().expect("f32 values") };
    let (k, t) = (flat(kernel), flat(tensor));
    let (i, (a, b)) = k.iter().zip(&t).enumerate().find(|(_, (a, b))| {
        let same = a == b || (a.is_nan() && b.is_nan()) || (*a - *b).abs() <= tolerance * b.abs().max(1.0);
        !same
    })?;
    Some(format!("{i} is {a} on the kernel, {b} on the tensor path (tolerance {tolerance})"))
}

/// The tolerance a kernel check uses on outputs of `dtype`: `tolerance`, raised to
/// [`HALF_CHECK_TOLERANCE`] for f16/bf16, whose tensor-path sums round in the half type.
fn check_tolerance(tolerance: f32, dtype: DType) -> f32 {
    if dtype.size() < 4 {
        tolerance.max(HALF_CHECK_TOLERANCE)
    } else {
        tolerance
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lifecycle(every: usize) -> LifecycleConfig {
        LifecycleConfig::new().with_kernel_check_every(every)
    }

    #[test]
    fn a_disagreeing_check_falls_back_once_and_reports_once() {
        let mut guard = KernelGuard::default();
        let differ = |a: &f32, b: &f32, _: f32| (a != b).then(|| format!("{a} vs {b}"));
        let (value, kept) = guard.guarded(Kernel::Blend, &lifecycle(2), (), |_| Some(1.0), |_| 2.0, differ, DType::F32);
        assert_eq!((value, kept), (2.0, false), "the first pass is checked and the tensor path wins");
        assert!(!guard.trusts_kernels(&lifecycle(2)));
        let reason = guard.take_fallback().expect("reported once");
        assert!(reason.contains("active-seed kernel check failed on bank pass 1"), "{reason}");
        assert_eq!(guard.take_fallback(), None);
        assert_eq!(guard.passes(Kernel::Blend), 1);
        assert_eq!(guard.passes(Kernel::Telemetry), 0);
    }

    #[test]
    fn checks_run_only_when_due() {
        let mut guard = KernelGuard::default();
        let mut checks = 0;
        for _ in 0..5 {
            let (_, kept) = guard.guarded(
                Kernel::Telemetry,
                &lifecycle(3),
                (),
                |_| Some(0.0),
                |_| {
                    checks += 1;
                    0.0
                },
                |_: &f32, _: &f32, _| None,
                DType::F32,
            );
            assert!(kept);
        }
        assert_eq!(checks, 2, "passes 1 and 4 are checked with kernel_check_every = 3");
    }

    #[test]
    fn without_trust_or_a_kernel_the_tensor_path_runs_uncounted() {
        let mut guard = KernelGuard::default();
        let never = |_: &f32, _: &f32, _: f32| -> Option<String> { panic!("nothing to compare") };
        let declined = guard.guarded(Kernel::Blend, &lifecycle(1), (), |_| None, |_| 2.0, never, DType::F32);
        assert_eq!(declined, (2.0, false));
        let off = LifecycleConfig::new().with_kernels(false);
        let kernel = |_: &()| -> Option<f32> { panic!("kernels are off") };
        let untrusted = guard.guarded(Kernel::Blend, &off, (), kernel, |_| 3.0, never, DType::F32);
        assert_eq!(untrusted, (3.0, false));
        assert_eq!(guard.passes(Kernel::Blend), 0);
    }

    #[test]
    fn a_switch_from_outside_is_not_reported() {
        let mut guard = KernelGuard::default();
        guard.fall_back("flag off".into(), false);
        guard.fall_back("later".into(), true);
        assert_eq!(guard.fallback(), Some("flag off"), "the first reason stands");
        assert_eq!(guard.take_fallback(), None);
    }

    #[test]
    fn half_precision_checks_are_looser() {
        assert_eq!(check_tolerance(1e-4, DType::F32), 1e-4);
        assert_eq!(check_tolerance(1e-4, DType::BF16), HALF_CHECK_TOLERANCE);
    }
}
