//! Lifecycle transitions: germination, advancing along legal edges, alpha by hand, ablation and
//! the epoch count. Every call validates all its seeds first (`checks`) and changes nothing on
//! error; then it writes the host table, the device columns and the derived caches.

use super::SeedCore;
use crate::bank::BlueprintBank;
use crate::state::SeedRow;
use burn::tensor::backend::Backend;
use morphogen_contracts::MorphogenError;
use morphogen_contracts::Stage;
use std::collections::BTreeSet;

impl<B: Backend> SeedCore<B> {
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
        let blueprint_id = self.usable_blueprint(blueprint)?;
        let strategy_id = self.known_strategy(strategy)?;
        self.check_may_germinate(seeds)?;
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
        let (spec, chunks, device) =
            (self.setup.blueprints.get(blueprint).clone(), self.setup.chunks.clone(), self.device());
        let first_page = self.setup.lifecycle.bank_page_rows.min(self.num_seeds());
        let bank = self.params.banks[blueprint].get_or_insert_with(BlueprintBank::empty);
        bank.grow_to(&spec, &chunks, needed, first_page, chunks.seeds(), &device);
        bank.reinit_rows(&spec, &chunks, &rows);
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
        self.check_may_advance(seeds, to)?;
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
        self.check_alpha(alpha)?;
        self.check_stage(seeds, &[Stage::Grafting], "set_alpha")?;
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
        self.check_stage(seeds, &[Stage::Evaluating], "set_ablation")?;
        self.ablated = seeds.iter().copied().collect();
        self.rebuild_caches();
        Ok(())
    }

    /// Seeds whose EVALUATING contribution is currently forced off.
    pub fn ablated_seeds(&self) -> Vec<usize> {
        self.ablated.iter().copied().collect()
    }
}
