//! [`SeedCore`]: everything a seeded layer adds to its host layer, shared by every host kind.
//!
//! It owns the seed-state columns, the blueprint banks, the telemetry window and the grafting
//! state, applies all seeds to the host output in one vectorized pass, and carries out the
//! lifecycle. Host layers hand it their output as a `[a, features, p]` view (Linear: `p = 1`;
//! Conv2d: `a` = batch, `p` = pixels).

use crate::bank::BlueprintBank;
use crate::blend::{apply_bank, kernel_apply_bank, BankIndex, BankPass, BankResult, RowRole};
use crate::blueprint::BlueprintRegistry;
use crate::chunks::ChunkMap;
use crate::config::LifecycleConfig;
use crate::grafting::{gate_factor, Gate, GateMemory, GraftSignals, StrategyRegistry};
use crate::state::{SeedRow, SeedTable, StateColumns};
use crate::telemetry::{check_tolerance, chunk_totals, first_difference, TelemetryWindow};
use crate::MorphogenError;
use burn::config::Config;
use burn::module::{
    AutodiffModule, Content, Devices, HasAutodiffModule, Module, ModuleDisplay, ModuleDisplayDefault, ModuleMapper,
    ModuleVisitor,
};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::IndexingUpdateOp;
use burn::tensor::{Tensor, TensorData};
use morphogen_contracts::{LayerHealthReport, SeedInfo, Stage};
use std::collections::BTreeSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The kind of layer a seed core sits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// How much looser an active-seed kernel check is than `kernel_check_tolerance`: the tensor
/// path's blueprint maps may run through TF32 on CUDA (Burn's matmul), about 1e-3 relative.
const BLEND_CHECK_SLACK: f32 = 10.0;

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
    /// Shared by clones, so the window survives optimizer steps that rebuild the module.
    telemetry: Arc<Mutex<TelemetryWindow<B>>>,
    /// Bank passes the active-seed kernel ran (shared by clones).
    blend_kernel_passes: Arc<AtomicU64>,
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

    /// Builds a core from its persistent parts, deriving every cache.
    fn assemble(setup: Setup, params: SeedParams<B>, table: SeedTable, window: Option<TelemetryWindow<B>>) -> Self {
        let device = params.state.stage.device();
        let window = window.unwrap_or_else(|| TelemetryWindow::new(&setup.chunks, &device));
        let mut core = Self {
            setup,
            params,
            table,
            indices: Vec::new(),
            ramps: Vec::new(),
            ablated: BTreeSet::new(),
            gate_memory: GateMemory::default(),
            drift_reference: None,
            telemetry: Arc::new(Mutex::new(window)),
            blend_kernel_passes: Arc::default(),
        };
        core.rebuild_caches();
        core
    }

    fn device(&self) -> B::Device {
        self.params.state.stage.device()
    }

    /// The layer's name, used in errors and reports.
    pub fn name(&self) -> &str {
        &self.setup.name
    }

    /// The chunk layout.
    pub fn chunks(&self) -> &ChunkMap {
        &self.setup.chunks
    }

    /// Number of seeds.
    pub fn num_seeds(&self) -> usize {
        self.setup.chunks.seeds()
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

    /// Seeds whose EVALUATING contribution is currently forced off.
    pub fn ablated_seeds(&self) -> Vec<usize> {
        self.ablated.iter().copied().collect()
    }

    /// The host copy of the discrete state columns.
    pub fn table(&self) -> &SeedTable {
        &self.table
    }

    // ----- forward -------------------------------------------------------------------------

    /// Applies every seed to the host output `h`: `[a, features, p]`. `spatial` is
    /// `[batch, height, width]` for Conv2d hosts. With no blueprint held, returns `h` untouched.
    pub fn apply(&self, h: Tensor<B, 3>, spatial: Option<[usize; 3]>) -> Tensor<B, 3> {
        let _span = tracing::trace_span!("seeded_layer", layer = self.setup.name.as_str()).entered();
        let lifecycle = &self.setup.lifecycle;
        let sampled = lifecycle.telemetry && {
            let mut window = self.telemetry.lock().expect("telemetry lock");
            let due = window.sample_pass(lifecycle.telemetry_every);
            if due {
                window.observe(h.clone(), &self.setup.chunks, lifecycle);
            }
            due
        };
        let alpha = self.params.state.alpha.val();
        self.indices.iter().fold(h, |h, index| {
            let pass = BankPass {
                index,
                bank: self.params.banks[index.blueprint].as_ref().expect("indexed banks exist"),
                spec: self.setup.blueprints.get(index.blueprint),
                chunks: &self.setup.chunks,
                alpha: alpha.clone(),
                spatial,
                sampled,
            };
            let trusted = self.telemetry.lock().expect("telemetry lock").trusts_kernels(lifecycle);
            let fast = if trusted { kernel_apply_bank(&h, &pass) } else { None };
            let (h, sumsq) = match fast {
                Some(fast) => self.checked_blend(fast, h, &pass),
                None => apply_bank(h, &pass),
            };
            if let Some(sumsq) = sumsq {
                self.telemetry.lock().expect("telemetry lock").observe_blueprints(sumsq);
            }
            h
        })
    }

    /// The active-seed kernel's result, or on a check pass (its first bank pass and every
    /// `kernel_check_every` after) where its output disagrees with the tensor path's, the tensor
    /// path's result, and the layer falls back like a failed telemetry check. Only the forward
    /// output is compared; the kernel tests cover gradients.
    fn checked_blend(&self, fast: BankResult<B>, h: Tensor<B, 3>, pass: &BankPass<'_, B>) -> BankResult<B> {
        let passes = self.blend_kernel_passes.fetch_add(1, Ordering::Relaxed) + 1;
        let lifecycle = &self.setup.lifecycle;
        if !lifecycle.kernel_check_due(passes) {
            return fast;
        }
        let tolerance = check_tolerance(lifecycle.kernel_check_tolerance * BLEND_CHECK_SLACK, h.dtype());
        let slow = apply_bank(h, pass);
        match first_difference(fast.0.clone(), slow.0.clone(), tolerance) {
            None => fast,
            Some(reason) => {
                let reason = format!("active-seed kernel check failed on bank pass {passes}: output {reason}");
                self.telemetry.lock().expect("telemetry lock").fall_back(reason, true);
                slow
            }
        }
    }

    // ----- lifecycle -----------------------------------------------------------------------

    fn check_seeds(&self, seeds: &[usize]) -> Result<(), MorphogenError> {
        let mut seen = BTreeSet::new();
        for &seed in seeds {
            if seed >= self.num_seeds() {
                return Err(MorphogenError::UnknownSeed {
                    layer: self.setup.name.clone(),
                    seed,
                    num_seeds: self.num_seeds(),
                });
            }
            if !seen.insert(seed) {
                return Err(MorphogenError::DuplicateSeed { layer: self.setup.name.clone(), seed });
            }
        }
        Ok(())
    }

    fn illegal(&self, seed: usize, from: Stage, to: Stage, allowed: Vec<Stage>) -> MorphogenError {
        MorphogenError::IllegalTransition { layer: self.setup.name.clone(), seed, from, to, allowed }
    }

    /// Moves `seed` from DORMANT to GERMINATED with a blueprint and grafting strategy, allocating
    /// its bank row. On error nothing changes.
    pub fn request_germination(&mut self, seed: usize, blueprint: &str, strategy: &str) -> Result<(), MorphogenError> {
        self.request_germinations(&[seed], blueprint, strategy)
    }

    /// [`request_germination`](Self::request_germination) for many seeds in one call (one bank
    /// allocation, one state write). All or nothing: on error no seed changes.
    pub fn request_germinations(
        &mut self,
        seeds: &[usize],
        blueprint: &str,
        strategy: &str,
    ) -> Result<(), MorphogenError> {
        self.check_seeds(seeds)?;
        let blueprint_id = self.setup.blueprints.id(blueprint).ok_or_else(|| MorphogenError::UnknownBlueprint {
            layer: self.setup.name.clone(),
            name: blueprint.to_string(),
            known: self.setup.blueprints.names(),
        })?;
        if self.setup.blueprints.get(blueprint_id).needs_spatial() && self.setup.host != HostKind::Conv2d {
            let usable = self.setup.blueprints.specs().iter().filter(|s| !s.needs_spatial()).map(|s| s.name.clone());
            return Err(MorphogenError::UnsupportedBlueprint {
                layer: self.setup.name.clone(),
                blueprint: blueprint.to_string(),
                needs: "a Conv2d host (spatial channels)".into(),
                host: self.setup.host.to_string(),
                usable: usable.collect(),
            });
        }
        let strategy_id = self.setup.strategies.id(strategy).ok_or_else(|| MorphogenError::UnknownStrategy {
            layer: self.setup.name.clone(),
            name: strategy.to_string(),
            known: self.setup.strategies.names(),
        })?;
        for &seed in seeds {
            let row = self.table[seed];
            if row.stage != Stage::Dormant {
                return Err(self.illegal(seed, row.stage, Stage::Germinated, row.stage.allowed_next().to_vec()));
            }
            if row.embargo > 0 {
                return Err(MorphogenError::Embargoed {
                    layer: self.setup.name.clone(),
                    seed,
                    epochs_left: row.embargo,
                });
            }
            if row.failures >= self.setup.lifecycle.quarantine_after {
                return Err(MorphogenError::Quarantined {
                    layer: self.setup.name.clone(),
                    seed,
                    failures: row.failures,
                });
            }
        }
        let rows = self.allocate_rows(blueprint_id, seeds.len());
        for (&seed, &slot) in seeds.iter().zip(&rows) {
            let row = &mut self.table[seed];
            *row = SeedRow {
                stage: Stage::Germinated,
                blueprint: Some(blueprint_id),
                slot: Some(slot),
                strategy: Some(strategy_id),
                epochs_in_stage: 0,
                ..*row
            };
        }
        self.params.state.write(&self.table);
        self.params.state.set_alpha(seeds, 0.0);
        self.rebuild_caches();
        Ok(())
    }

    /// Finds `count` free rows in the blueprint's bank (lowest first), growing it as needed, and
    /// re-initialises them.
    fn allocate_rows(&mut self, blueprint: usize, count: usize) -> Vec<usize> {
        let taken: BTreeSet<usize> =
            self.table.iter().filter(|r| r.blueprint == Some(blueprint)).filter_map(|r| r.slot).collect();
        let rows: Vec<usize> = (0..).filter(|r| !taken.contains(r)).take(count).collect();
        let needed = rows.last().map_or(0, |r| r + 1);
        let (spec, width, device) =
            (self.setup.blueprints.get(blueprint).clone(), self.setup.chunks.width(), self.device());
        let first_page = self.setup.lifecycle.bank_page_rows.min(self.num_seeds());
        let bank = self.params.banks[blueprint].get_or_insert_with(BlueprintBank::empty);
        bank.grow_to(&spec, width, needed, first_page, self.setup.chunks.seeds(), &device);
        bank.reinit_rows(&spec, width, &rows);
        rows
    }

    /// Moves `seed` to `to` along a legal edge; see [`advance_many`](Self::advance_many).
    pub fn advance(&mut self, seed: usize, to: Stage) -> Result<(), MorphogenError> {
        self.advance_many(&[seed], to)
    }

    /// Cancels a GERMINATED or TRAINING seed, discarding its blueprint.
    pub fn cancel_germination(&mut self, seed: usize) -> Result<(), MorphogenError> {
        self.advance_many(&[seed], Stage::Cancelled)
    }

    /// Moves the listed seeds to `to` along legal edges. All or nothing.
    ///
    /// Entering GRAFTING sets alpha to 0; STABILIZATION, EVALUATING, FINE_TUNING and FOSSILIZED
    /// set it to 1. CULLED, CANCELLED and ROLLED_BACK free the blueprint's bank row; CULLED and
    /// ROLLED_BACK count a failure, and CULLED starts the embargo.
    pub fn advance_many(&mut self, seeds: &[usize], to: Stage) -> Result<(), MorphogenError> {
        self.check_seeds(seeds)?;
        if to == Stage::Germinated {
            return Err(MorphogenError::InvalidConfig {
                component: format!("layer '{}'", self.setup.name),
                problem: "germination needs a blueprint and a grafting strategy".into(),
                hint: "call request_germination(seed, blueprint, strategy) instead of advance".into(),
            });
        }
        for &seed in seeds {
            let row = self.table[seed];
            let from = row.stage;
            let fossil_locked = from == Stage::Fossilized && !self.setup.lifecycle.reuse_fossilized;
            if !from.can_transition_to(to) || fossil_locked {
                let allowed = if fossil_locked { vec![] } else { from.allowed_next().to_vec() };
                return Err(self.illegal(seed, from, to, allowed));
            }
            if from == Stage::Culled && row.embargo > 0 {
                return Err(MorphogenError::Embargoed {
                    layer: self.setup.name.clone(),
                    seed,
                    epochs_left: row.embargo,
                });
            }
        }
        for &seed in seeds {
            let row = &mut self.table[seed];
            if !to.holds_blueprint() {
                (row.blueprint, row.slot, row.strategy) = (None, None, None);
            }
            if matches!(to, Stage::Culled | Stage::RolledBack) {
                row.failures += 1;
            }
            if to == Stage::Culled {
                row.embargo = self.setup.lifecycle.embargo_epochs;
            }
            row.stage = to;
            row.epochs_in_stage = 0;
        }
        self.params.state.write(&self.table);
        let full = matches!(to, Stage::Stabilization | Stage::Evaluating | Stage::FineTuning | Stage::Fossilized);
        self.params.state.set_alpha(seeds, if full { 1.0 } else { 0.0 });
        self.rebuild_caches();
        Ok(())
    }

    /// Sets alpha of GRAFTING seeds by hand (a controller overriding the strategy's ramp).
    pub fn set_alpha(&mut self, seeds: &[usize], alpha: f32) -> Result<(), MorphogenError> {
        self.check_seeds(seeds)?;
        let not_grafting = seeds.iter().find(|&&s| self.table[s].stage != Stage::Grafting);
        if !(0.0..=1.0).contains(&alpha) || not_grafting.is_some() {
            return Err(MorphogenError::InvalidConfig {
                component: format!("layer '{}'", self.setup.name),
                problem: format!("alpha {alpha} for seeds {seeds:?}"),
                hint: "alpha must be in [0, 1] and only GRAFTING seeds have a free alpha".into(),
            });
        }
        self.params.state.set_alpha(seeds, alpha);
        Ok(())
    }

    /// Counts an epoch: every seed's `epochs_in_stage` grows by one, embargoes shrink by one.
    pub fn end_epoch(&mut self) {
        for row in &mut self.table {
            row.epochs_in_stage += 1;
            row.embargo = row.embargo.saturating_sub(1);
        }
        self.params.state.write(&self.table);
    }

    /// Forces the contribution of the listed EVALUATING seeds to zero (alpha forced to 0) until
    /// the next call; an empty list clears it.
    pub fn set_ablation(&mut self, seeds: &[usize]) -> Result<(), MorphogenError> {
        self.check_seeds(seeds)?;
        if let Some(&seed) = seeds.iter().find(|&&s| self.table[s].stage != Stage::Evaluating) {
            let from = self.table[seed].stage;
            return Err(MorphogenError::InvalidConfig {
                component: format!("layer '{}'", self.setup.name),
                problem: format!("seed {seed} is {from}, not EVALUATING"),
                hint: "ablate only seeds in EVALUATING".into(),
            });
        }
        self.ablated = seeds.iter().copied().collect();
        self.rebuild_caches();
        Ok(())
    }

    /// One seed's state (reads its alpha from the device).
    pub fn seed(&self, seed: usize) -> Result<SeedInfo, MorphogenError> {
        self.check_seeds(&[seed])?;
        let alpha = self.params.state.alpha.val().narrow(0, seed, 1).into_data();
        Ok(self.info(seed, alpha.convert::<f32>().to_vec::<f32>().expect("f32")[0]))
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
        let mut window = self.telemetry.lock().expect("telemetry lock");
        let sums = window.read(self.params.state.alpha.val());
        window.reset(&self.setup.chunks, &self.device());
        sums.report(&self.setup.name, &self.setup.chunks, |s| self.table[s].stage)
    }

    // ----- grafting ------------------------------------------------------------------------

    /// Whether a grafting seed uses a drift gate (the host layer then supplies its weights).
    pub fn needs_drift(&self) -> bool {
        self.ramps.iter().any(|(id, _)| matches!(self.setup.strategies.get(*id).gate, Gate::DriftBelow { .. }))
    }

    /// Moves every GRAFTING seed's alpha by its strategy, on device. `host_rows` gives the host
    /// weights as `[features, fan_in]` and is called only when a drift gate needs it.
    pub fn graft_step_with(
        &mut self,
        signals: &GraftSignals<B>,
        host_rows: impl FnOnce() -> Tensor<B, 2>,
    ) -> Result<(), MorphogenError> {
        if self.ramps.is_empty() {
            return Ok(());
        }
        let drift = self.needs_drift().then(|| self.measure_drift(host_rows()));
        let device = self.device();
        let mut increment = Tensor::<B, 1>::zeros([self.num_seeds()], &device);
        for (id, ramp) in self.ramps.clone() {
            let spec = self.setup.strategies.get(id).clone();
            let name = self.setup.name.clone();
            let missing = |signal: &str, hint: &str| MorphogenError::MissingSignal {
                layer: name.clone(),
                strategy: spec.name.clone(),
                signal: signal.into(),
                hint: hint.into(),
            };
            let factor = gate_factor(id, &spec, signals, drift.as_ref(), &mut self.gate_memory, &device, missing)?;
            increment = increment + ramp * factor;
        }
        self.params.state.alpha = self.params.state.alpha.clone().map(|a| (a + increment).clamp(0.0, 1.0));
        Ok(())
    }

    /// Per-seed relative drift of the host weight rows since the last call (0 on the first).
    fn measure_drift(&mut self, rows: Tensor<B, 2>) -> Tensor<B, 1> {
        let rows = rows.detach();
        let [f, _] = rows.dims();
        let per_seed = |x: Tensor<B, 2>| {
            chunk_totals(x.square().sum_dim(1).reshape([1, f, 1]), &self.setup.chunks).reshape([self.num_seeds()])
        };
        let drift = match &self.drift_reference {
            Some(previous) => (per_seed(rows.clone() - previous.clone()) / (per_seed(previous.clone()) + 1e-12)).sqrt(),
            None => Tensor::zeros([self.num_seeds()], &rows.device()),
        };
        self.drift_reference = Some(rows);
        drift
    }

    // ----- caches and accounting -------------------------------------------------------------

    /// Rebuilds bank indices and ramp rates from the host table (after any transition).
    fn rebuild_caches(&mut self) {
        let device = self.device();
        self.indices = self
            .params
            .banks
            .iter()
            .enumerate()
            .filter_map(|(id, bank)| Some((id, bank.as_ref()?.capacity())))
            .filter(|&(id, _)| self.table.iter().any(|r| r.blueprint == Some(id)))
            .map(|(id, capacity)| {
                let mut occupant = vec![None; capacity];
                self.table
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.blueprint == Some(id))
                    .for_each(|(seed, r)| occupant[r.slot.expect("held blueprint has a slot")] = Some(seed));
                self.bank_index(id, &occupant, &device)
            })
            .collect();
        let mut ramps: Vec<(usize, Vec<f32>)> = Vec::new();
        for (seed, row) in self.table.iter().enumerate().filter(|(_, r)| r.stage == Stage::Grafting) {
            let id = row.strategy.expect("grafting seed has a strategy");
            let at = match ramps.iter().position(|(k, _)| *k == id) {
                Some(i) => i,
                None => {
                    ramps.push((id, vec![0.0; self.num_seeds()]));
                    ramps.len() - 1
                }
            };
            ramps[at].1[seed] = 1.0 / self.setup.strategies.get(id).ramp_steps as f32;
        }
        let n = self.num_seeds();
        self.ramps = ramps
            .into_iter()
            .map(|(id, rates)| (id, Tensor::from_data(TensorData::new(rates, [n]), &device)))
            .collect();
    }

    /// Builds one bank's index and stage factors from the seed occupying each row.
    fn bank_index(&self, blueprint: usize, occupant: &[Option<usize>], device: &B::Device) -> BankIndex<B> {
        let role = |o: &Option<usize>| {
            let Some(seed) = *o else { return RowRole::default() };
            let stage = self.table[seed].stage;
            let fixed = match stage {
                Stage::Evaluating if self.ablated.contains(&seed) => 0.0,
                Stage::Stabilization | Stage::Evaluating | Stage::FineTuning | Stage::Fossilized => 1.0,
                _ => 0.0,
            };
            RowRole {
                seed: Some(seed),
                fixed,
                grafting: stage == Stage::Grafting,
                training: stage == Stage::Training,
                trainable: stage.trains_blueprint(),
            }
        };
        BankIndex::new(blueprint, occupant.iter().map(role).collect(), &self.setup.chunks, device)
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
        self.telemetry.lock().expect("telemetry lock").bytes()
    }

    /// Forward passes since the last health report whose telemetry ran on a CubeCL kernel
    /// (always 0 on backends without kernels, or with `LifecycleConfig::kernels` off).
    pub fn telemetry_kernel_passes(&self) -> u64 {
        self.telemetry.lock().expect("telemetry lock").kernel_passes()
    }

    /// Bank passes (one per blueprint bank per forward) that ran on the active-seed kernel, over
    /// the layer's life: 0 where the backend has no kernels or no bank holds a blueprint the
    /// kernel runs.
    pub fn blend_kernel_passes(&self) -> u64 {
        self.blend_kernel_passes.load(Ordering::Relaxed)
    }

    /// Why this layer left the kernel path (a failed check, or [`fall_back_from_kernels`](Self::fall_back_from_kernels)), if it did.
    pub fn kernel_fallback(&self) -> Option<String> {
        self.telemetry.lock().expect("telemetry lock").fallback().map(str::to_string)
    }

    /// A fallback not yet taken: `Some(reason)` once after a failed kernel check, then `None`.
    /// The trainer reports it as a fast-path fallback.
    pub fn take_kernel_fallback(&self) -> Option<String> {
        self.telemetry.lock().expect("telemetry lock").take_fallback()
    }

    /// Sends this layer to the tensor path for the rest of its life (e.g. the `kernels` flag was
    /// switched off for the run). Not reported as a failure by [`take_kernel_fallback`](Self::take_kernel_fallback).
    pub fn fall_back_from_kernels(&self, reason: &str) {
        self.telemetry.lock().expect("telemetry lock").fall_back(reason.to_string(), false);
    }

    fn with_params<B2: Backend>(&self, params: SeedParams<B2>) -> SeedCore<B2> {
        SeedCore::assemble(self.setup.clone(), params, self.table.clone(), None)
    }
}

