//! What controllers, reports and tools read about a layer: seed states, health, costs.

use super::{HostKind, SeedCore};
use crate::bank::BlueprintBank;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use morphogen_contracts::MorphogenError;
use morphogen_contracts::{LayerHealthReport, SeedInfo};
use std::collections::BTreeMap;

impl<B: Backend> SeedCore<B> {
    /// The host layer kind.
    pub fn host_kind(&self) -> HostKind {
        self.setup.host
    }

    /// One seed's state (reads its alpha from the device).
    pub fn seed(&self, seed: usize) -> Result<SeedInfo, MorphogenError> {
        self.check_seeds(&[seed])?;
        let alpha = self.params.state.alpha.val().narrow(0, seed, 1).into_data();
        Ok(self.info(seed, alpha.convert::<f32>().to_vec::<f32>().expect("f32")[0]))
    }

    /// Every seed's state, reading alpha back in one transfer.
    pub fn seed_infos(&self) -> Vec<SeedInfo> {
        let alpha: Vec<f32> = self.params.state.alpha.val().into_data().convert::<f32>().to_vec().expect("f32 alpha");
        (0..self.num_seeds()).map(|seed| self.info(seed, alpha[seed])).collect()
    }

    /// One seed's state from the host table and its alpha.
    fn info(&self, seed: usize, alpha: f32) -> SeedInfo {
        let row = self.table[seed];
        SeedInfo {
            seed,
            stage: row.stage,
            blueprint: row.blueprint.map(|b| self.setup.blueprints.get(b).name.clone()),
            strategy: row.strategy.map(|s| self.setup.strategies.get(s).name.clone()),
            alpha,
            epochs_in_stage: row.epochs_in_stage,
            embargo_epochs_left: row.embargo,
            failures: row.failures,
            chunk: self.setup.chunks.range(seed),
        }
    }

    /// Per-seed health for the window since the last report, read in one transfer; resets the
    /// window.
    pub fn health_report(&self) -> LayerHealthReport {
        let mut window = self.shared.telemetry();
        let sums = window.read(self.params.state.alpha.val());
        window.reset(&self.setup.chunks, &self.device());
        sums.report(&self.setup.name, &self.setup.chunks, |s| self.table[s].stage)
    }

    /// The telemetry window's sums since the last report as one flat tensor whose entries add
    /// up across data-parallel replicas (each replica saw its shard of the same batches).
    pub fn telemetry_sums(&self) -> Tensor<B, 1> {
        self.shared.telemetry().flat_sums()
    }

    /// Replaces the telemetry window's sums with `sums`, laid out as [`Self::telemetry_sums`]
    /// gives them: typically their total over every replica, so that the next health report
    /// covers all the data.
    pub fn set_telemetry_sums(&mut self, sums: Tensor<B, 1>) -> Result<(), MorphogenError> {
        let got = sums.dims().to_vec();
        self.shared.telemetry().set_flat_sums(sums, &self.setup.chunks).map_err(|len| MorphogenError::ShapeMismatch {
            layer: self.setup.name.clone(),
            expected: format!("[{len}] telemetry sums, as telemetry_sums gives them for this layer"),
            got,
        })
    }

    /// Parameters one seed's blueprint adds, for each blueprint this layer can grow.
    pub fn blueprint_params(&self) -> BTreeMap<String, usize> {
        let chunks = &self.setup.chunks;
        self.setup
            .blueprints
            .specs()
            .iter()
            .filter(|spec| !spec.needs_spatial() || self.setup.host == HostKind::Conv2d)
            .map(|spec| (spec.name.clone(), spec.param_count(chunks)))
            .collect()
    }

    /// Parameters added by the blueprints seeds hold now.
    pub fn params_added(&self) -> usize {
        let chunks = &self.setup.chunks;
        self.table
            .iter()
            .filter_map(|row| row.blueprint)
            .map(|b| self.setup.blueprints.get(b).param_count(chunks))
            .sum()
    }

    /// Bytes of seed-state columns on device (32 per seed with f32 columns).
    pub fn state_bytes(&self) -> usize {
        self.params.state.bytes()
    }

    /// Bytes of blueprint bank parameters on device.
    pub fn bank_bytes(&self) -> usize {
        self.params.banks.iter().flatten().map(BlueprintBank::bytes).sum()
    }

    /// Bytes of the telemetry window on device.
    pub fn telemetry_bytes(&self) -> usize {
        self.shared.telemetry().bytes()
    }
}
