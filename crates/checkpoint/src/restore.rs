//! Restoring a verified [`Checkpoint`] into a model (and optimizer).
//!
//! The checkpoint is checked against the target model before anything is built: every parameter
//! the model has must be present with the same shape and dtype; every seeded layer must match
//! the layer the checkpoint recorded; seed-state columns must hold values a legal lifecycle
//! produces; bank pages must have the shapes the layer's blueprints need; and no tensor may be
//! left over. The restored model is built from a copy and swapped in only on success.

use crate::error::CheckpointError;
use crate::io::Checkpoint;
use crate::manifest::{LayerInfo, OPTIMIZER_ENCODING};
use crate::paths::{self, ParamEntry, Replacer, SeedLayerPath};
use crate::seedstate::{self, ColumnValues};
use crate::snapshot::{graft_name, layer_info, MODEL_PREFIX};
use crate::tensor::{safetensors_dtype, StoredTensor};
use burn::module::{AutodiffModule, Module, Param, ParamId};
use burn::optim::Optimizer;
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use morphogen_engine::storage::{BankPage, BlueprintBank, SeedParams, StateColumns};
use morphogen_engine::{GraftMemory, SeedCore, SeededModel};
use std::collections::{BTreeMap, BTreeSet};

/// Names of the state columns, in [`StateColumns`] field order.
pub const STATE_COLUMNS: [&str; 8] =
    ["stage", "blueprint", "slot", "strategy", "epochs_in_stage", "alpha", "embargo", "failures"];

/// Tracks which checkpoint tensors a restore used, so leftovers are reported.
struct Used(BTreeSet<String>);

impl Checkpoint {
    /// Restores parameters, seed states, blueprint banks and grafting memory into `model`.
    ///
    /// `model` may be freshly built (banks not allocated yet): banks are re-created from the
    /// checkpoint. On error `model` is left exactly as it was.
    ///
    /// Burn shares running statistics (`BatchNorm`'s running mean and variance) between a
    /// module and its clones: a successful restore sets them in every clone of `model` too.
    pub fn restore<B, M>(&self, model: &mut M) -> Result<(), CheckpointError>
    where
        B: Backend,
        M: Module<B> + SeededModel<B>,
    {
        *model = self.restored(model.clone())?;
        Ok(())
    }

    /// [`restore`](Self::restore) plus the optimizer's state; on error neither changes.
    pub fn restore_with_optimizer<B, M, O>(&self, model: &mut M, optimizer: &mut O) -> Result<(), CheckpointError>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B> + SeededModel<B>,
        O: Optimizer<M, B>,
    {
        // The optimizer first: restoring the model writes running statistics (batch norm) into
        // state the model's copies share, so it is the last step that can fail.
        let device = model.devices().into_iter().next().unwrap_or_default();
        let optimizer_restored = self.restored_optimizer::<B, M, O>(optimizer.clone(), &device)?;
        *model = self.restored(model.clone())?;
        *optimizer = optimizer_restored;
        Ok(())
    }

    /// `model` with the checkpoint's state, or why not.
    fn restored<B: Backend, M: Module<B> + SeededModel<B>>(&self, model: M) -> Result<M, CheckpointError> {
        let params = paths::collect(&model, false);
        let layers = paths::seed_layers(&model, &params)?;
        let cores = paths::seed_cores(&model);
        self.check_layers(&layers, &cores)?;
        let mut used = Used(BTreeSet::new());
        if let Some(optimizer) = &self.manifest.optimizer {
            used.0.insert(optimizer.tensor.clone());
        }
        let replacements = self.replacements(&params, &layers, &mut used)?;
        let rebuilt = layers
            .iter()
            .zip(cores)
            .map(|(layer, core)| self.rebuild_core(layer, core, &params, &mut used))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(name) = self.tensors.keys().find(|name| !used.0.contains(*name)) {
            return Err(CheckpointError::UnexpectedTensor { name: name.clone() });
        }
        let mut model = model.map(&mut Replacer::new(replacements));
        let mut rebuilt = rebuilt.into_iter();
        model.visit_seeded_mut(&mut |_, layer| {
            *layer.seed_core_mut() = rebuilt.next().expect("one rebuilt core per seeded layer");
        });
        Ok(model)
    }