impl<B: AutodiffBackend> SeedCore<B> {
    /// Per-seed L2 norm of the blueprint parameters' gradients, `[num_seeds]` (0 without a
    /// blueprint), for `grad_norm_gated` grafting.
    pub fn seed_grad_norms(&self, grads: &B::Gradients) -> Tensor<B, 1> {
        let device = self.device();
        let mut squares = Tensor::<B::InnerBackend, 1>::zeros([self.num_seeds()], &device);
        for index in &self.indices {
            let bank = self.params.banks[index.blueprint].as_ref().expect("indexed banks exist");
            let per_row: Vec<_> = bank
                .pages
                .iter()
                .map(|page| {
                    let rows = page.params[0].dims()[0];
                    page.params
                        .iter()
                        .filter_map(|p| p.grad(grads))
                        .map(|g| g.square().sum_dim(2).sum_dim(1).reshape([rows]))
                        .fold(Tensor::zeros([rows], &device), |acc, g| acc + g)
                })
                .collect();
            let per_row = Tensor::cat(per_row, 0);
            squares = squares.select_assign(0, index.row_seeds.clone().inner(), per_row, IndexingUpdateOp::Add);
        }
        Tensor::from_inner(squares.sqrt())
    }
}

// ----- Module plumbing: the record is `SeedParams`; caches are derived again on load. ---------

