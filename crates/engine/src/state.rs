//! Seed state: one structure of arrays per layer.
//!
//! [`StateColumns`] holds one device tensor per column, part of the module's record, so state
//! saves, loads and moves devices with the model. Every column is `f32`: all Burn backends
//! support it, it holds every integer the columns need exactly (below 2^24), and it costs
//! 8 x 4 = 32 bytes a seed on every backend (integer tensors are 8 bytes an element on some).
//!
//! Only transitions change the discrete columns, and transitions are host calls, so the host
//! keeps an exact copy of them in [`SeedTable`]: validating a transition never reads the device.
//! `alpha` changes on device every grafting step and is read back only in reports.

use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use morphogen_contracts::Stage;

/// Number of state columns.
pub const COLUMNS: usize = 8;

/// The device-side columns, one `[num_seeds]` tensor each (never trained).
#[derive(Module, Debug)]
pub struct StateColumns<B: Backend> {
    /// Lifecycle code 0-10.
    pub stage: Param<Tensor<B, 1>>,
    /// Blueprint id, -1 for none.
    pub blueprint: Param<Tensor<B, 1>>,
    /// Row in the blueprint's bank, -1 for none.
    pub slot: Param<Tensor<B, 1>>,
    /// Grafting strategy id, -1 for none.
    pub strategy: Param<Tensor<B, 1>>,
    /// Epochs spent in the current stage.
    pub epochs_in_stage: Param<Tensor<B, 1>>,
    /// Blend factor in `[0, 1]`.
    pub alpha: Param<Tensor<B, 1>>,
    /// Epochs of embargo left after a cull.
    pub embargo: Param<Tensor<B, 1>>,
    /// Culls and rollbacks so far.
    pub failures: Param<Tensor<B, 1>>,
}

/// The host copy of one seed's discrete columns.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SeedRow {
    /// Lifecycle stage.
    pub stage: Stage,
    /// Blueprint id while one is held.
    pub blueprint: Option<usize>,
    /// Bank row while a blueprint is held.
    pub slot: Option<usize>,
    /// Strategy id while a blueprint is held.
    pub strategy: Option<usize>,
    /// Epochs in the current stage.
    pub epochs_in_stage: u32,
    /// Embargo epochs left.
    pub embargo: u32,
    /// Failures so far.
    pub failures: u32,
}

impl Default for SeedRow {
    fn default() -> Self {
        Self {
            stage: Stage::Dormant,
            blueprint: None,
            slot: None,
            strategy: None,
            epochs_in_stage: 0,
            embargo: 0,
            failures: 0,
        }
    }
}

/// Host copy of the discrete columns of every seed of a layer.
pub type SeedTable = Vec<SeedRow>;

fn code(id: Option<usize>) -> f32 {
    id.map_or(-1.0, |v| v as f32)
}

fn id(code: f32) -> Option<usize> {
    (code >= 0.0).then_some(code as usize)
}

fn param<B: Backend>(values: Vec<f32>, device: &B::Device) -> Param<Tensor<B, 1>> {
    let n = values.len();
    Param::from_tensor(Tensor::from_data(TensorData::new(values, [n]), device)).set_require_grad(false)
}

fn column<F: Fn(&SeedRow) -> f32>(table: &SeedTable, f: F) -> Vec<f32> {
    table.iter().map(f).collect()
}

impl<B: Backend> StateColumns<B> {
    /// Columns for `seeds` dormant seeds.
    pub fn dormant(seeds: usize, device: &B::Device) -> Self {
        let mut columns = Self {
            stage: param(vec![0.0; seeds], device),
            blueprint: param(vec![0.0; seeds], device),
            slot: param(vec![0.0; seeds], device),
            strategy: param(vec![0.0; seeds], device),
            epochs_in_stage: param(vec![0.0; seeds], device),
            alpha: param(vec![0.0; seeds], device),
            embargo: param(vec![0.0; seeds], device),
            failures: param(vec![0.0; seeds], device),
        };
        columns.write(&vec![SeedRow::default(); seeds]);
        columns
    }

    /// Writes the discrete columns from the host table (alpha is left as it is).
    pub fn write(&mut self, table: &SeedTable) {
        let set = |p: &mut Param<Tensor<B, 1>>, values: Vec<f32>| {
            let device = p.device();
            let n = values.len();
            *p = p.clone().map(|_| Tensor::from_data(TensorData::new(values, [n]), &device));
        };
        set(&mut self.stage, column(table, |r| r.stage.code() as f32));
        set(&mut self.blueprint, column(table, |r| code(r.blueprint)));
        set(&mut self.slot, column(table, |r| code(r.slot)));
        set(&mut self.strategy, column(table, |r| code(r.strategy)));
        set(&mut self.epochs_in_stage, column(table, |r| r.epochs_in_stage as f32));
        set(&mut self.embargo, column(table, |r| r.embargo as f32));
        set(&mut self.failures, column(table, |r| r.failures as f32));
    }

    /// Reads every column back in one transfer and rebuilds the host table.
    pub fn read(&self) -> (SeedTable, Vec<f32>) {
        let all = Tensor::cat(
            vec![
                self.stage.val(),
                self.blueprint.val(),
                self.slot.val(),
                self.strategy.val(),
                self.epochs_in_stage.val(),
                self.embargo.val(),
                self.failures.val(),
                self.alpha.val(),
            ],
            0,
        );
        let values: Vec<f32> = all.into_data().convert::<f32>().to_vec().expect("f32 state");
        let n = values.len() / COLUMNS;
        let col = |c: usize| &values[c * n..(c + 1) * n];
        let table = (0..n)
            .map(|s| SeedRow {
                stage: Stage::from_code(col(0)[s] as u8).unwrap_or(Stage::Dormant),
                blueprint: id(col(1)[s]),
                slot: id(col(2)[s]),
                strategy: id(col(3)[s]),
                epochs_in_stage: col(4)[s] as u32,
                embargo: col(5)[s] as u32,
                failures: col(6)[s] as u32,
            })
            .collect();
        (table, col(7).to_vec())
    }

    /// Sets alpha for the listed seeds on device, leaving the others as they are.
    pub fn set_alpha(&mut self, seeds: &[usize], value: f32) {
        if seeds.is_empty() {
            return;
        }
        let device = self.alpha.device();
        let n = self.alpha.dims()[0];
        let mut mask = vec![false; n];
        seeds.iter().for_each(|&s| mask[s] = true);
        let mask = Tensor::<B, 1, burn::tensor::Bool>::from_data(TensorData::new(mask, [n]), &device);
        self.alpha = self.alpha.clone().map(|a| a.mask_fill(mask, value));
    }

    /// Bytes the columns take on device.
    pub fn bytes(&self) -> usize {
        COLUMNS * self.stage.dims()[0] * self.stage.val().dtype().size()
    }
}