    /// Compares the target's seeded layers with those the checkpoint recorded (schema v2).
    fn check_layers<B: Backend>(&self, layers: &[SeedLayerPath], cores: &[SeedCore<B>]) -> Result<(), CheckpointError> {
        let recorded = &self.manifest.seeded_layers;
        if self.manifest.schema_version < 2 {
            return Ok(());
        }
        for (layer, core) in layers.iter().zip(cores) {
            let target = layer_info(layer, core);
            let saved = recorded.iter().find(|info| info.path == layer.prefix).ok_or_else(|| {
                CheckpointError::LayerMismatch {
                    layer: layer.name.clone(),
                    problem: format!("the checkpoint has no seeded layer at '{}'", layer.prefix),
                }
            })?;
            compare_layer(saved, &target)?;
        }
        if let Some(extra) = recorded.iter().find(|info| !layers.iter().any(|l| l.prefix == info.path)) {
            return Err(CheckpointError::LayerMismatch {
                layer: extra.name.clone(),
                problem: format!("the checkpoint has a seeded layer at '{}' the model lacks", extra.path),
            });
        }
        Ok(())
    }

    /// Data and ids for every parameter outside the seed cores, checked against the model.
    fn replacements(
        &self,
        params: &[ParamEntry],
        layers: &[SeedLayerPath],
        used: &mut Used,
    ) -> Result<BTreeMap<String, (TensorData, ParamId)>, CheckpointError> {
        let mut replacements = BTreeMap::new();
        for param in params.iter().filter(|p| !layers.iter().any(|l| l.owns(&p.path))) {
            let name = paths::join(&[MODEL_PREFIX, &param.path]);
            let layer = layers.iter().find(|l| param.path.starts_with(&format!("{}.", l.layer_path())));
            let stored = self.expect_tensor(&name, param, layer.map(|l| l.name.clone()))?;
            let data = stored.to_data().map_err(|problem| self.corrupt(&name, problem))?;
            replacements.insert(param.path.clone(), (data, self.param_id(&name).unwrap_or(param.id)));
            used.0.insert(name);
        }
        Ok(replacements)
    }

    /// A tensor that must exist with the shape and dtype of the model's parameter.
    fn expect_tensor(
        &self,
        name: &str,
        param: &ParamEntry,
        layer: Option<String>,
    ) -> Result<&StoredTensor, CheckpointError> {
        let stored = self.tensors.get(name).ok_or_else(|| CheckpointError::MissingTensor { name: name.into() })?;
        if stored.shape != param.shape {
            return Err(CheckpointError::ShapeMismatch {
                name: name.into(),
                layer,
                expected: format!("{:?}", param.shape),
                found: stored.shape.clone(),
            });
        }
        let expected = safetensors_dtype(param.dtype);
        if expected != Some(stored.dtype) {
            return Err(CheckpointError::DtypeMismatch {
                name: name.into(),
                expected: format!("{:?}", param.dtype),
                found: format!("{:?}", stored.dtype),
            });
        }
        Ok(stored)
    }

    fn corrupt(&self, name: &str, problem: String) -> CheckpointError {
        CheckpointError::ManifestMismatch { path: self.path.clone(), name: name.into(), problem }
    }

    fn param_id(&self, name: &str) -> Option<ParamId> {
        self.manifest.tensor(name).and_then(|t| t.param_id).map(ParamId::from)
    }

    /// The seed core of `layer` rebuilt from the checkpoint: state, banks and gate memory.
    fn rebuild_core<B: Backend>(
        &self,
        layer: &SeedLayerPath,
        core: SeedCore<B>,
        params: &[ParamEntry],
        used: &mut Used,
    ) -> Result<SeedCore<B>, CheckpointError> {
        let columns = self.state_columns(layer, params, used)?;
        let banks = self.bank_tensors(layer, &core, used)?;
        let capacities = seedstate::check_banks(layer, &core, &banks, &columns)?;
        seedstate::check_table(layer, &core, &columns, &capacities)?;
        let device = core.params().state.stage.device();
        let state = self.state_params(layer, &columns, &device);
        let banks = self.bank_params(&core, &banks, &device)?;
        let mut core = core.load_record(SeedParams { state, banks }.into_record());
        let memory = self.graft_memory(layer, &core, params, used)?;
        core.restore_graft_memory(memory)?;
        Ok(core)
    }