impl<B: Backend> Module<B> for SeedCore<B> {
    type Record = <SeedParams<B> as Module<B>>::Record;

    fn collect_devices(&self, devices: Devices<B>) -> Devices<B> {
        self.params.collect_devices(devices)
    }

    fn fork(self, device: &B::Device) -> Self {
        let params = self.params.clone().fork(device);
        self.with_params(params)
    }

    fn to_device(self, device: &B::Device) -> Self {
        let window = self.telemetry.lock().expect("telemetry lock").clone().moved_to(device);
        let params = self.params.clone().to_device(device);
        SeedCore::assemble(self.setup.clone(), params, self.table.clone(), Some(window))
    }

    fn visit<V: ModuleVisitor<B>>(&self, visitor: &mut V) {
        self.params.visit(visitor)
    }

    fn map<M: ModuleMapper<B>>(mut self, mapper: &mut M) -> Self {
        self.params = self.params.map(mapper);
        self
    }

    /// Loads state and banks from a record, re-creating lazily allocated bank pages the fresh
    /// module does not have yet, then rebuilds the host table from the loaded columns.
    fn load_record(self, record: Self::Record) -> Self {
        let device = self.device();
        let state = self.params.state.clone().load_record(record.state);
        let banks = record
            .banks
            .into_iter()
            .map(|bank| {
                bank.map(|bank| BlueprintBank {
                    pages: bank
                        .pages
                        .into_iter()
                        .map(|page| crate::bank::BankPage {
                            params: page
                                .params
                                .into_iter()
                                .map(|p| p.map(|t| t.to_device(&device).detach().require_grad()))
                                .collect(),
                        })
                        .collect(),
                })
            })
            .collect();
        let (table, _) = state.read();
        SeedCore::assemble(self.setup.clone(), SeedParams { state, banks }, table, None)
    }

