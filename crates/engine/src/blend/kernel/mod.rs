//! The active-seed kernels: [`apply_bank`](super::apply_bank) fused, for CubeCL backends.
//!
//! For blueprints of the form `Dense -> [ReLU | Tanh] -> Dense` (biases optional: the built-in
//! `residual_mlp` and `low_rank`), a whole bank (every page of it, up to [`PAGES_PER_OP`]) is one
//! differentiable op. A cube takes one bank row and a group of its samples (groups are sized so
//! the bank fills about four cubes per SM):
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
//! Per bank and step that is one copy and one launch forward, and two launches (or three)
//! backward, whatever the number of pages and active seeds; the host output is copied once, not
//! once a page. Other blueprints (convolutions, longer chains, GELU) and chunks too wide for
//! shared memory take the tensor path.

mod device;

use super::{per_seed, BankPass, BankResult, RowRole};
use crate::bank::BankPage;
use crate::blueprint::{Activation, BlueprintInput, BlueprintOp, BlueprintSpec};
use crate::chunks::ChunkMap;
use crate::cube::{max_bindings, streaming_multiprocessors, with_cube_differentiable, Constant, CubeDifferentiable};
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
    /// The chain of `spec` on a layer of `chunks`; `None` for any other blueprint, and for
    /// blueprints reading the whole layer.
    fn of(spec: &BlueprintSpec, chunks: &ChunkMap) -> Option<Self> {
        if spec.input != BlueprintInput::Chunk {
            return None;
        }
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
        let (width, hidden) = (chunks.width(), spec.param_shapes(chunks)[0].dims[1]);
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

/// Pages one op takes at most: its inputs are the host output and four tensors a page, padded to
/// a fixed count (Burn's autodiff records ops with a fixed number of inputs). With the default
/// first page of 64 rows, eight pages hold 16,320 rows: a whole bank in one op. Devices that bind
/// fewer buffers per launch take fewer ([`pages_per_op`]).
const PAGES_PER_OP: usize = 8;
/// Buffers a launch binds besides four a page: the backward kernel's host output, output
/// gradient, alpha, row table, partial sums and the runtime's metadata.
const OTHER_BINDINGS: usize = 6;
/// Inputs of a [`BankOp`].
const INPUTS: usize = 1 + 4 * PAGES_PER_OP;

/// The pass of up to [`PAGES_PER_OP`] consecutive pages of a bank: the [`CubeDifferentiable`]
/// behind [`apply_bank`]. Inputs: the host output, then `w1, b1, w2, b2` of each page (absent
/// biases, and the slots past the last page, stand in as detached copies of the first `w1`);
/// constants: alpha `[seeds]` and the bank's row table `[rows, 2]`.
#[derive(Clone, Debug)]
struct BankOp {
    chain: Chain,
    /// The bank row of the op's first row.
    first_row: usize,
    pages: usize,
    base: usize,
    big: usize,
    sampled: bool,
}

/// How a launch covers the op's rows: `rows x groups` cubes, each taking `group_samples` samples
/// (whole tiles) of one row.
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

impl BankOp {
    /// The pages' parameters in the inputs: `w1, b1, w2, b2` of each page in row order.
    fn params<'a, R: CubeRuntime>(&self, inputs: &'a [CubeTensor<R>; INPUTS]) -> &'a [CubeTensor<R>] {
        &inputs[1..1 + 4 * self.pages]
    }

    /// Rows over the op's pages.
    fn rows<R: CubeRuntime>(&self, inputs: &[CubeTensor<R>; INPUTS]) -> usize {
        self.params(inputs).iter().step_by(4).map(|w1| w1.meta.shape().dims::<3>()[0]).sum()
    }

    /// The grid for host output `h` and `rows` rows; `None` when a row's tile does not fit shared
    /// memory.
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