    fn state_columns(
        &self,
        layer: &SeedLayerPath,
        params: &[ParamEntry],
        used: &mut Used,
    ) -> Result<ColumnValues, CheckpointError> {
        let mut values = Vec::with_capacity(STATE_COLUMNS.len());
        for column in STATE_COLUMNS {
            let path = format!("{}.state.{column}", layer.prefix);
            let param = params.iter().find(|p| p.path == path).ok_or_else(|| CheckpointError::LayerMismatch {
                layer: layer.name.clone(),
                problem: format!("the model has no parameter '{path}'"),
            })?;
            let name = paths::join(&[MODEL_PREFIX, &path]);
            let stored = self.expect_tensor(&name, param, Some(layer.name.clone()))?;
            values.push(stored.to_f32().map_err(|problem| self.corrupt(&name, problem))?);
            used.0.insert(name);
        }
        Ok(ColumnValues::new(values))
    }

    fn state_params<B: Backend>(
        &self,
        layer: &SeedLayerPath,
        columns: &ColumnValues,
        device: &B::Device,
    ) -> StateColumns<B> {
        let param = |index: usize| {
            let name = paths::join(&[MODEL_PREFIX, &layer.prefix, "state", STATE_COLUMNS[index]]);
            let values = columns.column(index).to_vec();
            let n = values.len();
            let tensor = Tensor::from_data(TensorData::new(values, [n]), device);
            Param::initialized(self.param_id(&name).unwrap_or_default(), tensor).set_require_grad(false)
        };
        StateColumns {
            stage: param(0),
            blueprint: param(1),
            slot: param(2),
            strategy: param(3),
            epochs_in_stage: param(4),
            alpha: param(5),
            embargo: param(6),
            failures: param(7),
        }
    }

    /// Every bank tensor of the layer, by (blueprint id, page, param), with unknown names refused.
    fn bank_tensors<B: Backend>(
        &self,
        layer: &SeedLayerPath,
        core: &SeedCore<B>,
        used: &mut Used,
    ) -> Result<seedstate::BankTensors, CheckpointError> {
        let prefix = paths::join(&[MODEL_PREFIX, &layer.prefix, "banks"]) + ".";
        let mut banks = seedstate::BankTensors::new();
        for (name, stored) in self.tensors.range(prefix.clone()..).take_while(|(name, _)| name.starts_with(&prefix)) {
            let key = seedstate::parse_bank_key(&name[prefix.len()..])
                .filter(|(blueprint, _, _)| *blueprint < core.blueprints().specs().len())
                .ok_or_else(|| CheckpointError::UnexpectedTensor { name: name.clone() })?;
            banks.insert(key, (name.clone(), stored.clone()));
            used.0.insert(name.clone());
        }
        Ok(banks)
    }

    fn bank_params<B: Backend>(
        &self,
        core: &SeedCore<B>,
        banks: &seedstate::BankTensors,
        device: &B::Device,
    ) -> Result<Vec<Option<BlueprintBank<B>>>, CheckpointError> {
        let mut result: Vec<Option<BlueprintBank<B>>> = core.blueprints().specs().iter().map(|_| None).collect();
        for ((blueprint, page, _), (name, stored)) in banks {
            let data = stored.to_data().map_err(|problem| self.corrupt(name, problem))?;
            let tensor = Tensor::<B, 3>::from_data(data, device);
            let param = Param::initialized(self.param_id(name).unwrap_or_default(), tensor);
            let bank = result[*blueprint].get_or_insert_with(BlueprintBank::empty);
            if bank.pages.len() <= *page {
                bank.pages.push(BankPage { params: Vec::new() });
            }
            bank.pages[*page].params.push(param);
        }
        Ok(result)
    }

