//! The active-seed kernels: [`apply_bank`](super::apply_bank) fused, for CubeCL backends.
//!
//! For blueprints of the form `Dense -> [ReLU | Tanh] -> Dense` (biases optional: the built-in
//! `residual_mlp` and `low_rank`), each bank page is one differentiable op. A cube takes one bank
//! row and a group of its samples (groups are sized so a page fills about four cubes per SM):
//! - forward, one launch after a copy of the host output: each cube streams its samples of the
//!   row's chunk through shared memory in tiles, runs both dense maps from the row's
//!   parameters, and adds the weighed result onto the chunk in place (the SGMV pattern: every
//!   row its own small GEMM, all rows in one launch). It also writes its sum of squared outputs
//!   for telemetry;
//! - backward, two launches (after a copy of the output gradient unless it can be written in
//!   place): each cube recomputes the hidden activations, accumulates its samples' parameter
//!   gradients in shared memory (f32) and adds the input gradient onto the chunk's gradient;
//!   then the groups' parameter gradients are summed.
//!
//! The device code is in `device`; this module picks the blueprints and grids the kernels take
//! and launches them.
//!
//! Per layer and step that is `1 + P` launches forward and `2P` (or `2P + 1`) backward for a
//! bank of `P` pages, whatever the number of active seeds. Other blueprints (convolutions,
//! longer chains, GELU) and chunks too wide for shared memory take the tensor path.

mod device;

use super::{per_seed, BankPass, BankResult};
use crate::blueprint::{Activation, BlueprintOp, BlueprintSpec};
use crate::cube::{streaming_multiprocessors, with_cube_differentiable, Constant, CubeDifferentiable};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Shape, Tensor as BurnTensor, TensorPrimitive};
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;
use cubecl::prelude::*;
use cubecl::{calculate_cube_count_elemwise, CubeDim};
use device::{blend_backward, blend_forward, sum_groups, DimsLaunch, HiddenActivation, THREADS};

/// Most samples a cube stages per tile.
const MAX_TILE: usize = 64;
/// Cubes per SM worth filling the GPU with: rows split their samples into groups, a cube each,
/// until there are about this many per SM.
const CUBES_PER_SM: usize = 4;

/// A blueprint the kernels run: `Dense -> [ReLU | Tanh] -> Dense`, biases optional.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Chain {
    width: usize,
    hidden: usize,
    act: HiddenActivation,
    bias1: bool,
    bias2: bool,
}

impl Chain {
    /// The chain of `spec` at padded chunk width `width`; `None` for any other blueprint.
    fn of(spec: &BlueprintSpec, width: usize) -> Option<Self> {
        let (first, act, second) = match spec.ops.as_slice() {
            [first, BlueprintOp::Act(act), second] => (first, Some(*act), second),
            [first, second] => (first, None, second),
            _ => return None,
        };
        let act = match act {
            None => HiddenActivation::Identity,
            Some(Activation::Relu) => HiddenActivation::Relu,
            Some(Activation::Tanh) => HiddenActivation::Tanh,
            Some(Activation::Gelu) => return None,
        };
        let (BlueprintOp::Dense { bias: bias1, .. }, BlueprintOp::Dense { bias: bias2, .. }) = (first, second) else {
            return None;
        };
        let hidden = spec.param_shapes(width)[0].dims[1];
        Some(Self { width, hidden, act, bias1: *bias1, bias2: *bias2 })
    }

    /// Parameters of one row: `2 * width * hidden + hidden + width` (gradient layout, biases
    /// included whether or not the blueprint has them).
    fn row_params(&self) -> usize {
        2 * self.width * self.hidden + self.hidden + self.width
    }

    /// Samples per tile so the backward kernel's shared memory fits `max_shared_bytes`.
    fn tile(&self, max_shared_bytes: usize) -> Option<usize> {
        let floats = max_shared_bytes / 4;
        // Backward: staged parameters and their gradients; forward needs less.
        let fixed = 2 * self.row_params() + THREADS as usize;
        let per_sample = 2 * (self.width + self.hidden);
        let tile = floats.checked_sub(fixed)? / per_sample;
        (tile >= 1).then_some(tile.min(MAX_TILE))
    }
}

/// One bank page's pass: the [`CubeDifferentiable`] behind [`apply_bank`].
/// Inputs: the host output, then `w1, b1, w2, b2` (absent biases stand in as detached copies of
/// `w1`); constants: alpha `[seeds]` and the bank's row table `[rows, 2]`.
#[derive(Clone, Debug)]
struct PagePass {
    chain: Chain,
    first_row: usize,
    base: usize,
    big: usize,
    sampled: bool,
}

