//! Stacked parameter banks: every seed of a layer that grows the same blueprint keeps its
//! parameters as one row of the same tensors, so all of them run as one batched op.
//!
//! A bank is allocated on the first germination of its blueprint and grows by *pages*: page `k`
//! holds `first_page * 2^k` rows and is its own set of parameters. Growing adds a page and never
//! replaces one, so an optimizer's state for existing rows (keyed by parameter id) survives.
//! Freed rows are reused; their parameters are re-initialised on reuse (an optimizer's moments
//! for a reused row are those of its previous occupant, decayed while it sat unused).

use crate::blueprint::{BlueprintSpec, ParamShape};
use crate::chunks::ChunkMap;
use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Distribution, Tensor, TensorData};

/// One page of rows: a `[rows, a, b]` parameter per blueprint parameter.
#[derive(Module, Debug)]
pub struct BankPage<B: Backend> {
    /// One stacked parameter per entry of [`BlueprintSpec::param_shapes`].
    pub params: Vec<Param<Tensor<B, 3>>>,
}

/// All pages of one blueprint kind in one layer.
#[derive(Module, Debug)]
pub struct BlueprintBank<B: Backend> {
    /// Pages in allocation order; row ids run through them in order.
    pub pages: Vec<BankPage<B>>,
}

fn fresh<B: Backend>(shape: &ParamShape, rows: usize, device: &B::Device) -> Tensor<B, 3> {
    let [a, b] = shape.dims;
    match shape.fan_in {
        Some(fan_in) => {
            let bound = 1.0 / (fan_in as f64).sqrt();
            Tensor::random([rows, a, b], Distribution::Uniform(-bound, bound), device)
        }
        None => Tensor::zeros([rows, a, b], device),
    }
}

impl<B: Backend> BankPage<B> {
    fn new(shapes: &[ParamShape], rows: usize, device: &B::Device) -> Self {
        let params = shapes.iter().map(|s| Param::from_tensor(fresh(s, rows, device))).collect();
        Self { params }
    }

    fn rows(&self) -> usize {
        self.params[0].dims()[0]
    }
}

impl<B: Backend> BlueprintBank<B> {
    /// An empty bank (no rows yet).
    pub fn empty() -> Self {
        Self { pages: Vec::new() }
    }

    /// Rows allocated over all pages.
    pub fn capacity(&self) -> usize {
        self.pages.iter().map(BankPage::rows).sum()
    }

    /// Adds pages until at least `rows` rows exist; never more than `max_rows` in all.
    pub fn grow_to(
        &mut self,
        spec: &BlueprintSpec,
        chunks: &ChunkMap,
        rows: usize,
        first_page: usize,
        max_rows: usize,
        device: &B::Device,
    ) {
        let shapes = spec.param_shapes(chunks);
        while self.capacity() < rows {
            let size = (first_page << self.pages.len()).min(max_rows - self.capacity());
            self.pages.push(BankPage::new(&shapes, size.max(1), device));
        }
    }

    /// Re-initialises the listed rows (fresh random first layers, zero last layer), one masked
    /// op per parameter per page, keeping parameter ids.
    pub fn reinit_rows(&mut self, spec: &BlueprintSpec, chunks: &ChunkMap, rows: &[usize]) {
        let shapes = spec.param_shapes(chunks);
        let mut first = 0;
        for page in &mut self.pages {
            let n = page.rows();
            let mut mask = vec![false; n];
            rows.iter().filter(|&&r| r >= first && r < first + n).for_each(|&r| mask[r - first] = true);
            first += n;
            if !mask.contains(&true) {
                continue;
            }
            for (param, shape) in page.params.iter_mut().zip(&shapes) {
                let device = param.device();
                let [_, a, b] = param.dims();
                let mask = Tensor::<B, 1, Bool>::from_data(TensorData::new(mask.clone(), [n]), &device)
                    .reshape([n, 1, 1])
                    .expand([n, a, b]);
                let replacement = fresh(shape, n, &device);
                *param = param.clone().map(|t| {
                    let trainable = t.is_require_grad();
                    let t = t.mask_where(mask, replacement).detach();
                    if trainable {
                        t.require_grad()
                    } else {
                        t
                    }
                });
            }
        }
    }

    /// Every parameter stacked over all pages: `[capacity, a, b]` each.
    pub fn stacked(&self) -> Vec<Tensor<B, 3>> {
        let count = self.pages.first().map_or(0, |p| p.params.len());
        (0..count).map(|i| Tensor::cat(self.pages.iter().map(|p| p.params[i].val()).collect(), 0)).collect()
    }

    /// Bytes of parameters held.
    pub fn bytes(&self) -> usize {
        self.pages.iter().flat_map(|p| &p.params).map(|p| p.shape().num_elements() * p.val().dtype().size()).sum()
    }
}