    fn graft_memory<B: Backend>(
        &self,
        layer: &SeedLayerPath,
        core: &SeedCore<B>,
        params: &[ParamEntry],
        used: &mut Used,
    ) -> Result<GraftMemory<B>, CheckpointError> {
        let device = core.params().state.stage.device();
        let prefix = format!("{}.", graft_name(&layer.prefix, ""));
        let mut memory = GraftMemory { loss_ema: Vec::new(), drift_reference: None };
        for (name, stored) in self.tensors.range(prefix.clone()..).take_while(|(name, _)| name.starts_with(&prefix)) {
            let rest = &name[prefix.len()..];
            let unexpected = || CheckpointError::UnexpectedTensor { name: name.clone() };
            let values = stored.to_f32().map_err(|_| unexpected())?;
            if let Some(id) = rest.strip_prefix("loss_ema.") {
                let id = id.parse::<usize>().map_err(|_| unexpected())?;
                if stored.shape != [1] {
                    return Err(self.graft_shape(name, layer, "[1]", stored));
                }
                memory.loss_ema.push((id, Tensor::from_data(TensorData::new(values, [1]), &device)));
            } else if rest == "drift_reference" {
                let dims = self.drift_dims(name, layer, core, params, stored)?;
                memory.drift_reference = Some(Tensor::from_data(TensorData::new(values, dims), &device));
            } else {
                return Err(unexpected());
            }
            used.0.insert(name.clone());
        }
        Ok(memory)
    }

    /// The drift reference must be `[features, host weight elements / features]`.
    fn drift_dims<B: Backend>(
        &self,
        name: &str,
        layer: &SeedLayerPath,
        core: &SeedCore<B>,
        params: &[ParamEntry],
        stored: &StoredTensor,
    ) -> Result<[usize; 2], CheckpointError> {
        let host = format!("{}.weight", layer.host_prefix());
        let weight = params.iter().find(|p| p.path == host).ok_or_else(|| CheckpointError::LayerMismatch {
            layer: layer.name.clone(),
            problem: format!("the checkpoint holds drift-gate memory but the model has no host weight '{host}'"),
        })?;
        let features = core.chunks().features();
        let expected = [features, weight.shape.iter().product::<usize>() / features];
        if stored.shape != expected {
            return Err(self.graft_shape(name, layer, &format!("{expected:?}"), stored));
        }
        Ok(expected)
    }

    fn graft_shape(&self, name: &str, layer: &SeedLayerPath, expected: &str, stored: &StoredTensor) -> CheckpointError {
        CheckpointError::ShapeMismatch {
            name: name.into(),
            layer: Some(layer.name.clone()),
            expected: expected.into(),
            found: stored.shape.clone(),
        }
    }

    /// `optimizer` with the checkpoint's optimizer state.
    fn restored_optimizer<B, M, O>(&self, optimizer: O, device: &B::Device) -> Result<O, CheckpointError>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
        O: Optimizer<M, B>,
    {
        let problem = |problem: String| CheckpointError::Optimizer { problem };
        let info = self
            .manifest
            .optimizer
            .as_ref()
            .ok_or_else(|| problem("the checkpoint holds no optimizer state".into()))?;
        if info.encoding != OPTIMIZER_ENCODING {
            return Err(problem(format!("unknown encoding '{}'", info.encoding)));
        }
        let stored = self
            .tensors
            .get(&info.tensor)
            .ok_or_else(|| CheckpointError::MissingTensor { name: info.tensor.clone() })?;
        if stored.dtype != safetensors::Dtype::U8 || stored.shape.len() != 1 {
            return Err(problem(format!("'{}' is not a u8 vector", info.tensor)));
        }
        let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
        let record = recorder
            .load::<O::Record>(stored.bytes.clone(), device)
            .map_err(|e| problem(format!("could not decode the record: {e}")))?;
        Ok(optimizer.load_record(record))
    }
}

fn compare_layer(saved: &LayerInfo, target: &LayerInfo) -> Result<(), CheckpointError> {
    let differ = |what: &str, in_checkpoint: String, in_model: String| CheckpointError::LayerMismatch {
        layer: target.name.clone(),
        problem: format!("{what} differ: the checkpoint has {in_checkpoint}, the model has {in_model}"),
    };
    if saved.host != target.host {
        return Err(differ("host kinds", saved.host.clone(), target.host.clone()));
    }
    if (saved.features, saved.seeds) != (target.features, target.seeds) {
        let show = |i: &LayerInfo| format!("{} features in {} seeds", i.features, i.seeds);
        return Err(differ("layouts", show(saved), show(target)));
    }
    if saved.blueprints != target.blueprints {
        let names = |i: &LayerInfo| format!("{:?}", i.blueprints);
        return Err(differ("blueprint registries", names(saved), names(target)));
    }
    if saved.strategies != target.strategies {
        let names = |i: &LayerInfo| format!("{:?}", i.strategies);
        return Err(differ("grafting strategies", names(saved), names(target)));
    }
    Ok(())
}