/// How a launch covers a page: `rows x groups` cubes, each taking `group_samples` samples (whole
/// tiles) of one row.
#[derive(Clone, Copy, Debug)]
struct Grid {
    rows: usize,
    groups: usize,
    group_samples: usize,
    tile: usize,
}

impl Grid {
    fn cubes(&self) -> CubeCount {
        CubeCount::Static(self.rows as u32, self.groups as u32, 1)
    }
}

impl PagePass {
    /// The grid for host output `h` and a page of `rows` rows; `None` when a row's tile does not
    /// fit shared memory.
    fn grid<R: CubeRuntime>(&self, h: &CubeTensor<R>, rows: usize) -> Option<Grid> {
        let tile = self.chain.tile(h.client.properties().hardware.max_shared_memory_size)?;
        let [a, _, p] = h.meta.shape().dims::<3>();
        let tiles = (a * p).div_ceil(tile).max(1);
        let target_cubes = CUBES_PER_SM * streaming_multiprocessors(&h.client);
        let wanted = target_cubes.div_ceil(rows.max(1)).clamp(1, tiles);
        let group_samples = tiles.div_ceil(wanted) * tile;
        Some(Grid { rows, groups: (a * p).div_ceil(group_samples).max(1), group_samples, tile })
    }

    fn dims<R: CubeRuntime>(&self, h: &CubeTensor<R>, grid: Grid) -> DimsLaunch<R> {
        let [a, _, p] = h.meta.shape().dims::<3>();
        let c = self.chain;
        DimsLaunch::new(
            self.first_row,
            a * p,
            p,
            self.base,
            self.big,
            c.width,
            c.hidden,
            grid.tile,
            grid.group_samples,
            c.bias1 as u32,
            c.bias2 as u32,
            self.sampled as u32,
        )
    }
}

/// Rows of a page: the first dimension of its first parameter.
fn page_rows<R: CubeRuntime>(w1: &CubeTensor<R>) -> usize {
    w1.meta.shape().dims::<3>()[0]
}

/// A tensor's own buffer to write into: itself when nothing else holds it, else a copy.
fn writable<R: CubeRuntime>(t: CubeTensor<R>) -> CubeTensor<R> {
    if t.can_mut() && t.is_nonoverlapping() {
        t
    } else {
        t.copy()
    }
}

impl CubeDifferentiable<5> for PagePass {
    fn accepts<R: CubeRuntime>(&self, inputs: &[CubeTensor<R>; 5], constants: &[CubeTensor<R>]) -> bool {
        constants[1].dtype == DType::I32 && self.grid(&inputs[0], page_rows(&inputs[1])).is_some()
    }

    fn forward<R: CubeRuntime>(&self, inputs: &[CubeTensor<R>; 5], constants: &[CubeTensor<R>]) -> [CubeTensor<R>; 2] {
        let [h, w1, b1, w2, b2] = inputs.clone();
        let [alpha, table] = [constants[0].clone(), constants[1].clone()];
        let grid = self.grid(&h, page_rows(&w1)).expect("accepted");
        let (client, device, dtype) = (h.client.clone(), h.device.clone(), h.dtype);
        let out = h.copy();
        let shape = Shape::new([grid.groups, grid.rows]);
        let sumsq = empty_device_contiguous_dtype::<R>(client.clone(), device, shape, dtype);
        let c = self.chain;
        blend_forward::launch::<R>(
            &client,
            grid.cubes(),
            CubeDim::new_1d(THREADS),
            out.clone().into_tensor_arg(),
            w1.into_tensor_arg(),
            b1.into_tensor_arg(),
            w2.into_tensor_arg(),
            b2.into_tensor_arg(),
            alpha.into_tensor_arg(),
            table.into_tensor_arg(),
            sumsq.clone().into_tensor_arg(),
            self.dims(&h, grid),
            grid.tile * c.width,
            grid.tile * c.hidden,
            c.row_params(),
            c.act,
            dtype.into(),
        );
        [out, sumsq]
    }