/// Tensors as one sequence argument of a launch.
fn sequence<R: CubeRuntime, T: LaunchArg<RuntimeArg<R> = TensorArg<R>>>(
    tensors: &[CubeTensor<R>],
) -> SequenceArg<R, T> {
    tensors.iter().map(|t| t.clone().into_tensor_arg()).collect()
}

/// A tensor's own buffer to write into: itself when nothing else holds it, else a copy.
fn writable<R: CubeRuntime>(t: CubeTensor<R>) -> CubeTensor<R> {
    if t.can_mut() && t.is_nonoverlapping() {
        t
    } else {
        t.copy()
    }
}

impl CubeDifferentiable<INPUTS> for BankOp {
    fn accepts<R: CubeRuntime>(&self, inputs: &[CubeTensor<R>; INPUTS], constants: &[CubeTensor<R>]) -> bool {
        constants[1].dtype == DType::I32 && self.grid(&inputs[0], self.rows(inputs)).is_some()
    }

    fn forward<R: CubeRuntime>(
        &self,
        inputs: &[CubeTensor<R>; INPUTS],
        constants: &[CubeTensor<R>],
    ) -> [CubeTensor<R>; 2] {
        let h = &inputs[0];
        let [alpha, table] = [constants[0].clone(), constants[1].clone()];
        let grid = self.grid(h, self.rows(inputs)).expect("accepted");
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
            sequence(self.params(inputs)),
            alpha.into_tensor_arg(),
            table.into_tensor_arg(),
            sumsq.clone().into_tensor_arg(),
            self.dims(h, grid),
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
        inputs: &[CubeTensor<R>; INPUTS],
        constants: &[CubeTensor<R>],
        grad: CubeTensor<R>,
        wanted: [bool; INPUTS],
    ) -> [Option<CubeTensor<R>>; INPUTS] {
        let h = &inputs[0];
        let [alpha, table] = [constants[0].clone(), constants[1].clone()];
        let grid = self.grid(h, self.rows(inputs)).expect("accepted");
        let (rows, c) = (grid.rows, self.chain);
        let params = self.params(inputs);
        let (client, device, dtype) = (h.client.clone(), h.device.clone(), params[0].dtype);
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
            sequence(params),
            alpha.into_tensor_arg(),
            table.into_tensor_arg(),
            partial.clone().into_tensor_arg(),
            self.dims(h, grid),
            grid.tile * c.width,
            grid.tile * c.hidden,
            c.row_params(),
            c.act,
            dtype.into(),
        );
        // Every page's gradients, shaped as its parameters (biases too, dropped below if absent).
        let shapes = |n| [[n, c.width, c.hidden], [n, 1, c.hidden], [n, c.hidden, c.width], [n, 1, c.width]];
        let grads: Vec<_> = params
            .iter()
            .step_by(4)
            .flat_map(|w1| shapes(w1.meta.shape().dims::<3>()[0]))
            .map(|shape| new(Shape::new(shape), dtype))
            .collect();
        let cube_dim = CubeDim::new_1d(THREADS);
        sum_groups::launch::<R>(
            &client,
            calculate_cube_count_elemwise(&client, rows * c.row_params(), cube_dim),
            cube_dim,
            partial.into_tensor_arg(),
            sequence(&grads),
            grid.groups,
            rows,
            c.width,
            c.hidden,
            dtype.into(),
        );
        let present = |slot: usize| match (slot - 1) % 4 {
            1 => c.bias1,
            3 => c.bias2,
            _ => true,
        };
        let mut grads = grads.into_iter();
        std::array::from_fn(|slot| match slot {
            0 => wanted[0].then(|| grad.clone()),
            _ if slot <= 4 * self.pages => grads.next().filter(|_| wanted[slot] && present(slot)),
            _ => None,
        })
    }
}

