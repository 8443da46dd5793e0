//! Validation, written once: every error a seed core returns is built here, naming the layer,
//! the seed, what was wrong and what is allowed. Checks read only the host table, never the
//! device (except [`SeedCore::check_invariants`], the debug-mode check).

use super::{HostKind, SeedCore};
use crate::grafting::{Gate, GraftMemory};
use burn::tensor::backend::Backend;
use morphogen_contracts::MorphogenError;
use morphogen_contracts::Stage;
use std::collections::BTreeSet;

impl<B: Backend> SeedCore<B> {
    /// The layer's name, as errors carry it.
    fn layer(&self) -> String {
        self.setup.name.clone()
    }

    /// Every listed seed exists and appears once.
    pub(super) fn check_seeds(&self, seeds: &[usize]) -> Result<(), MorphogenError> {
        let mut seen = BTreeSet::new();
        for &seed in seeds {
            if seed >= self.num_seeds() {
                return Err(MorphogenError::UnknownSeed { layer: self.layer(), seed, num_seeds: self.num_seeds() });
            }
            if !seen.insert(seed) {
                return Err(MorphogenError::DuplicateSeed { layer: self.layer(), seed });
            }
        }
        Ok(())
    }

    /// Every listed seed is in one of the `required` stages, as `action` needs.
    pub(super) fn check_stage(&self, seeds: &[usize], required: &[Stage], action: &str) -> Result<(), MorphogenError> {
        match seeds.iter().find(|&&s| !required.contains(&self.table[s].stage)) {
            None => Ok(()),
            Some(&seed) => Err(MorphogenError::WrongStage {
                layer: self.layer(),
                seed,
                stage: self.table[seed].stage,
                required: required.to_vec(),
                action: action.into(),
            }),
        }
    }

    /// `alpha` is a blend factor in `[0, 1]`.
    pub(super) fn check_alpha(&self, alpha: f32) -> Result<(), MorphogenError> {
        if (0.0..=1.0).contains(&alpha) {
            return Ok(());
        }
        Err(MorphogenError::InvalidArgument {
            layer: self.layer(),
            argument: "alpha".into(),
            problem: format!("{alpha} is outside [0, 1]"),
            hint: "pass a blend factor between 0 and 1".into(),
        })
    }

    /// The id of blueprint `name`, which this layer's host can grow.
    pub(super) fn usable_blueprint(&self, name: &str) -> Result<usize, MorphogenError> {
        let blueprints = &self.setup.blueprints;
        let id = blueprints.id(name).ok_or_else(|| MorphogenError::UnknownBlueprint {
            layer: self.layer(),
            name: name.to_string(),
            known: blueprints.names(),
        })?;
        if blueprints.get(id).needs_spatial() && self.setup.host != HostKind::Conv2d {
            let usable = blueprints.specs().iter().filter(|s| !s.needs_spatial()).map(|s| s.name.clone());
            return Err(MorphogenError::UnsupportedBlueprint {
                layer: self.layer(),
                blueprint: name.to_string(),
                needs: "a Conv2d host (spatial channels)".into(),
                host: self.setup.host.to_string(),
                usable: usable.collect(),
            });
        }
        Ok(id)
    }

    /// The id of grafting strategy `name`.
    pub(super) fn known_strategy(&self, name: &str) -> Result<usize, MorphogenError> {
        let strategies = &self.setup.strategies;
        strategies.id(name).ok_or_else(|| MorphogenError::UnknownStrategy {
            layer: self.layer(),
            name: name.to_string(),
            known: strategies.names(),
        })
    }

    /// Every listed seed is DORMANT, not under embargo and not quarantined.
    pub(super) fn check_may_germinate(&self, seeds: &[usize]) -> Result<(), MorphogenError> {
        for &seed in seeds {
            let row = self.table[seed];
            if row.stage != Stage::Dormant {
                return Err(self.illegal(seed, row.stage, Stage::Germinated, row.stage.allowed_next().to_vec()));
            }
            if row.embargo > 0 {
                return Err(MorphogenError::Embargoed { layer: self.layer(), seed, epochs_left: row.embargo });
            }
            if row.failures >= self.setup.lifecycle.quarantine_after {
                return Err(MorphogenError::Quarantined { layer: self.layer(), seed, failures: row.failures });
            }
        }
        Ok(())
    }

    /// Every listed seed may move to `to` (not GERMINATED: that needs a blueprint) along a legal
    /// edge: not out of FOSSILIZED unless `reuse_fossilized`, not out of CULLED under embargo.
    pub(super) fn check_may_advance(&self, seeds: &[usize], to: Stage) -> Result<(), MorphogenError> {
        if to == Stage::Germinated {
            return Err(MorphogenError::InvalidArgument {
                layer: self.layer(),
                argument: "stage GERMINATED".into(),
                problem: "needs a blueprint and a grafting strategy".into(),
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
                return Err(MorphogenError::Embargoed { layer: self.layer(), seed, epochs_left: row.embargo });
            }
        }
        Ok(())
    }

    fn illegal(&self, seed: usize, from: Stage, to: Stage, allowed: Vec<Stage>) -> MorphogenError {
        MorphogenError::IllegalTransition { layer: self.layer(), seed, from, to, allowed }
    }

    /// A grafting memory another layer saved fits this one: every loss average belongs to a
    /// distinct `LossImproving` strategy of this layer and has shape `[1]`, and the drift
    /// reference has one row per feature.
    pub(super) fn check_graft_memory(&self, memory: &GraftMemory<B>) -> Result<(), MorphogenError> {
        let invalid = |problem: String| MorphogenError::InvalidArgument {
            layer: self.layer(),
            argument: "grafting memory".into(),
            problem,
            hint: "restore memory saved from a layer with the same strategies and features".into(),
        };
        let mut seen = BTreeSet::new();
        for (id, ema) in &memory.loss_ema {
            let is_loss_gate =
                self.setup.strategies.specs().get(*id).is_some_and(|s| matches!(s.gate, Gate::LossImproving { .. }));
            if !is_loss_gate || !seen.insert(*id) {
                return Err(invalid(format!("names strategy id {id}, not a distinct LossImproving strategy")));
            }
            if ema.dims() != [1] {
                return Err(invalid(format!(
                    "has a loss average of shape {:?} for strategy {id}, not [1]",
                    ema.dims()
                )));
            }
        }
        let features = self.setup.chunks.features();
        match &memory.drift_reference {
            Some(rows) if rows.dims()[0] != features => {
                Err(invalid(format!("has a drift reference of {} rows for {features} features", rows.dims()[0])))
            }
            _ => Ok(()),
        }
    }

    /// Checks what must always hold, reading the device (for debug mode, not every step of a real
    /// run): the device columns equal the host table, every alpha is finite and in `[0, 1]`, every
    /// seed holds a blueprint exactly in the stages that have one, and every bank parameter is
    /// finite.
    pub fn check_invariants(&self) -> Result<(), MorphogenError> {
        let broken = |problem: String| MorphogenError::InvariantBroken { layer: self.layer(), problem };
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