    fn into_record(self) -> Self::Record {
        self.params.clone().into_record()
    }
}

impl<B: AutodiffBackend> AutodiffModule<B> for SeedCore<B> {
    type InnerModule = SeedCore<B::InnerBackend>;

    fn valid(&self) -> Self::InnerModule {
        self.with_params(self.params.valid())
    }

    fn from_inner(module: Self::InnerModule) -> Self {
        let params = SeedParams::from_inner(module.params.clone());
        module.with_params(params)
    }
}

impl<B: AutodiffBackend> HasAutodiffModule<B> for SeedCore<B::InnerBackend> {
    type TrainModule = SeedCore<B>;
}

impl<B: Backend> ModuleDisplayDefault for SeedCore<B> {
    fn content(&self, content: Content) -> Option<Content> {
        let active = self.table.iter().filter(|r| r.stage.holds_blueprint()).count();
        content
            .add_formatted(&format!(
                "SeedCore {{ seeds: {}, chunk: {}, with blueprint: {active} }}",
                self.num_seeds(),
                self.setup.chunks.width()
            ))
            .optional()
    }
}

impl<B: Backend> ModuleDisplay for SeedCore<B> {}

/// The plumbing every seeded layer type shares: it dereferences to its `seeds` field (the
/// lifecycle API) and implements [`SeedControl`](crate::SeedControl) through its own
/// `graft_step`.
macro_rules! seeded_layer {
    ($layer:ident) => {
        impl<B: Backend> std::ops::Deref for $layer<B> {
            type Target = $crate::SeedCore<B>;
            fn deref(&self) -> &$crate::SeedCore<B> {
                &self.seeds
            }
        }

        impl<B: Backend> std::ops::DerefMut for $layer<B> {
            fn deref_mut(&mut self) -> &mut $crate::SeedCore<B> {
                &mut self.seeds
            }
        }

        impl<B: Backend> $crate::SeedControl<B> for $layer<B> {
            fn seed_core(&self) -> &$crate::SeedCore<B> {
                &self.seeds
            }
            fn seed_core_mut(&mut self) -> &mut $crate::SeedCore<B> {
                &mut self.seeds
            }
            fn graft_step(&mut self, signals: &$crate::GraftSignals<B>) -> Result<(), $crate::MorphogenError> {
                $layer::graft_step(self, signals)
            }
        }
    };
}
pub(crate) use seeded_layer;

