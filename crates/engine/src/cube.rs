//! Finding the CubeCL tensor inside a backend's float tensor, so kernels run automatically on
//! CubeCL backends (with or without autodiff) and every other backend keeps the tensor path.
//!
//! Burn's usual backend extension is a trait every backend must implement; a bound like that
//! would spread to every generic `B` in user code. Instead the seeded layer stays generic over
//! any `Backend`, and at run time checks, by `TypeId`, whether `B`'s float primitive is a
//! `CubeTensor` of a runtime this build has (`cuda`, `wgpu` features), bare or inside Burn's
//! autodiff tensor.
//!
//! Two kinds of operation: a [`CubePrimitive`] takes detached values (unwrapping the autodiff
//! tensor loses no graph); a [`CubeDifferentiable`] brings its own backward, registered in
//! Burn's autodiff graph when the backend is `Autodiff<CubeBackend<..>>`.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::Autodiff;
use burn::tensor::backend::{AutodiffBackend, Backend, BackendTypes};
use burn::tensor::{bf16, f16};
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};
use std::any::{Any, TypeId};
use std::fmt::Debug;
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

/// An operation on CubeCL tensors with its own backward: `N` inputs that may need gradients,
/// constants that never do, and two outputs: the result (differentiable) and a side result
/// (not).
pub(crate) trait CubeDifferentiable<const N: usize>: Clone + Debug + Send + Sync + 'static {
    /// Whether the op takes these inputs (else the caller takes the tensor path).
    fn accepts<R: CubeRuntime>(&self, inputs: &[CubeTensor<R>; N], constants: &[CubeTensor<R>]) -> bool;
    /// The result and the side result.
    fn forward<R: CubeRuntime>(&self, inputs: &[CubeTensor<R>; N], constants: &[CubeTensor<R>]) -> [CubeTensor<R>; 2];
    /// The gradients of the inputs flagged in `wanted` (`None` elsewhere), from the result's.
    fn backward<R: CubeRuntime>(
        &self,
        inputs: &[CubeTensor<R>; N],
        constants: &[CubeTensor<R>],
        grad: CubeTensor<R>,
        wanted: [bool; N],
    ) -> [Option<CubeTensor<R>>; N];
}

/// A constant input of a [`CubeDifferentiable`]: a float or an int tensor.
pub(crate) enum Constant<B: Backend> {
    Float(B::FloatTensorPrimitive),
    Int(B::IntTensorPrimitive),
}

/// Runs `op` on the CubeCL tensors inside `inputs` and `constants`, recording its backward when
/// `B` is an autodiff backend; `None` if `B` is not a CubeCL backend of this build (or `op`
/// declined).
pub(crate) fn with_cube_differentiable<B: Backend, K: CubeDifferentiable<N>, const N: usize>(
    inputs: [B::FloatTensorPrimitive; N],
    constants: Vec<Constant<B>>,
    op: &K,
) -> Option<[B::FloatTensorPrimitive; 2]> {
    let args = (inputs, constants);
    #[cfg(feature = "cuda")]
    let args = match try_runtime_differentiable::<B, cubecl::cuda::CudaRuntime, u8, K, N>(args, op) {
        Err(out) => return out,
        Ok(args) => args,
    };
    #[cfg(feature = "wgpu")]
    let args = match try_runtime_differentiable::<B, cubecl::wgpu::WgpuRuntime, u32, K, N>(args, op) {
        Err(out) => return out,
        Ok(args) => args,
    };
    let _ = (args, op);
    None
}

/// The arguments of [`with_cube_differentiable`], passed on while no form matches.
type Args<B, const N: usize> = ([<B as BackendTypes>::FloatTensorPrimitive; N], Vec<Constant<B>>);

/// `Ok(args)`: `B` is not this form. `Err(result)`: it is, and this is the result.
type DiffAttempt<B, const N: usize> = Result<Args<B, N>, Option<[<B as BackendTypes>::FloatTensorPrimitive; 2]>>;

