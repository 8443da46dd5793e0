//! Finding the CubeCL tensor inside a backend's float tensor, so kernels run automatically on
//! CubeCL backends (with or without autodiff) and every other backend keeps the tensor path.
//!
//! Burn's usual backend extension is a trait every backend must implement; a bound like that
//! would spread to every generic `B` in user code. Instead the seeded layer stays generic over
//! any `Backend`, and at run time checks, by `TypeId`, whether `B`'s float primitive is a
//! `CubeTensor` of a runtime this build has (`cuda`, `wgpu` features), bare or inside Burn's
//! autodiff tensor. Kernel inputs are always detached values, so unwrapping the autodiff tensor
//! loses no graph.

use burn::backend::Autodiff;
use burn::tensor::backend::{AutodiffBackend, Backend, BackendTypes};
use burn::tensor::{bf16, f16};
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};
use std::any::{Any, TypeId};
use std::marker::PhantomData;

/// An operation on `N` CubeCL tensors giving `M`, for any runtime; `None` when it declines the
/// inputs (the caller then takes the tensor path).
pub(crate) trait CubePrimitive<const N: usize, const M: usize> {
    fn run<R: CubeRuntime>(&self, inputs: [CubeTensor<R>; N]) -> Option<[CubeTensor<R>; M]>;
}

/// Runs `op` on the CubeCL tensors inside `inputs`, or returns `None` if `B` is not a CubeCL
/// backend of this build (or `op` declined).
pub(crate) fn with_cube<B: Backend, K: CubePrimitive<N, M>, const N: usize, const M: usize>(
    inputs: [B::FloatTensorPrimitive; N],
    op: &K,
) -> Option<[B::FloatTensorPrimitive; M]> {
    #[cfg(feature = "cuda")]
    let inputs = match try_runtime::<B, cubecl::cuda::CudaRuntime, u8, K, N, M>(inputs, op) {
        Err(out) => return out,
        Ok(inputs) => inputs,
    };
    #[cfg(feature = "wgpu")]
    let inputs = match try_runtime::<B, cubecl::wgpu::WgpuRuntime, u32, K, N, M>(inputs, op) {
        Err(out) => return out,
        Ok(inputs) => inputs,
    };
    let _ = (inputs, op);
    None
}

/// `Ok(inputs)`: `B` is not this form, try the next. `Err(result)`: it is, and this is the result
/// (the early exit `?` gives).
type Attempt<B, const N: usize, const M: usize> =
    Result<[<B as BackendTypes>::FloatTensorPrimitive; N], Option<[<B as BackendTypes>::FloatTensorPrimitive; M]>>;

/// Tries runtime `R` bare and under autodiff with f32, f16 and bf16 floats (Burn's defaults for
/// ints and bools).
fn try_runtime<B, R, BT, K, const N: usize, const M: usize>(
    inputs: [B::FloatTensorPrimitive; N],
    op: &K,
) -> Attempt<B, N, M>
where
    B: Backend,
    R: CubeRuntime,
    BT: BoolElement,
    K: CubePrimitive<N, M>,
{
    let inputs = try_wrapping::<B, Bare<R>, K, N, M>(inputs, op)?;
    let inputs = try_wrapping::<B, Diff<R, f32, i32, BT>, K, N, M>(inputs, op)?;
    let inputs = try_wrapping::<B, Diff<R, f16, i32, BT>, K, N, M>(inputs, op)?;
    try_wrapping::<B, Diff<R, bf16, i32, BT>, K, N, M>(inputs, op)
}

/// Runs `op` if `B`'s float primitive is `W::Primitive`.
fn try_wrapping<B, W, K, const N: usize, const M: usize>(
    inputs: [B::FloatTensorPrimitive; N],
    op: &K,
) -> Attempt<B, N, M>
where
    B: Backend,
    W: Wrapping,
    K: CubePrimitive<N, M>,
{
    if TypeId::of::<B::FloatTensorPrimitive>() != TypeId::of::<W::Primitive>() {
        return Ok(inputs);
    }
    let cube = inputs.map(|p| W::unwrap(same_type(p)));
    Err(op.run(cube).map(|out| out.map(|t| same_type(W::wrap(t)))))
}

/// Moves a value between two names of one type (checked by `TypeId` before every call).
fn same_type<A: 'static, T: 'static>(value: A) -> T {
    let mut slot = Some(value);
    (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<T>>()
        .and_then(Option::take)
        .expect("the caller checked both types are the same")
}

/// How a backend's float primitive holds a `CubeTensor`.
trait Wrapping {
    type Runtime: CubeRuntime;
    type Primitive: 'static;
    fn unwrap(p: Self::Primitive) -> CubeTensor<Self::Runtime>;
    fn wrap(t: CubeTensor<Self::Runtime>) -> Self::Primitive;
}

/// `CubeBackend<R, ..>` itself: the primitive is the `CubeTensor`.
struct Bare<R>(PhantomData<R>);

impl<R: CubeRuntime> Wrapping for Bare<R> {
    type Runtime = R;
    type Primitive = CubeTensor<R>;
    fn unwrap(p: CubeTensor<R>) -> CubeTensor<R> {
        p
    }
    fn wrap(t: CubeTensor<R>) -> CubeTensor<R> {
        t
    }
}

/// `Autodiff<CubeBackend<R, F, I, BT>>`: results come back as untracked (constant) tensors.
struct Diff<R, F, I, BT>(PhantomData<(R, F, I, BT)>);

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> Wrapping for Diff<R, F, I, BT> {
    type Runtime = R;
    type Primitive = <Autodiff<CubeBackend<R, F, I, BT>> as BackendTypes>::FloatTensorPrimitive;
    fn unwrap(p: Self::Primitive) -> CubeTensor<R> {
        Autodiff::<CubeBackend<R, F, I, BT>>::inner(p)
    }
    fn wrap(t: CubeTensor<R>) -> Self::Primitive {
        Autodiff::<CubeBackend<R, F, I, BT>>::from_inner(t)
    }
}