/// What a controller reads about a layer.
impl<B: Backend> SeedCore<B> {
    /// The host layer kind.
    pub fn host_kind(&self) -> HostKind {
        self.setup.host
    }

    /// Every seed's state, reading alpha back in one transfer.
    pub fn seed_infos(&self) -> Vec<SeedInfo> {
        let alpha: Vec<f32> = self.params.state.alpha.val().into_data().convert::<f32>().to_vec().expect("f32 alpha");
        (0..self.num_seeds()).map(|seed| self.info(seed, alpha[seed])).collect()
    }

    /// Parameters one seed's blueprint adds, for each blueprint this layer can grow.
    pub fn blueprint_params(&self) -> std::collections::BTreeMap<String, usize> {
        let width = self.setup.chunks.width();
        self.setup
            .blueprints
            .specs()
            .iter()
            .filter(|spec| !spec.needs_spatial() || self.setup.host == HostKind::Conv2d)
            .map(|spec| (spec.name.clone(), spec.param_count(width)))
            .collect()
    }

    /// Parameters added by the blueprints seeds hold now.
    pub fn params_added(&self) -> usize {
        let width = self.setup.chunks.width();
        self.table.iter().filter_map(|row| row.blueprint).map(|b| self.setup.blueprints.get(b).param_count(width)).sum()
    }
}