/// The kernel form of [`apply_bank`](super::apply_bank): `None` when `B` is not a CubeCL backend
/// this build knows, the blueprint is not a two-map chain, or a row does not fit shared memory.
/// One op per [`pages_per_op`] pages: for all but the largest banks, one op for the bank.
pub(crate) fn apply_bank<B: Backend>(h: &BurnTensor<B, 3>, pass: &BankPass<'_, B>) -> Option<BankResult<B>> {
    let chain = Chain::of(pass.spec, pass.chunks)?;
    let float = |t: BurnTensor<B, 3>| t.into_primitive().tensor();
    let per_op = pages_per_op(max_bindings::<B>(&float(h.clone()))?)?;
    let mut out = h.clone();
    let mut sums = Vec::new();
    let mut first_row = 0;
    for pages in pass.bank.pages.chunks(per_op) {
        let rows: usize = pages.iter().map(|page| page.params[0].dims()[0]).sum();
        let params = op_params(pages, chain, &pass.index.roles[first_row..first_row + rows])?;
        let stand_in = params[0].clone().detach();
        let mut inputs = std::iter::once(out).chain(params).map(float);
        let inputs: [_; INPUTS] = std::array::from_fn(|_| inputs.next().unwrap_or_else(|| float(stand_in.clone())));
        let (base, big) = (pass.chunks.base(), pass.chunks.big_chunks());
        let op = BankOp { chain, first_row, pages: pages.len(), base, big, sampled: pass.sampled };
        let constants = vec![
            Constant::Float(pass.alpha.clone().into_primitive().tensor()),
            Constant::Int(pass.index.table.clone().into_primitive()),
        ];
        let [result, sumsq] = with_cube_differentiable::<B, _, INPUTS>(inputs, constants, &op)?;
        out = BurnTensor::from_primitive(TensorPrimitive::Float(result));
        if pass.sampled {
            // [groups, rows]: one sum per sample group (often a single group: no sum needed).
            let sumsq = BurnTensor::<B, 2>::from_primitive(TensorPrimitive::Float(sumsq));
            let sumsq = if sumsq.dims()[0] == 1 { sumsq } else { sumsq.sum_dim(0) };
            sums.push(sumsq.reshape([rows]));
        }
        first_row += rows;
    }
    let sumsq = pass.sampled.then(|| {
        let per_row = if sums.len() == 1 { sums.remove(0) } else { BurnTensor::cat(sums, 0) };
        per_seed(per_row, pass.index, pass.chunks.seeds())
    });
    Some((out, sumsq))
}

/// Pages one op takes on a device that binds `max_bindings` buffers a launch (CUDA 1,024; Vulkan
/// and Metal through wgpu about 30); `None` if not even one fits.
fn pages_per_op(max_bindings: usize) -> Option<usize> {
    let pages = max_bindings.checked_sub(OTHER_BINDINGS)? / 4;
    (pages >= 1).then_some(pages.min(PAGES_PER_OP))
}

/// `w1, b1, w2, b2` of each page, in row order (`roles`: the pages' rows). Absent biases stand in
/// as detached copies of the page's `w1`; a page whose rows are all frozen passes detached
/// parameters, so it gets no gradients at all.
fn op_params<B: Backend>(pages: &[BankPage<B>], chain: Chain, roles: &[RowRole]) -> Option<Vec<BurnTensor<B, 3>>> {
    let mut all = Vec::with_capacity(4 * pages.len());
    let mut first = 0;
    for page in pages {
        let rows = page.params[0].dims()[0];
        let trainable = roles[first..first + rows].iter().any(|r| r.trainable);
        let mut params = page.params.iter().map(|p| if trainable { p.val() } else { p.val().detach() });
        let w1 = params.next()?;
        let stand_in = || w1.clone().detach();
        let b1 = if chain.bias1 { params.next()? } else { stand_in() };
        let w2 = params.next()?;
        let b2 = if chain.bias2 { params.next()? } else { stand_in() };
        all.extend([w1, b1, w2, b2]);
        first += rows;
    }
    Some(all)
}
