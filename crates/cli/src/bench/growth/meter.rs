//! What one benchmarked run cost, read from the trainer's progress reports: its training FLOPs
//! and its last resource measurement.
//!
//! FLOPs: every forward pass the trainer makes, priced by the model's [`FlopProfile`] at the
//! seed states of its epoch (seeds change only at epoch ends). A training step is 3 forward
//! passes of its batch (forward and backward); validation, the evaluation of EVALUATING seeds
//! (a baseline pass and one ablated pass per measurement: a seed, or a layer's seeds) and the resource measurement (a
//! warm-up and a timed pass of one batch) 1 each. An epoch's work is priced when the trainer
//! reports its seed states ([`Observer::layers_measured`]); an attempt rolled back before that
//! is priced with the retry of the same epoch, which starts from the same seed states.

use morphogen::trainer::{Ablation, EpochPlan, FlopProfile, Observer, Resources, TrainerConfig};
use morphogen::LayerState;

/// Forward passes a training step costs, backward included.
const TRAINING_PASSES: u64 = 3;

/// Warm-up and timed pass of the resource measurement.
const RESOURCE_PASSES: u64 = 2;

/// Counts a run's training FLOPs as the trainer reports its progress (pass it as the run's
/// [`Observer`]).
pub struct RunMeter {
    profile: FlopProfile,
    /// The profiles of the widened host, each priced from its widening on (`[trainer.widen]`),
    /// the next first.
    widened: std::collections::VecDeque<FlopProfile>,
    sizes: Sizes,
    /// Which batches each epoch trains on.
    plan: EpochPlan,
    /// The current epoch, and the steps taken in the current attempt at it.
    epoch: u32,
    steps: usize,
    /// Examples trained and evaluated since the work was last priced.
    trained: u64,
    evaluated: u64,
    flops: u64,
    resources: Option<Resources>,
}

/// The sizes that decide how many examples each pass reads.
struct Sizes {
    batch: usize,
    valid: usize,
    eval_samples: usize,
    max_evaluations: usize,
    ablation: Ablation,
}

impl RunMeter {
    /// A meter for a model of `profile` trained as `config` says on `train` examples,
    /// validated on `valid`.
    pub fn new(profile: FlopProfile, config: &TrainerConfig, train: usize, valid: usize) -> Self {
        let sizes = Sizes {
            batch: config.batch_size,
            valid,
            eval_samples: config.eval_samples,
            max_evaluations: config.max_evaluations_per_epoch,
            ablation: config.ablation,
        };
        let plan = EpochPlan::new(config, train);
        Self {
            profile,
            widened: Default::default(),
            sizes,
            plan,
            epoch: 1,
            steps: 0,
            trained: 0,
            evaluated: 0,
            flops: 0,
            resources: None,
        }
    }

    /// Prices the epochs after each widening at the widened host's profile, in order.
    pub fn with_widened(mut self, profiles: Vec<FlopProfile>) -> Self {
        self.widened = profiles.into();
        self
    }

    /// Training FLOPs so far.
    pub fn flops(&self) -> u64 {
        self.flops
    }

    /// The last resource measurement, if any.
    pub fn resources(&self) -> Option<&Resources> {
        self.resources.as_ref()
    }
}

impl Observer for RunMeter {
    fn epoch_started(&mut self, epoch: u32, _steps: usize) {
        (self.epoch, self.steps) = (epoch, 0);
    }

    fn step(&mut self, _loss: f32) {
        self.trained += self.plan.batch_len(self.epoch, self.steps) as u64;
        self.steps += 1;
    }

    fn resources_measured(&mut self, resources: &Resources) {
        // Validation went through every example just before.
        self.evaluated += (self.sizes.valid + RESOURCE_PASSES as usize * self.sizes.batch.min(self.sizes.valid)) as u64;
        self.resources = Some(resources.clone());
    }

    fn widened(&mut self, _epoch: u32, _features: usize) {
        // The widening epoch's work was priced when its layers were measured, just before.
        if let Some(profile) = self.widened.pop_front() {
            self.profile = profile;
        }
    }