/// The grafting gates' memory between steps: not part of the module record (it is not a
/// parameter), so checkpoints save and restore it through [`SeedCore::graft_memory`] and
/// [`SeedCore::restore_graft_memory`].
#[derive(Clone, Debug)]
pub struct GraftMemory<B: Backend> {
    /// Each `LossImproving` strategy's loss moving average, shape `[1]`, by strategy id.
    pub loss_ema: Vec<(usize, Tensor<B, 1>)>,
    /// The host weight rows, `[features, fan_in]`, a drift gate measured last, if any.
    pub drift_reference: Option<Tensor<B, 2>>,
}

/// Checkpoint support: the gate memory outside the module record.
impl<B: Backend> SeedCore<B> {
    /// A copy of the grafting gates' memory.
    pub fn graft_memory(&self) -> GraftMemory<B> {
        GraftMemory { loss_ema: self.gate_memory.loss_ema.clone(), drift_reference: self.drift_reference.clone() }
    }

    /// Replaces the grafting gates' memory with one saved by [`graft_memory`](Self::graft_memory),
    /// moved to this layer's device. Every loss average must belong to a distinct `LossImproving`
    /// strategy of this layer and have shape `[1]`; the drift reference must have one row per
    /// feature. On error nothing changes.
    pub fn restore_graft_memory(&mut self, memory: GraftMemory<B>) -> Result<(), MorphogenError> {
        let invalid = |problem: String| MorphogenError::InvalidConfig {
            component: format!("grafting memory of layer '{}'", self.setup.name),
            problem,
            hint: "restore memory saved from a layer with the same strategies and features".into(),
        };
        let mut seen = BTreeSet::new();
        for (id, ema) in &memory.loss_ema {
            let is_loss_gate =
                self.setup.strategies.specs().get(*id).is_some_and(|s| matches!(s.gate, Gate::LossImproving { .. }));
            if !is_loss_gate || !seen.insert(*id) {
                return Err(invalid(format!("strategy id {id} is not a distinct LossImproving strategy")));
            }
            if ema.dims() != [1] {
                return Err(invalid(format!("loss average of strategy {id} has shape {:?}, not [1]", ema.dims())));
            }
        }
        if let Some(rows) = &memory.drift_reference {
            if rows.dims()[0] != self.setup.chunks.features() {
                return Err(invalid(format!(
                    "drift reference has {} rows for {} features",
                    rows.dims()[0],
                    self.setup.chunks.features()
                )));
            }
        }
        let device = self.device();
        self.gate_memory.loss_ema = memory.loss_ema.into_iter().map(|(id, t)| (id, t.to_device(&device))).collect();
        self.drift_reference = memory.drift_reference.map(|t| t.to_device(&device));
        Ok(())
    }
}

