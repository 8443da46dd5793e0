//! Module paths: every parameter of a model by its dotted Burn path (`fc1.host.weight`,
//! `fc1.core.banks.0.pages.1.params.2`), and where each seeded layer sits.

use crate::error::CheckpointError;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, DType, Int, Tensor, TensorData};
use morphogen_engine::{SeedCore, SeededModel};
use std::collections::BTreeMap;

/// One parameter of a model.
#[derive(Clone, Debug)]
pub struct ParamEntry {
    /// Dotted path of field names and indices.
    pub path: String,
    /// The parameter's id (what optimizer state is keyed by).
    pub id: ParamId,
    /// Type of the module holding it, as Burn names it (`Struct:Linear`, `Vec`, ...).
    pub container: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: DType,
    /// The values, when collected with data.
    pub data: Option<TensorData>,
}

/// Path prefix of a seeded layer's seed core, e.g. `fc1.core`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedLayerPath {
    /// The layer's name as the model lists it ([`SeededModel::seeded_layer_names`]).
    pub name: String,
    /// Path of its seed core; its parameters are `<prefix>.state.*` and `<prefix>.banks.*`.
    pub prefix: String,
}

impl SeedLayerPath {
    /// Path of the host layer beside the seed core (`fc1` for `fc1.core`).
    pub fn host_prefix(&self) -> String {
        match self.prefix.rsplit_once('.') {
            Some((parent, _)) => format!("{parent}.host"),
            None => "host".to_string(),
        }
    }

    /// Path of the seeded layer itself (`fc1` for `fc1.core`).
    pub fn layer_path(&self) -> String {
        self.prefix.rsplit_once('.').map(|(parent, _)| parent.to_string()).unwrap_or_default()
    }

    /// Whether a parameter path belongs to this seed core.
    pub fn owns(&self, path: &str) -> bool {
        path.strip_prefix(&self.prefix).is_some_and(|rest| rest.starts_with('.'))
    }
}

/// Joins dotted path parts, skipping empty ones.
pub fn join(parts: &[&str]) -> String {
    parts.iter().filter(|p| !p.is_empty()).copied().collect::<Vec<_>>().join(".")
}

#[derive(Default)]
struct Stack {
    names: Vec<String>,
    containers: Vec<String>,
}

impl Stack {
    fn enter(&mut self, name: &str, container: &str) {
        self.names.push(name.to_string());
        self.containers.push(container.to_string());
    }

    fn exit(&mut self) {
        self.names.pop();
        self.containers.pop();
    }

    fn path(&self) -> String {
        self.names.join(".")
    }

    fn container(&self) -> String {
        self.containers.last().cloned().unwrap_or_default()
    }
}

struct Collector {
    stack: Stack,
    with_data: bool,
    entries: Vec<ParamEntry>,
}

impl Collector {
    fn push<B: Backend, const D: usize, K>(&mut self, id: ParamId, tensor: Tensor<B, D, K>)
    where
        K: burn::tensor::BasicOps<B>,
    {
        let shape = tensor.dims().to_vec();
        let dtype = tensor.dtype();
        let data = self.with_data.then(|| tensor.into_data());
        let (path, container) = (self.stack.path(), self.stack.container());
        self.entries.push(ParamEntry { path, id, container, shape, dtype, data });
    }
}

impl<B: Backend> ModuleVisitor<B> for Collector {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.exit();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.push(param.id, param.val());
    }

    fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<B, D, Int>>) {
        self.push(param.id, param.val());
    }

    fn visit_bool<const D: usize>(&mut self, param: &Param<Tensor<B, D, Bool>>) {
        self.push(param.id, param.val());
    }
}

/// Every parameter of `module` in visiting order, with its values if `with_data`.
///
/// Running statistics are brought up to date first ([`sync_running_state`]), so the values are
/// those inference would use and a later mapping of them is not overwritten by a pending update.
pub fn collect<B: Backend, M: Module<B>>(module: &M, with_data: bool) -> Vec<ParamEntry> {
    sync_running_state(module);
    let mut collector = Collector { stack: Stack::default(), with_data, entries: Vec::new() };
    module.visit(&mut collector);
    collector.entries
}

