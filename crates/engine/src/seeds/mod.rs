//! [`SeedCore`]: everything a seeded layer adds to its host layer, shared by every host kind.
//!
//! It owns the seed-state columns, the blueprint banks, the telemetry window, the kernel guard
//! and the grafting state, applies all seeds to the host output in one vectorized pass, and
//! carries out the lifecycle. Host layers hand it their output as a `[a, features, p]` view
//! (Linear: `p = 1`; Conv2d: `a` = batch, `p` = pixels).
//!
//! One type, its impls split by concern: `forward` (the pass and its kernels), `lifecycle`
//! (transitions), `grafting` (alpha and gate memory), `caches` (what transitions derive),
//! `inspect` (what controllers and reports read), `checks` (validation and invariants) and
//! `module` (Burn's `Module` plumbing).

mod caches;
mod checks;
mod forward;
mod grafting;
mod inspect;
mod lifecycle;
mod module;

use crate::bank::BlueprintBank;
use crate::blend::BankIndex;
use crate::blueprint::BlueprintRegistry;
use crate::chunks::ChunkMap;
use crate::config::LifecycleConfig;
use crate::grafting::{GateMemory, StrategyRegistry};
use crate::guard::KernelGuard;
use crate::state::{SeedRow, SeedTable, StateColumns};
use crate::telemetry::TelemetryWindow;
use burn::config::Config;
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use morphogen_contracts::{MorphogenError, Stage};
use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

/// The kind of layer a seed core sits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum HostKind {
    /// Features are the last dimension.
    Linear,
    /// Features are output channels of a `[batch, channels, height, width]` output.
    Conv2d,
}

impl fmt::Display for HostKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostKind::Linear => "Linear",
            HostKind::Conv2d => "Conv2d",
        })
    }
}

/// Everything about a layer's seeds besides their count: shared by every seeded layer config.
#[derive(Config, Debug)]
pub struct SeedOptions {
    /// Lifecycle rules.
    #[config(default = "LifecycleConfig::new()")]
    pub lifecycle: LifecycleConfig,
    /// Blueprints the layer may grow.
    #[config(default = "BlueprintRegistry::default()")]
    pub blueprints: BlueprintRegistry,
    /// Grafting strategies the layer may use.
    #[config(default = "StrategyRegistry::default()")]
    pub strategies: StrategyRegistry,
}

/// The persistent parameters of a seed core: what its record holds.
#[derive(Module, Debug)]
pub struct SeedParams<B: Backend> {
    /// Seed-state columns.
    pub state: StateColumns<B>,
    /// One bank per registered blueprint, allocated on its first germination.
    pub banks: Vec<Option<BlueprintBank<B>>>,
}

/// Everything a seeded layer adds to its host: see the module docs.
#[derive(Clone, Debug)]
pub struct SeedCore<B: Backend> {
    setup: Setup,
    params: SeedParams<B>,
    table: SeedTable,
    /// Derived from `table`: bank indices and per-strategy ramp rates of grafting seeds.
    indices: Vec<BankIndex<B>>,
    ramps: Vec<(usize, Tensor<B, 1>)>,
    /// Seeds in EVALUATING whose contribution is forced off for a measurement.
    ablated: BTreeSet<usize>,
    gate_memory: GateMemory<B>,
    drift_reference: Option<Tensor<B, 2>>,
    /// The run-time state shared by clones, so it survives optimizer steps that rebuild the module.
    shared: Shared<B>,
}

/// The pieces of a core that are not tensors, carried across backends and devices.
#[derive(Clone, Debug)]
struct Setup {
    name: String,
    host: HostKind,
    chunks: ChunkMap,
    lifecycle: LifecycleConfig,
    blueprints: BlueprintRegistry,
    strategies: StrategyRegistry,
}

/// What forward passes update behind `&self`: the telemetry window and the kernel guard.
#[derive(Clone, Debug)]
struct Shared<B: Backend> {
    telemetry: Arc<Mutex<TelemetryWindow<B>>>,
    guard: Arc<Mutex<KernelGuard>>,
}

impl<B: Backend> Shared<B> {
    fn new(window: TelemetryWindow<B>, guard: KernelGuard) -> Self {
        Self { telemetry: Arc::new(Mutex::new(window)), guard: Arc::new(Mutex::new(guard)) }
    }

    fn telemetry(&self) -> MutexGuard<'_, TelemetryWindow<B>> {
        self.telemetry.lock().expect("telemetry lock")
    }

    fn guard(&self) -> MutexGuard<'_, KernelGuard> {
        self.guard.lock().expect("kernel guard lock")
    }
}