/// Debug-mode checks.
impl<B: Backend> SeedCore<B> {
    /// Checks what must always hold, reading the device (for debug mode, not every step of a real
    /// run): the device columns equal the host table, every alpha is finite and in `[0, 1]`, every
    /// seed holds a blueprint exactly in the stages that have one, and every bank parameter is
    /// finite.
    pub fn check_invariants(&self) -> Result<(), MorphogenError> {
        let broken = |problem: String| MorphogenError::InvariantBroken { layer: self.setup.name.clone(), problem };
        let (device_table, alpha) = self.params.state.read();
        if device_table != self.table {
            return Err(broken("the device state columns differ from the host table".into()));
        }
        if let Some((seed, a)) = alpha.iter().enumerate().find(|(_, a)| !(0.0..=1.0).contains(*a)) {
            return Err(broken(format!("seed {seed} has alpha {a}")));
        }
        if let Some((seed, row)) =
            self.table.iter().enumerate().find(|(_, r)| r.stage.holds_blueprint() != r.slot.is_some())
        {
            return Err(broken(format!("seed {seed} is {} with bank row {:?}", row.stage, row.slot)));
        }
        for (id, bank) in self.params.banks.iter().enumerate() {
            let Some(bank) = bank else { continue };
            for w in bank.stacked() {
                let finite = w.is_finite().all().into_data().convert::<bool>().to_vec::<bool>().expect("bool");
                if !finite[0] {
                    let name = &self.setup.blueprints.get(id).name;
                    return Err(broken(format!("blueprint bank '{name}' holds a non-finite parameter")));
                }
            }
        }
        Ok(())
    }
}