    fn backward<R: CubeRuntime>(
        &self,
        inputs: &[CubeTensor<R>; 5],
        constants: &[CubeTensor<R>],
        grad: CubeTensor<R>,
        wanted: [bool; 5],
    ) -> [Option<CubeTensor<R>>; 5] {
        let [h, w1, b1, w2, b2] = inputs.clone();
        let [alpha, table] = [constants[0].clone(), constants[1].clone()];
        let grid = self.grid(&h, page_rows(&w1)).expect("accepted");
        let (rows, c) = (grid.rows, self.chain);
        let (client, device, dtype) = (h.client.clone(), h.device.clone(), w1.dtype);
        let grad = writable(grad);
        let new =
            |shape: Shape, dtype| empty_device_contiguous_dtype::<R>(client.clone(), device.clone(), shape, dtype);
        let partial = new(Shape::new([grid.groups, rows, c.row_params()]), DType::F32);
        blend_backward::launch::<R>(
            &client,
            grid.cubes(),
            CubeDim::new_1d(THREADS),
            h.clone().into_tensor_arg(),
            grad.clone().into_tensor_arg(),
            w1.into_tensor_arg(),
            b1.into_tensor_arg(),
            w2.into_tensor_arg(),
            b2.into_tensor_arg(),
            alpha.into_tensor_arg(),
            table.into_tensor_arg(),
            partial.clone().into_tensor_arg(),
            self.dims(&h, grid),
            grid.tile * c.width,
            grid.tile * c.hidden,
            c.row_params(),
            c.act,
            dtype.into(),
        );
        let shapes = [[rows, c.width, c.hidden], [rows, 1, c.hidden], [rows, c.hidden, c.width], [rows, 1, c.width]];
        let [gw1, gb1, gw2, gb2] = shapes.map(|shape| new(Shape::new(shape), dtype));
        let cube_dim = CubeDim::new_1d(THREADS);
        sum_groups::launch::<R>(
            &client,
            calculate_cube_count_elemwise(&client, rows * c.row_params(), cube_dim),
            cube_dim,
            partial.into_tensor_arg(),
            gw1.clone().into_tensor_arg(),
            gb1.clone().into_tensor_arg(),
            gw2.clone().into_tensor_arg(),
            gb2.clone().into_tensor_arg(),
            grid.groups,
            rows,
            c.width,
            c.hidden,
            dtype.into(),
        );
        let out = [Some(grad), Some(gw1), c.bias1.then_some(gb1), Some(gw2), c.bias2.then_some(gb2)];
        let mut wanted = wanted.into_iter();
        out.map(|g| g.filter(|_| wanted.next().unwrap_or(false)))
    }
}

/// The kernel form of [`apply_bank`](super::apply_bank): `None` when `B` is not a CubeCL backend
/// this build knows, the blueprint is not a two-map chain, or a row does not fit shared memory.
pub(crate) fn apply_bank<B: Backend>(h: &BurnTensor<B, 3>, pass: &BankPass<'_, B>) -> Option<BankResult<B>> {
    let chain = Chain::of(pass.spec, pass.chunks.width())?;
    let seeds = pass.chunks.seeds();
    let float = |t: BurnTensor<B, 3>| t.into_primitive().tensor();
    let mut out = h.clone();
    let mut sums = Vec::new();
    let mut first_row = 0;
    for page in &pass.bank.pages {
        let rows = page.params[0].dims()[0];
        // A page whose rows are all frozen passes detached parameters: no gradients at all.
        let trainable = pass.index.roles[first_row..first_row + rows].iter().any(|r| r.trainable);
        let mut params = page.params.iter().map(|p| if trainable { p.val() } else { p.val().detach() });
        let w1 = params.next()?;
        let stand_in = || w1.clone().detach();
        let b1 = if chain.bias1 { params.next()? } else { stand_in() };
        let w2 = params.next()?;
        let b2 = if chain.bias2 { params.next()? } else { stand_in() };
        let (base, big) = (pass.chunks.base(), pass.chunks.big_chunks());
        let op = PagePass { chain, first_row, base, big, sampled: pass.sampled };
        let constants = vec![
            Constant::Float(pass.alpha.clone().into_primitive().tensor()),
            Constant::Int(pass.index.table.clone().into_primitive()),
        ];
        let inputs = [out, w1, b1, w2, b2].map(float);
        let [result, sumsq] = with_cube_differentiable::<B, _, 5>(inputs, constants, &op)?;
        out = BurnTensor::from_primitive(TensorPrimitive::Float(result));
        if pass.sampled {
            // [groups, rows]: one sum per sample group.
            let sumsq = BurnTensor::<B, 2>::from_primitive(TensorPrimitive::Float(sumsq));
            sums.push(sumsq.sum_dim(0).reshape([rows]));
        }
        first_row += rows;
    }
    let sumsq = pass.sampled.then(|| per_seed(BurnTensor::cat(sums, 0), pass.index, seeds));
    Some((out, sumsq))
}