impl<B: Backend> SeedCore<B> {
    /// A core with every seed dormant.
    pub(crate) fn new(
        name: &str,
        host: HostKind,
        [features, seeds]: [usize; 2],
        options: &SeedOptions,
        device: &B::Device,
    ) -> Result<Self, MorphogenError> {
        let chunks = ChunkMap::new(name, features, seeds)?;
        let SeedOptions { lifecycle, blueprints, strategies } = options.clone();
        lifecycle.validate(name)?;
        blueprints.specs().iter().try_for_each(|s| s.validate())?;
        strategies.specs().iter().try_for_each(|s| s.validate())?;
        let params = SeedParams {
            state: StateColumns::dormant(seeds, device),
            banks: blueprints.specs().iter().map(|_| None).collect(),
        };
        let setup = Setup { name: name.to_string(), host, chunks, lifecycle, blueprints, strategies };
        Ok(Self::assemble(setup, params, vec![SeedRow::default(); seeds], None))
    }

    /// The same seeds' setup (name, kind, seed count, options) over a host of `features`
    /// outputs, every seed dormant: what a widened host's layer starts with. Refused while a
    /// seed holds a blueprint, which a wider chunk would not fit.
    pub(crate) fn over_features(&self, features: usize) -> Result<Self, MorphogenError> {
        if let Some(row) = self.table.iter().position(|row| row.stage != Stage::Dormant) {
            return Err(MorphogenError::InvalidConfig {
                component: self.setup.name.clone(),
                problem: format!(
                    "seed {row} is {:?}: a layer widens only while every seed is dormant",
                    self.table[row].stage
                ),
                hint: "widen before growth begins, or turn growth off for a run that widens its host".into(),
            });
        }
        let Setup { name, host, lifecycle, blueprints, strategies, .. } = self.setup.clone();
        let options = SeedOptions { lifecycle, blueprints, strategies };
        Self::new(&name, host, [features, self.num_seeds()], &options, &self.device())
    }

    /// Builds a core from its persistent parts, deriving every cache; the run-time state starts
    /// fresh unless `carried` gives it.
    fn assemble(
        setup: Setup,
        params: SeedParams<B>,
        table: SeedTable,
        carried: Option<(TelemetryWindow<B>, KernelGuard)>,
    ) -> Self {
        let device = params.state.stage.device();
        let (window, guard) =
            carried.unwrap_or_else(|| (TelemetryWindow::new(&setup.chunks, &device), KernelGuard::default()));
        let mut core = Self {
            setup,
            params,
            table,
            indices: Vec::new(),
            ramps: Vec::new(),
            ablated: BTreeSet::new(),
            gate_memory: GateMemory::default(),
            drift_reference: None,
            shared: Shared::new(window, guard),
        };
        core.rebuild_caches();
        core
    }

    /// The same core over other parameters (another backend or device), run-time state fresh.
    fn with_params<B2: Backend>(&self, params: SeedParams<B2>) -> SeedCore<B2> {
        SeedCore::assemble(self.setup.clone(), params, self.table.clone(), None)
    }

    pub(crate) fn device(&self) -> B::Device {
        self.params.state.stage.device()
    }

    /// The layer's name, used in errors and reports.
    pub fn name(&self) -> &str {
        &self.setup.name
    }

    /// Renames the layer: model-level code gives each layer its path in the model
    /// ([`SeededModel::name_layers_by_path`](crate::SeededModel::name_layers_by_path)).
    pub fn set_name(&mut self, name: &str) {
        self.setup.name = name.to_string();
    }

    /// The chunk layout.
    pub fn chunks(&self) -> &ChunkMap {
        &self.setup.chunks
    }

    /// Number of seeds.
    pub fn num_seeds(&self) -> usize {
        self.setup.chunks.seeds()
    }

    /// The lifecycle rules.
    pub fn lifecycle(&self) -> &LifecycleConfig {
        &self.setup.lifecycle
    }

    /// The blueprints this layer can grow.
    pub fn blueprints(&self) -> &BlueprintRegistry {
        &self.setup.blueprints
    }

    /// The grafting strategies this layer knows.
    pub fn strategies(&self) -> &StrategyRegistry {
        &self.setup.strategies
    }

    /// The persistent parameters (state columns and banks).
    pub fn params(&self) -> &SeedParams<B> {
        &self.params
    }

    /// The host copy of the discrete state columns.
    pub fn table(&self) -> &SeedTable {
        &self.table
    }
}
