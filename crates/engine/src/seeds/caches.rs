//! Caches derived from the host table at every transition, so a forward pass reads only alpha
//! from the seed state: each bank's index and stage factors, and each strategy's ramp rates.

use super::SeedCore;
use crate::blend::{BankIndex, RowRole};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use morphogen_contracts::Stage;

impl<B: Backend> SeedCore<B> {
    /// Rebuilds bank indices and ramp rates from the host table (after any transition).
    pub(super) fn rebuild_caches(&mut self) {
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
                trainable: self.setup.lifecycle.trains_blueprint(stage),
            }
        };
        BankIndex::new(blueprint, occupant.iter().map(role).collect(), &self.setup.chunks, device)
    }
}
