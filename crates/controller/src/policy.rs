use crate::features::Observation;
use crate::neural_policy::{NeuralPolicy, Picking};
use crate::policy_learning::DecisionRecord;
use crate::{ControllerConfig, GrowthTrigger, SiteSelection};
use morphogen_contracts::{
    Command, Decisions, GlobalMetrics, LayerState, MorphogenError, SeedAddress, SeedHealth, SeedInfo, Stage,
    SystemState,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What the controller remembers between epochs (serialisable, for checkpoints).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ControllerState {
    /// Best validation score seen (the task's: accuracy or negative perplexity).
    #[serde(alias = "best_val_accuracy")]
    pub best_val_score: Option<f32>,
    /// Epochs since the validation score last improved by more than the plateau delta.
    pub epochs_without_progress: u32,
    /// Validation loss and score when each seed entered FINE_TUNING: its final gate compares
    /// against them.
    pub fine_tuning_entry: BTreeMap<String, (f32, f32)>,
    /// Validation loss at the previous decision (a feature of the neural policy).
    #[serde(default)]
    pub last_val_loss: Option<f32>,
}

/// The controller; see the crate docs. Growth is the heuristic's, or a neural policy's when one
/// is given ([`Controller::with_policy`]); the gates are always the heuristic's.
#[derive(Clone, Debug)]
pub struct Controller {
    config: ControllerConfig,
    state: ControllerState,
    policy: Option<Arc<NeuralPolicy>>,
    picking: Picking,
    /// Every growth decision, when recording (to learn from).
    trace: Option<Vec<DecisionRecord>>,
}

fn key(address: &SeedAddress) -> String {
    format!("{}/{}", address.layer, address.seed)
}

impl Controller {
    /// A controller with a validated config.
    pub fn new(config: ControllerConfig) -> Result<Self, MorphogenError> {
        config.validate()?;
        Ok(Self { config, state: ControllerState::default(), policy: None, picking: Picking::Greedy, trace: None })
    }

    /// Lets `policy` decide where, what and when to grow (within every budget); the measured
    /// gates stay the heuristic's. When the policy cannot decide (a score that is not finite),
    /// the heuristic does and [`Decisions::fallback`] says why.
    pub fn with_policy(mut self, policy: Arc<NeuralPolicy>) -> Self {
        self.policy = Some(policy);
        self
    }

    /// The same controller with growth left to the heuristic (its state kept).
    pub fn without_policy(mut self) -> Self {
        self.policy = None;
        self
    }

    /// The neural policy, if one decides growth.
    pub fn policy(&self) -> Option<&Arc<NeuralPolicy>> {
        self.policy.as_ref()
    }

    /// Makes the policy draw its moves (keyed by `key`, scores divided by `temperature`)
    /// instead of taking the most probable: for learning episodes.
    pub fn exploring(mut self, key: u64, temperature: f32) -> Self {
        self.picking = Picking::Sample { key, temperature };
        self
    }

    /// Records every growth decision from now on (see [`Controller::trace`]).
    pub fn recording(mut self) -> Self {
        self.trace = Some(Vec::new());
        self
    }

    /// The growth decisions recorded so far (empty unless [`recording`](Self::recording)).
    pub fn trace(&self) -> &[DecisionRecord] {
        self.trace.as_deref().unwrap_or_default()
    }

    /// Resumes a controller from saved state.
    pub fn with_state(mut self, state: ControllerState) -> Self {
        self.state = state;
        self
    }

    /// The config.
    pub fn config(&self) -> &ControllerConfig {
        &self.config
    }

    /// The state carried between epochs.
    pub fn state(&self) -> &ControllerState {
        &self.state
    }

    /// The state carried between epochs, taken.
    pub fn into_state(self) -> ControllerState {
        self.state
    }

    /// Decides what to do at one epoch boundary.
    pub fn step(&mut self, system: &SystemState) -> Decisions {
        let m = &system.metrics;
        if !m.is_finite() {
            let reason = format!(
                "non-finite metrics at epoch {}: train loss {}, val loss {}",
                m.epoch, m.train_loss, m.val_loss
            );
            return Decisions { commands: Vec::new(), rollback: Some(reason), fallback: None };
        }
        let mut training = count(system, |s| s.stage == Stage::Training);
        let mut commands = Vec::new();
        for layer in &system.layers {
            // Dormant, fossilized and rolled-back seeds have no gate (see `gate`): skipping them
            // first keeps a decision on 200,000 mostly dormant seeds from allocating for each.
            let gated = layer
                .seeds
                .iter()
                .filter(|s| !matches!(s.stage, Stage::Dormant | Stage::Fossilized | Stage::RolledBack));
            for seed in gated {
                let address = SeedAddress { layer: layer.layer.clone(), seed: seed.seed };
                let health = layer.health.seeds.get(seed.seed);
                if let Some(command) = self.gate(address, seed, health, system, &mut training) {
                    commands.push(command);
                }
            }
        }
        let due = self.growth_due(m);
        let (grown, fallback) = self.grow(system, due);
        if !grown.is_empty() {
            self.state.epochs_without_progress = 0;
        }
        let promoted = self.train_at_once(&grown, &mut training);
        commands.extend(grown);
        commands.extend(promoted);
        self.state.last_val_loss = Some(m.val_loss);
        Decisions { commands, rollback: None, fallback }
    }

    /// With `train_at_once`, the germinations among `grown` that take a free training slot,
    /// advanced to TRAINING (applied after them, in the same decision).
    fn train_at_once(&self, grown: &[Command], training: &mut usize) -> Vec<Command> {
        let c = &self.config;
        if !c.train_at_once {
            return Vec::new();
        }
        let free = c.max_training.saturating_sub(*training).min(grown.len());
        grown[..free]
            .iter()
            .map(|germinated| {
                *training += 1;
                let reason = format!("promoted at once: a training slot was free ({training}/{})", c.max_training);
                Command::advance(germinated.target.clone(), Stage::Training, reason)
            })
            .collect()
    }

    /// The germinations of this decision: the policy's, or the heuristic's when there is no
    /// policy or it failed (with why). `due`: whether the heuristic's trigger fired.
    fn grow(&mut self, system: &SystemState, due: bool) -> (Vec<Command>, Option<String>) {
        let observe = self.policy.is_some() || self.trace.is_some();
        let observation = observe.then(|| Observation::of(system, &self.config, &self.state));
        let fallback = match (&self.policy, &observation) {
            (Some(policy), Some(observation)) => match policy.choose(observation, self.picking, system.metrics.epoch) {
                Ok(choice) => {
                    let commands = self.policy_commands(policy, observation, &choice);
                    let picks = choice.picks.iter().map(|p| p.candidate).collect();
                    self.record(observation, picks, choice.waited, self.picking.temperature());
                    return (commands, None);
                }
                Err(why) => Some(format!("neural policy failed ({why}); the heuristic decided")),
            },
            _ => None,
        };
        let commands = if due { self.germinate(system) } else { Vec::new() };
        if let Some(observation) = observation {
            let picks = heuristic_picks(&observation, &commands);
            let waited = picks.len() < observation.limits.picks && observation.feasible_after(&picks).contains(&true);
            self.record(&observation, picks, waited, 1.0);
        }
        (commands, fallback)
    }

    /// The policy's germination orders, each explained by its score and top features.
    fn policy_commands(
        &self,
        policy: &NeuralPolicy,
        observation: &Observation,
        choice: &crate::neural_policy::Choice,
    ) -> Vec<Command> {
        choice
            .picks
            .iter()
            .map(|pick| {
                let candidate = &observation.candidates[pick.candidate];
                let features: Vec<String> = policy
                    .explain(observation, pick.candidate, 3)
                    .iter()
                    .map(|e| format!("{} {:.3} ({:+.3})", e.feature, e.value, e.effect))
                    .collect();
                let reason = format!(
                    "neural policy: score {:.3} against {:.3} for waiting, p {:.2}; top features: {}; +{} params",
                    pick.score,
                    choice.wait_score,
                    pick.probability,
                    features.join(", "),
                    candidate.cost
                );
                Command::germinate(candidate.address.clone(), &candidate.blueprint, &self.config.strategy, reason)
            })
            .collect()
    }

    fn record(&mut self, observation: &Observation, picks: Vec<usize>, waited: bool, temperature: f32) {
        if let Some(trace) = &mut self.trace {
            trace.push(DecisionRecord { observation: observation.clone(), picks, waited, temperature });
        }
    }

    /// The next move of one seed, if its gate is due.
    fn gate(
        &mut self,
        at: SeedAddress,
        seed: &SeedInfo,
        health: Option<&SeedHealth>,
        system: &SystemState,
        training: &mut usize,
    ) -> Option<Command> {
        let c = &self.config;
        let m = &system.metrics;
        let epochs = seed.epochs_in_stage;
        match seed.stage {
            Stage::Germinated if *training < c.max_training => {
                *training += 1;
                Some(Command::advance(
                    at,
                    Stage::Training,
                    format!("promoted from the queue ({training}/{} training)", c.max_training),
                ))
            }
            Stage::Training if epochs >= c.training_epochs => Some(self.training_gate(at, health)),
            Stage::Grafting if seed.alpha >= 1.0 => Some(Command::advance(at, Stage::Stabilization, "alpha reached 1")),
            Stage::Stabilization if epochs >= c.stabilization_epochs => {
                Some(Command::advance(at, Stage::Evaluating, format!("settled for {epochs} epoch(s)")))
            }
            Stage::Evaluating => {
                let eval = system.evaluations.iter().find(|e| e.seed == at)?;
                let (gain, stderr) = (eval.contribution(), eval.contribution_stderr);
                let floor = c.min_contribution.max(c.min_contribution_z * stderr);
                let together = match eval.ablated_together {
                    0 | 1 => String::new(),
                    n => format!(" with the layer's {n} EVALUATING seeds"),
                };
                let detail = format!(
                    "val loss {:.4} with, {:.4} without{together} (contribution {gain:+.4} +- {stderr:.4}, minimum \
                     {floor:+.4})",
                    eval.loss_with, eval.loss_without
                );
                if gain >= floor {
                    self.state.fine_tuning_entry.insert(key(&at), (m.val_loss, m.val_score()));
                    Some(Command::advance(at, Stage::FineTuning, format!("evaluation passed: {detail}")))
                } else {
                    Some(Command::advance(at, Stage::Culled, format!("evaluation failed: {detail}")))
                }
            }
            Stage::FineTuning if epochs >= c.fine_tuning_epochs => {
                // FOSSILIZED on global improvement since entry, CULLED otherwise.
                // No baseline on record (e.g. a controller resumed without its state): take one
                // now and judge at the next boundary rather than guess.
                let Some((loss, score)) = self.state.fine_tuning_entry.remove(&key(&at)) else {
                    self.state.fine_tuning_entry.insert(key(&at), (m.val_loss, m.val_score()));
                    return None;
                };
                let detail = format!(
                    "val loss {loss:.4} -> {:.4}, val {} {score:.4} -> {:.4} since entry",
                    m.val_loss,
                    m.score.name(),
                    m.val_score()
                );
                // Improvement on either global measure: the score can hold while an overfitting
                // model's loss drifts up, and the reverse.
                if m.val_loss < loss || m.val_score() > score {
                    Some(Command::advance(at, Stage::Fossilized, format!("global improvement: {detail}")))
                } else {
                    Some(Command::advance(at, Stage::Culled, format!("no global improvement: {detail}")))
                }
            }
            Stage::Culled if seed.embargo_epochs_left == 0 && seed.failures < c.quarantine_after => {
                Some(Command::advance(at, Stage::Dormant, "embargo over; the seed may grow again"))
            }
            Stage::Cancelled => Some(Command::advance(at, Stage::Dormant, "cancelled blueprint discarded")),
            _ => None,
        }
    }

    /// TRAINING -> GRAFTING when the blueprint learned something finite and bounded, else CULLED.
    fn training_gate(&self, at: SeedAddress, health: Option<&SeedHealth>) -> Command {
        let c = &self.config;
        let Some(h) = health else {
            return Command::advance(at, Stage::Culled, "training gate failed: no health report for the seed");
        };
        let host_std = h.variance.max(0.0).sqrt();
        let bound = c.max_output_ratio * host_std.max(1e-6);
        let detail =
            format!("blueprint output RMS {:.3e}, host std {:.3e}, bound {:.3e}", h.blueprint_rms, host_std, bound);
        if h.blueprint_rms.is_finite() && h.blueprint_rms > c.min_output_rms && h.blueprint_rms <= bound {
            Command::advance(at, Stage::Grafting, format!("training gate passed: {detail}"))
        } else {
            Command::advance(at, Stage::Culled, format!("training gate failed: {detail}"))
        }
    }

    /// Tracks validation progress; true when growth is due (by the trigger, and while accuracy
    /// is below target).
    fn growth_due(&mut self, m: &GlobalMetrics) -> bool {
        let s = &mut self.state;
        let score = m.val_score();
        match s.best_val_score {
            Some(best) if score <= best + self.config.plateau_delta => s.epochs_without_progress += 1,
            _ => s.epochs_without_progress = 0,
        }
        s.best_val_score = Some(s.best_val_score.map_or(score, |b| b.max(score)));
        let triggered = match self.config.trigger {
            GrowthTrigger::Plateau => s.epochs_without_progress >= self.config.patience,
            GrowthTrigger::EveryEpoch => true,
        };
        triggered && m.val_accuracy < self.config.accuracy_target
    }

    /// Why growth is due now, for the germinations' reasons.
    fn trigger_reason(&self, m: &GlobalMetrics) -> String {
        match self.config.trigger {
            GrowthTrigger::Plateau => format!(
                "plateau: val {} {:.4} gained <= {} for {} epoch(s)",
                m.score.name(),
                m.val_score(),
                self.config.plateau_delta,
                self.state.epochs_without_progress
            ),
            GrowthTrigger::EveryEpoch => {
                format!("growing every epoch: val {} {:.4} at epoch {}", m.score.name(), m.val_score(), m.epoch)
            }
        }
    }

    /// Germination orders for the unhealthiest usable dormant seeds, within every budget.
    fn germinate(&self, system: &SystemState) -> Vec<Command> {
        let c = &self.config;
        let mut total_active = count(system, |s| s.stage.holds_blueprint());
        let mut params = system.params_added;
        let mut per_layer: BTreeMap<&str, usize> = system
            .layers
            .iter()
            .map(|l| (l.layer.as_str(), l.seeds.iter().filter(|s| s.stage.holds_blueprint()).count()))
            .collect();
        let mut commands = Vec::new();
        let trigger = self.trigger_reason(&system.metrics);
        let site = match c.sites {
            SiteSelection::Health => "unhealthiest dormant seed",
            SiteSelection::Random => "random dormant seed (site ablation)",
        };
        for (score, layer, seed, health) in self.candidates(system) {
            if commands.len() >= c.max_germinations_per_epoch || total_active >= c.max_active_total {
                break;
            }
            let blueprint = if layer.host == "Conv2d" { &c.conv_blueprint } else { &c.linear_blueprint };
            let Some(&cost) = layer.blueprint_params.get(blueprint) else { continue };
            let active = per_layer.entry(layer.layer.as_str()).or_default();
            if *active >= c.max_active_per_layer || params + cost > c.param_budget {
                continue;
            }
            *active += 1;
            total_active += 1;
            params += cost;
            let reason = format!(
                "{trigger}; {site} (score {score:.3}: variance {:.3e}, dead {:.2}, correlation {:.2}); +{cost} params",
                health.variance, health.dead_ratio, health.correlation
            );
            let at = SeedAddress { layer: layer.layer.clone(), seed };
            commands.push(Command::germinate(at, blueprint, &c.strategy, reason));
        }
        commands
    }

    /// Dormant seeds free to grow, best first. By health, the unhealthiest: dead features,
    /// redundancy (correlation) and low variance relative to the layer's most varied seed all
    /// raise the score. At random, the score is a draw from the epoch, layer and seed.
    fn candidates<'a>(&self, system: &'a SystemState) -> Vec<(f32, &'a LayerState, usize, &'a SeedHealth)> {
        let mut out = Vec::new();
        for layer in &system.layers {
            let max_var = layer.health.seeds.iter().map(|h| h.variance).fold(f32::MIN_POSITIVE, f32::max);
            for seed in self.config.germinable_seeds(layer) {
                let Some(health) = layer.health.seeds.get(seed.seed) else { continue };
                let score = match self.config.sites {
                    SiteSelection::Health => {
                        health.dead_ratio + health.correlation.max(0.0) + (1.0 - health.variance / max_var)
                    }
                    SiteSelection::Random => draw(system.metrics.epoch, &layer.layer, seed.seed),
                };
                out.push((score, layer, seed.seed, health));
            }
        }
        out.sort_by(|a, b| b.0.total_cmp(&a.0));
        out
    }
}

/// A number in [0, 1) drawn from `epoch`, `layer` and `seed` alone (FNV-1a, then SplitMix64's
/// finalizer): the same on every run, resume and controller service, with no generator state.
fn draw(epoch: u32, layer: &str, seed: usize) -> f32 {
    let mut h = 0xCBF2_9CE4_8422_2325u64;
    for byte in layer.bytes().chain(epoch.to_le_bytes()).chain((seed as u64).to_le_bytes()) {
        h = (h ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01B3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (h >> 40) as f32 / (1u64 << 24) as f32
}

/// The candidates the heuristic's germinations correspond to, in order.
fn heuristic_picks(observation: &Observation, commands: &[Command]) -> Vec<usize> {
    commands
        .iter()
        .filter_map(|command| match &command.kind {
            morphogen_contracts::CommandKind::Germinate { blueprint, .. } => {
                observation.candidates.iter().position(|c| c.address == command.target && &c.blueprint == blueprint)
            }
            morphogen_contracts::CommandKind::Advance { .. } => None,
        })
        .collect()
}

fn count(system: &SystemState, f: impl Fn(&SeedInfo) -> bool) -> usize {
    system.layers.iter().flat_map(|l| &l.seeds).filter(|s| f(s)).count()
}