fn try_runtime_differentiable<B, R, BT, K, const N: usize>(args: Args<B, N>, op: &K) -> DiffAttempt<B, N>
where
    B: Backend,
    R: CubeRuntime,
    BT: BoolElement,
    K: CubeDifferentiable<N>,
{
    if TypeId::of::<B::IntTensorPrimitive>() != TypeId::of::<CubeTensor<R>>() {
        return Ok(args);
    }
    let args = try_differentiable::<B, Bare<R>, K, N>(args, op)?;
    let args = try_differentiable::<B, Diff<R, f32, i32, BT>, K, N>(args, op)?;
    let args = try_differentiable::<B, Diff<R, f16, i32, BT>, K, N>(args, op)?;
    try_differentiable::<B, Diff<R, bf16, i32, BT>, K, N>(args, op)
}

fn try_differentiable<B, W, K, const N: usize>((inputs, constants): Args<B, N>, op: &K) -> DiffAttempt<B, N>
where
    B: Backend,
    W: Tracking,
    K: CubeDifferentiable<N>,
{
    if TypeId::of::<B::FloatTensorPrimitive>() != TypeId::of::<W::Primitive>() {
        return Ok((inputs, constants));
    }
    let constants: Vec<CubeTensor<W::Runtime>> = constants
        .into_iter()
        .map(|c| match c {
            Constant::Float(p) => W::unwrap(same_type(p)),
            Constant::Int(p) => same_type(p),
        })
        .collect();
    let inputs = inputs.map(same_type::<_, W::Primitive>);
    Err(W::run(inputs, constants, op).map(|out| out.map(same_type)))
}

/// A [`Wrapping`] that can also record a backward.
trait Tracking: Wrapping {
    fn run<K: CubeDifferentiable<N>, const N: usize>(
        inputs: [Self::Primitive; N],
        constants: Vec<CubeTensor<Self::Runtime>>,
        op: &K,
    ) -> Option<[Self::Primitive; 2]>;
}

impl<R: CubeRuntime> Tracking for Bare<R> {
    fn run<K: CubeDifferentiable<N>, const N: usize>(
        inputs: [CubeTensor<R>; N],
        constants: Vec<CubeTensor<R>>,
        op: &K,
    ) -> Option<[CubeTensor<R>; 2]> {
        op.accepts(&inputs, &constants).then(|| op.forward(&inputs, &constants))
    }
}

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> Tracking for Diff<R, F, I, BT> {
    fn run<K: CubeDifferentiable<N>, const N: usize>(
        inputs: [Self::Primitive; N],
        constants: Vec<CubeTensor<R>>,
        op: &K,
    ) -> Option<[Self::Primitive; 2]> {
        let nodes = inputs.each_ref().map(|t| t.node.clone());
        let inner = inputs.map(|t| t.primitive);
        if !op.accepts(&inner, &constants) {
            return None;
        }
        let [result, side] = op.forward(&inner, &constants);
        let prep = DifferentiableBackward::<K, R>(PhantomData).prepare::<NoCheckpointing>(nodes).compute_bound();
        let result = match prep.stateful() {
            OpsKind::Tracked(prep) => prep.finish((op.clone(), inner, constants), result),
            OpsKind::UnTracked(prep) => prep.finish(result),
        };
        Some([result, Self::wrap(side)])
    }
}

/// The backward step of a [`CubeDifferentiable`] in Burn's autodiff graph.
#[derive(Debug)]
struct DifferentiableBackward<K, R>(PhantomData<(K, R)>);

impl<K, R, F, I, BT, const N: usize> Backward<CubeBackend<R, F, I, BT>, N> for DifferentiableBackward<K, R>
where
    K: CubeDifferentiable<N>,
    R: CubeRuntime,
    F: FloatElement,
    I: IntElement,
    BT: BoolElement,
{
    type State = (K, [CubeTensor<R>; N], Vec<CubeTensor<R>>);

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<CubeBackend<R, F, I, BT>>(&ops.node);
        let wanted = ops.parents.each_ref().map(Option::is_some);
        let (op, inputs, constants) = ops.state;
        let input_grads = op.backward(&inputs, &constants, grad, wanted);
        for (parent, input_grad) in ops.parents.into_iter().zip(input_grads) {
            if let (Some(node), Some(input_grad)) = (parent, input_grad) {
                grads.register::<CubeBackend<R, F, I, BT>>(node.id, input_grad);
            }
        }
    }
}
