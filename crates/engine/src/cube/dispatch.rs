//! Dispatch: finding the CubeCL tensor inside a backend's float tensor, so kernels run automatically on
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
    dispatch::<B, _>(Detached::<B, K, N, M> { inputs, op, outputs: PhantomData }).flatten()
}

/// How many buffers one kernel launch may bind on the device holding `tensor` (CubeCL's count,
/// which leaves room for the runtime's own); `None` if `B` is not a CubeCL backend of this build.
pub(crate) fn max_bindings<B: Backend>(tensor: &B::FloatTensorPrimitive) -> Option<usize> {
    dispatch::<B, _>(MaxBindings::<B>(tensor.clone()))
}

/// The [`max_bindings`] query.
struct MaxBindings<B: Backend>(B::FloatTensorPrimitive);

impl<B: Backend> OnCube<B> for MaxBindings<B> {
    type Out = usize;
    fn on<W: Tracking>(self) -> usize {
        W::unwrap(same_type(self.0)).client.properties().hardware.max_bindings as usize
    }
}

/// Something to run on whichever form of CubeCL tensor `B`'s float primitive is.
trait OnCube<B: Backend>: Sized {
    type Out;
    /// Runs on form `W`; called only when `B`'s float primitive is `W::Primitive`.
    fn on<W: Tracking>(self) -> Self::Out;
}

/// Runs `task` on the form of CubeCL tensor `B` uses: each runtime this build has (features
/// `cuda`, `wgpu`), bare or under autodiff with f32, f16 and bf16 floats (Burn's defaults for
/// ints and bools). `None` when `B` is none of them.
fn dispatch<B: Backend, T: OnCube<B>>(task: T) -> Option<T::Out> {
    #[cfg(feature = "cuda")]
    let task = match on_runtime::<B, cubecl::cuda::CudaRuntime, u8, T>(task) {
        Err(out) => return Some(out),
        Ok(task) => task,
    };
    #[cfg(feature = "wgpu")]
    let task = match on_runtime::<B, cubecl::wgpu::WgpuRuntime, u32, T>(task) {
        Err(out) => return Some(out),
        Ok(task) => task,
    };
    let _ = task;
    None
}

/// `Ok(task)`: `B` is not a form of runtime `R`, try the next. `Err(out)`: it is, and this is
/// the result (the early exit `?` gives).
fn on_runtime<B: Backend, R: CubeRuntime, BT: BoolElement, T: OnCube<B>>(task: T) -> Result<T, T::Out> {
    let task = on_form::<B, Bare<R>, T>(task)?;
    let task = on_form::<B, Diff<R, f32, i32, BT>, T>(task)?;
    let task = on_form::<B, Diff<R, f16, i32, BT>, T>(task)?;
    on_form::<B, Diff<R, bf16, i32, BT>, T>(task)
}

/// Runs `task` if `B`'s float primitive is `W::Primitive`.
fn on_form<B: Backend, W: Tracking, T: OnCube<B>>(task: T) -> Result<T, T::Out> {
    if TypeId::of::<B::FloatTensorPrimitive>() != TypeId::of::<W::Primitive>() {
        return Ok(task);
    }
    Err(task.on::<W>())
}

/// A [`CubePrimitive`] and its inputs, for [`with_cube`].
struct Detached<'a, B: Backend, K, const N: usize, const M: usize> {
    inputs: [B::FloatTensorPrimitive; N],
    op: &'a K,
    outputs: PhantomData<[(); M]>,
}

impl<B: Backend, K: CubePrimitive<N, M>, const N: usize, const M: usize> OnCube<B> for Detached<'_, B, K, N, M> {
    type Out = Option<[B::FloatTensorPrimitive; M]>;
    fn on<W: Tracking>(self) -> Self::Out {
        let cube = self.inputs.map(|p| W::unwrap(same_type(p)));
        self.op.run(cube).map(|out| out.map(|t| same_type(W::wrap(t))))
    }
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
    dispatch::<B, _>(Differentiable { inputs, constants, op }).flatten()
}

/// A [`CubeDifferentiable`] and its arguments, for [`with_cube_differentiable`].
struct Differentiable<'a, B: Backend, K, const N: usize> {
    inputs: [B::FloatTensorPrimitive; N],
    constants: Vec<Constant<B>>,
    op: &'a K,
}

impl<B: Backend, K: CubeDifferentiable<N>, const N: usize> OnCube<B> for Differentiable<'_, B, K, N> {
    type Out = Option<[B::FloatTensorPrimitive; 2]>;
    fn on<W: Tracking>(self) -> Self::Out {
        if TypeId::of::<B::IntTensorPrimitive>() != TypeId::of::<CubeTensor<W::Runtime>>() {
            return None;
        }
        let constants: Vec<CubeTensor<W::Runtime>> = self
            .constants
            .into_iter()
            .map(|c| match c {
                Constant::Float(p) => W::unwrap(same_type(p)),
                Constant::Int(p) => same_type(p),
            })
            .collect();
        let inputs = self.inputs.map(same_type::<_, W::Primitive>);
        W::run(inputs, constants, self.op).map(|out| out.map(same_type))
    }
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