/// Applies the pending updates of Burn's running statistics (`RunningState`: `BatchNorm`'s
/// running mean and variance) of `module`.
///
/// A training step leaves the statistics it computed pending; they are applied on the next
/// training step, by `valid()`, or when the record is taken, but a module visit reads the value
/// from before the step. Taking the record of a copy applies them: a copy shares its running
/// states with the original, and no tensor is copied.
pub fn sync_running_state<B: Backend, M: Module<B>>(module: &M) {
    drop(module.clone().into_record());
}

/// Where each seeded layer of `model` sits, found through its seed-state parameter's id.
pub fn seed_layers<B: Backend, M: SeededModel<B>>(
    model: &M,
    params: &[ParamEntry],
) -> Result<Vec<SeedLayerPath>, CheckpointError> {
    let by_id: BTreeMap<ParamId, &str> = params.iter().map(|p| (p.id, p.path.as_str())).collect();
    let mut layers = Vec::new();
    let mut missing = None;
    model.visit_seeded(&mut |name, layer| {
        let id = layer.seed_core().params().state.stage.id;
        match by_id.get(&id).and_then(|path| path.strip_suffix("state.stage")) {
            Some(prefix) => {
                layers.push(SeedLayerPath { name: name.to_string(), prefix: prefix.trim_end_matches('.').to_string() })
            }
            None => missing = Some(name.to_string()),
        }
    });
    match missing {
        Some(layer) => Err(CheckpointError::LayerMismatch {
            layer,
            problem: "its seed state is not among the model's parameters (is the layer a field of the model?)".into(),
        }),
        None => Ok(layers),
    }
}

/// The seed cores of `model`, in [`SeededModel`] order, cloned.
pub fn seed_cores<B: Backend, M: SeededModel<B>>(model: &M) -> Vec<SeedCore<B>> {
    let mut cores = Vec::new();
    model.visit_seeded(&mut |_, layer| cores.push(layer.seed_core().clone()));
    cores
}

/// Replaces parameters by path with given data and ids, keeping each parameter's device and
/// `require_grad`. Paths not in `replacements` are left as they are. Callers check shapes and
/// dtypes first: a replacement of another rank would panic in Burn.
pub struct Replacer {
    stack: Stack,
    replacements: BTreeMap<String, (TensorData, ParamId)>,
}

impl Replacer {
    /// A mapper applying `replacements` (path -> data and id).
    pub fn new(replacements: BTreeMap<String, (TensorData, ParamId)>) -> Self {
        Self { stack: Stack::default(), replacements }
    }

    fn take(&mut self) -> Option<(TensorData, ParamId)> {
        self.replacements.remove(&self.stack.path())
    }
}

fn replace_float<B: Backend, const D: usize>(
    param: Param<Tensor<B, D>>,
    data: TensorData,
    id: ParamId,
) -> Param<Tensor<B, D>> {
    let (_, old, mapper) = param.consume();
    let tensor = Tensor::<B, D>::from_data(data, &old.device());
    let tensor = if old.is_require_grad() { tensor.require_grad() } else { tensor };
    Param::from_mapped_value(id, tensor, mapper)
}

fn replace_plain<B: Backend, const D: usize, K>(
    param: Param<Tensor<B, D, K>>,
    data: TensorData,
    id: ParamId,
) -> Param<Tensor<B, D, K>>
where
    K: burn::tensor::BasicOps<B>,
    Tensor<B, D, K>: burn::module::Parameter,
{
    let (_, old, mapper) = param.consume();
    Param::from_mapped_value(id, Tensor::<B, D, K>::from_data(data, &old.device()), mapper)
}

impl<B: Backend> ModuleMapper<B> for Replacer {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.exit();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        match self.take() {
            Some((data, id)) => replace_float(param, data, id),
            None => param,
        }
    }

    fn map_int<const D: usize>(&mut self, param: Param<Tensor<B, D, Int>>) -> Param<Tensor<B, D, Int>> {
        match self.take() {
            Some((data, id)) => replace_plain(param, data, id),
            None => param,
        }
    }

    fn map_bool<const D: usize>(&mut self, param: Param<Tensor<B, D, Bool>>) -> Param<Tensor<B, D, Bool>> {
        match self.take() {
            Some((data, id)) => replace_plain(param, data, id),
            None => param,
        }
    }
}
