//! [`Snapshot`]: everything a checkpoint holds, taken from a model (and optimizer) in memory,
//! ready to be written.
//!
//! Tensor names in the tensor file:
//! - `model.<path>`: every parameter of the model by its Burn module path, host weights in Burn's
//!   layout (`model.fc1.host.weight` is `[d_input, d_output]`), seed-state columns
//!   (`model.fc1.core.state.stage`, ...) and the allocated pages of blueprint banks
//!   (`model.fc1.core.banks.<blueprint id>.pages.<page>.params.<param>`, `[rows, a, b]`);
//! - `graft.<seed core path>.loss_ema.<strategy id>` (`[1]`) and
//!   `graft.<seed core path>.drift_reference` (`[features, fan_in]`): grafting gate memory;
//! - `optimizer.record`: the optimizer's record, a `u8` vector (see
//!   [`OPTIMIZER_ENCODING`](crate::manifest::OPTIMIZER_ENCODING)).

use crate::error::CheckpointError;
use crate::manifest::{LayerInfo, OptimizerInfo, Progress, RngState, TensorInfo, OPTIMIZER_ENCODING};
use crate::paths::{self, SeedLayerPath};
use crate::tensor::{StoredTensor, TensorMap};
use burn::module::{AutodiffModule, Module};
use burn::optim::Optimizer;
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::{AutodiffBackend, Backend};
use morphogen_engine::{SeedCore, SeededModel};
use std::collections::BTreeMap;

/// Prefix of model parameters in the tensor file.
pub const MODEL_PREFIX: &str = "model";
/// Prefix of grafting gate memory in the tensor file.
pub const GRAFT_PREFIX: &str = "graft";
/// Name of the optimizer record tensor.
pub const OPTIMIZER_TENSOR: &str = "optimizer.record";

/// The contents of one checkpoint, held in memory until written with
/// [`write_checkpoint`](crate::write_checkpoint) or [`CheckpointDir::save`](crate::CheckpointDir::save).
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub(crate) tensors: TensorMap,
    pub(crate) param_ids: BTreeMap<String, u64>,
    pub(crate) layers: Vec<LayerInfo>,
    pub(crate) progress: Progress,
    pub(crate) rng: RngState,
    pub(crate) metric: Option<f64>,
    pub(crate) optimizer: Option<OptimizerInfo>,
    pub(crate) extra: BTreeMap<String, serde_json::Value>,
}

impl Snapshot {
    /// Takes every parameter, every seed's state, the allocated bank pages and the grafting
    /// gates' memory of `model` (one read-back per tensor).
    pub fn of<B: Backend, M: Module<B> + SeededModel<B>>(model: &M) -> Result<Self, CheckpointError> {
        let params = paths::collect(model, true);
        let layers = paths::seed_layers(model, &params)?;
        let mut snapshot = Self {
            tensors: TensorMap::new(),
            param_ids: BTreeMap::new(),
            layers: Vec::new(),
            progress: Progress::default(),
            rng: RngState::default(),
            metric: None,
            optimizer: None,
            extra: BTreeMap::new(),
        };
        for param in params {
            let name = paths::join(&[MODEL_PREFIX, &param.path]);
            let data = param.data.expect("collected with data");
            snapshot.tensors.insert(name.clone(), StoredTensor::from_data(&name, data)?);
            snapshot.param_ids.insert(name, param.id.val());
        }
        for (layer, core) in layers.iter().zip(paths::seed_cores(model)) {
            snapshot.add_graft_memory(layer, &core)?;
            snapshot.layers.push(layer_info(layer, &core));
        }
        Ok(snapshot)
    }

    fn add_graft_memory<B: Backend>(
        &mut self,
        layer: &SeedLayerPath,
        core: &SeedCore<B>,
    ) -> Result<(), CheckpointError> {
        let memory = core.graft_memory();
        for (id, ema) in memory.loss_ema {
            let name = graft_name(&layer.prefix, &format!("loss_ema.{id}"));
            self.tensors.insert(name.clone(), StoredTensor::from_data(&name, ema.into_data())?);
        }
        if let Some(rows) = memory.drift_reference {
            let name = graft_name(&layer.prefix, "drift_reference");
            self.tensors.insert(name.clone(), StoredTensor::from_data(&name, rows.into_data())?);
        }
        Ok(())
    }

    /// Adds the optimizer's state (moments and step counts of every parameter it tracks,
    /// blueprint bank pages included), keyed by the parameter ids the snapshot records.
    pub fn with_optimizer<B, M, O>(mut self, optimizer: &O) -> Result<Self, CheckpointError>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
        O: Optimizer<M, B>,
    {
        let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
        let bytes = recorder
            .record(optimizer.to_record(), ())
            .map_err(|e| CheckpointError::Optimizer { problem: format!("could not encode the record: {e}") })?;
        self.tensors.insert(OPTIMIZER_TENSOR.into(), StoredTensor::blob(bytes));
        self.optimizer = Some(OptimizerInfo { tensor: OPTIMIZER_TENSOR.into(), encoding: OPTIMIZER_ENCODING.into() });
        Ok(self)
    }

    /// Sets the epoch and step.
    pub fn with_progress(mut self, epoch: u64, step: u64) -> Self {
        self.progress = Progress { epoch, step };
        self
    }

    /// Sets the RNG seed and, if available, its state.
    pub fn with_rng(mut self, seed: u64, state: Option<serde_json::Value>) -> Self {
        self.rng = RngState { seed, state };
        self
    }

    /// Sets the metric retention ranks checkpoints by (non-finite values are stored as none).
    pub fn with_metric(mut self, metric: f64) -> Self {
        self.metric = metric.is_finite().then_some(metric);
        self
    }

    /// Adds a caller-supplied JSON value under `key` (e.g. the controller's state).
    pub fn with_extra(mut self, key: &str, value: serde_json::Value) -> Self {
        self.extra.insert(key.to_string(), value);
        self
    }

    /// Epoch and step.
    pub fn progress(&self) -> Progress {
        self.progress
    }

    /// The metric, if set.
    pub fn metric(&self) -> Option<f64> {
        self.metric
    }

    /// Names of every tensor the checkpoint will hold.
    pub fn tensor_names(&self) -> Vec<&str> {
        self.tensors.keys().map(String::as_str).collect()
    }

    /// Bytes of tensor data (the tensor file adds a small header).
    pub fn tensor_bytes(&self) -> usize {
        self.tensors.values().map(|t| t.bytes.len()).sum()
    }

    pub(crate) fn tensor_infos(&self) -> Vec<TensorInfo> {
        self.tensors
            .iter()
            .map(|(name, t)| TensorInfo {
                name: name.clone(),
                dtype: t.dtype,
                shape: t.shape.clone(),
                param_id: self.param_ids.get(name).copied(),
            })
            .collect()
    }
}

/// Name of a grafting-memory tensor of the seed core at `prefix`.
pub fn graft_name(prefix: &str, what: &str) -> String {
    paths::join(&[GRAFT_PREFIX, prefix, what])
}

/// The record of a seeded layer a restore checks the target against.
pub fn layer_info<B: Backend>(layer: &SeedLayerPath, core: &SeedCore<B>) -> LayerInfo {
    LayerInfo {
        name: layer.name.clone(),
        path: layer.prefix.clone(),
        host: core.host_kind().to_string(),
        features: core.chunks().features(),
        seeds: core.num_seeds(),
        blueprints: core.blueprints().specs().to_vec(),
        strategies: core.strategies().specs().to_vec(),
    }
}