    fn layers_measured(&mut self, layers: &[LayerState]) {
        let measured = self.sizes.ablation.passes(layers).min(self.sizes.max_evaluations);
        if measured > 0 {
            self.evaluated += ((1 + measured) * self.sizes.eval_samples.min(self.sizes.valid)) as u64;
        }
        let passes = TRAINING_PASSES * self.trained + self.evaluated;
        self.flops += passes * self.profile.forward(layers);
        (self.trained, self.evaluated) = (0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use morphogen::Stage;
    use morphogen::{LayerHealthReport, SeedInfo};
    use std::collections::BTreeMap;

    /// One layer whose seed 0 is in `stage`, holding blueprint `b` unless dormant.
    fn layer(stage: Stage) -> LayerState {
        let seed = SeedInfo {
            seed: 0,
            stage,
            blueprint: (stage != Stage::Dormant).then(|| "b".to_string()),
            strategy: None,
            alpha: 1.0,
            epochs_in_stage: 0,
            embargo_epochs_left: 0,
            failures: 0,
            chunk: 0..1,
        };
        let health = LayerHealthReport { layer: "fc".into(), samples: 0, seeds: Vec::new() };
        LayerState {
            layer: "fc".into(),
            host: "Linear".into(),
            seeds: vec![seed],
            health,
            blueprint_params: BTreeMap::new(),
        }
    }

    #[test]
    fn an_epoch_costs_three_passes_a_step_and_one_per_evaluation() {
        let profile =
            FlopProfile { host: 100, seeds: BTreeMap::from([("fc".into(), BTreeMap::from([("b".into(), 10)]))]) };
        let config =
            TrainerConfig { batch_size: 4, eval_samples: 3, max_evaluations_per_epoch: 1, ..Default::default() };
        let mut meter = RunMeter::new(profile, &config, 10, 5);
        // Epoch 1, seed dormant: steps of 4, 4 and 2 examples; validation of 5 and two resource
        // passes of 4.
        meter.epoch_started(1, 3);
        (0..3).for_each(|_| meter.step(0.0));
        meter.resources_measured(&Resources::default());
        meter.layers_measured(&[layer(Stage::Dormant)]);
        assert_eq!(meter.flops(), (3 * 10 + 5 + 2 * 4) * 100);
        // Epoch 2, seed EVALUATING: the same plus a baseline and an ablated pass of 3 examples,
        // all at 110 FLOPs an example.
        meter.epoch_started(2, 3);
        (0..3).for_each(|_| meter.step(0.0));
        meter.resources_measured(&Resources::default());
        meter.layers_measured(&[layer(Stage::Evaluating)]);
        assert_eq!(meter.flops(), (3 * 10 + 5 + 2 * 4) * 100 + (3 * 10 + 5 + 2 * 4 + 2 * 3) * 110);
    }

    #[test]
    fn the_epochs_after_each_widening_cost_that_wider_hosts_flops() {
        let config = TrainerConfig { batch_size: 4, eval_samples: 3, ..Default::default() };
        let narrow = FlopProfile { host: 100, seeds: BTreeMap::new() };
        let mut meter = RunMeter::new(narrow, &config, 4, 4)
            .with_widened([150, 200].map(|host| FlopProfile { host, ..Default::default() }).to_vec());
        for epoch in 1..=4 {
            meter.epoch_started(epoch, 1);
            meter.step(0.0);
            meter.layers_measured(&[layer(Stage::Dormant)]);
            if epoch < 3 {
                meter.widened(epoch, 8);
            }
        }
        assert_eq!(meter.flops(), 3 * 4 * (100 + 150 + 200 + 200));
    }

    #[test]
    fn ablating_a_layers_seeds_together_costs_one_pass_a_layer() {
        let profile =
            FlopProfile { host: 100, seeds: BTreeMap::from([("fc".into(), BTreeMap::from([("b".into(), 10)]))]) };
        let evaluating = {
            let mut l = layer(Stage::Evaluating);
            l.seeds.push(SeedInfo { seed: 1, ..l.seeds[0].clone() });
            l
        };
        let ablated = |ablation| {
            let config = TrainerConfig { batch_size: 4, eval_samples: 3, ablation, ..Default::default() };
            let mut meter = RunMeter::new(profile.clone(), &config, 4, 5);
            meter.epoch_started(1, 1);
            meter.step(0.0);
            meter.layers_measured(std::slice::from_ref(&evaluating));
            // One step of 4 examples at 120 FLOPs (two blueprints), then the evaluation passes.
            meter.flops() / 120 - 3 * 4
        };
        assert_eq!(ablated(Ablation::Seed), 3 * 3, "a baseline and a pass per seed");
        assert_eq!(ablated(Ablation::Layer), 2 * 3, "a baseline and one pass for the layer");
    }
}
