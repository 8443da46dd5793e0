//! Which training batches make each epoch. By default an epoch is one pass over the training
//! set in a fresh random order. With `steps_per_epoch` set, an epoch is that many optimizer steps
//! of an endless walk over the training set, pass after pass, each pass in its own random
//! order: epoch boundaries (validation, the controller's decisions, checkpoints) then come
//! every so many steps, whatever the data set's size, so seeds can run their lifecycle within
//! a short run or inside one long language-model pass.

use crate::{Batching, TrainerConfig};

/// Which batches each epoch trains on (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochPlan {
    /// Examples per step.
    pub batch_size: usize,
    /// Training examples.
    pub examples: usize,
    /// Steps an epoch takes; `None`: one pass over the examples.
    pub steps_per_epoch: Option<usize>,
    /// The run's seed, from which every pass's order comes.
    pub seed: u64,
}

/// One pass's share of an epoch: the pass's order, and which of its batches the epoch takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PassSlice {
    /// The pass's batching (its shuffling seed).
    pub batching: Batching,
    /// The first batch of the pass the epoch takes.
    pub first: usize,
    /// Batches the epoch takes from the pass.
    pub count: usize,
}

impl EpochPlan {
    /// The plan `config` gives for `examples` training examples.
    pub fn new(config: &TrainerConfig, examples: usize) -> Self {
        Self {
            batch_size: config.batch_size.max(1),
            examples,
            steps_per_epoch: config.steps_per_epoch,
            seed: config.seed,
        }
    }

    /// Batches in one pass over the examples.
    pub fn batches_per_pass(&self) -> usize {
        self.examples.div_ceil(self.batch_size)
    }

    /// Steps an epoch takes.
    pub fn steps(&self) -> usize {
        self.steps_per_epoch.unwrap_or_else(|| self.batches_per_pass())
    }

    /// Step `index` (from 0) of epoch `epoch` (from 1), counted from the run's first step.
    pub fn position(&self, epoch: u32, index: usize) -> u64 {
        u64::from(epoch.saturating_sub(1)) * self.steps() as u64 + index as u64
    }

    /// The passes epoch `epoch` (from 1) walks, in order, each with the batches it takes.
    pub fn slices(&self, epoch: u32) -> Vec<PassSlice> {
        let per_pass = self.batches_per_pass() as u64;
        if per_pass == 0 {
            return Vec::new();
        }
        let mut global = self.position(epoch, 0);
        let end = global + self.steps() as u64;
        let mut slices = Vec::new();
        while global < end {
            let (pass, first) = (global / per_pass, global % per_pass);
            let count = (per_pass - first).min(end - global);
            slices.push(PassSlice {
                batching: self.pass_batching(pass + 1),
                first: first as usize,
                count: count as usize,
            });
            global += count;
        }
        slices
    }

    /// Examples in step `index` (from 0) of epoch `epoch`: the batch size, less at a pass's end.
    pub fn batch_len(&self, epoch: u32, index: usize) -> usize {
        let per_pass = self.batches_per_pass().max(1) as u64;
        let start = (self.position(epoch, index) % per_pass) as usize * self.batch_size;
        self.batch_size.min(self.examples.saturating_sub(start))
    }

    /// Pass `pass` (from 1) in its own random order: a resumed run walks the orders an
    /// uninterrupted one would.
    fn pass_batching(&self, pass: u64) -> Batching {
        Batching::shuffled(self.batch_size, numbered_seed(self.seed, pass))
    }
}

/// The run's `seed` made into the seed of its `n`-th pass (or epoch's growth): a stream of its
/// own, so a resumed run draws what an uninterrupted one would.
pub(crate) fn numbered_seed(seed: u64, n: u64) -> u64 {
    seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn plan(examples: usize, batch_size: usize, steps_per_epoch: Option<usize>) -> EpochPlan {
        EpochPlan { batch_size, examples, steps_per_epoch, seed: 7 }
    }

    /// (pass seed, batch) of every step of `epoch`.
    fn walk(plan: &EpochPlan, epoch: u32) -> Vec<(Option<u64>, usize)> {
        plan.slices(epoch).iter().flat_map(|s| (s.first..s.first + s.count).map(|b| (s.batching.shuffle, b))).collect()
    }

    #[test]
    fn without_steps_per_epoch_an_epoch_is_one_pass_in_its_own_order() {
        let p = plan(10, 4, None);
        assert_eq!(p.steps(), 3);
        assert_eq!(walk(&p, 1).iter().map(|w| w.1).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_ne!(walk(&p, 1)[0].0, walk(&p, 2)[0].0);
        assert_eq!([p.batch_len(1, 0), p.batch_len(1, 2), p.batch_len(2, 2)], [4, 2, 2]);
    }

    proptest! {
        /// Epochs of `steps` steps walk the passes end to end: every batch of every pass once,
        /// in order, no pass's order repeated, and each step's size is its batch's.
        #[test]
        fn epochs_of_n_steps_tile_the_passes(examples in 1usize..50, batch in 1usize..9, steps in 1usize..12) {
            let p = plan(examples, batch, Some(steps));
            let per_pass = p.batches_per_pass();
            let epochs = (3 * per_pass).div_ceil(steps) as u32;
            let mut seen = Vec::new();
            for epoch in 1..=epochs {
                let w = walk(&p, epoch);
                prop_assert_eq!(w.len(), steps);
                for (index, &(_, b)) in w.iter().enumerate() {
                    let expected = batch.min(examples - b * batch);
                    prop_assert_eq!(p.batch_len(epoch, index), expected);
                }
                seen.extend(w);
            }
            for (global, &(seed, b)) in seen.iter().enumerate() {
                prop_assert_eq!(b, global % per_pass);
                prop_assert_eq!(seed, seen[(global / per_pass) * per_pass].0);
            }
            let mut seeds: Vec<_> = seen.iter().step_by(per_pass).map(|s| s.0).collect();
            seeds.dedup();
            prop_assert_eq!(seeds.len(), seen.len().div_ceil(per_pass));
        }
    }
}
