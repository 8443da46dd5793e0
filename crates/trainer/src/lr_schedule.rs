//! The learning rate of each step: constant, or cosine decay over the run.

use serde::{Deserialize, Serialize};

/// How the learning rate moves over a run (`[trainer] lr_schedule`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    /// `learning_rate` at every step.
    #[default]
    Constant,
    /// From `learning_rate` at the first step down to `min_learning_rate` at the last, along
    /// half a cosine (PyTorch's and Burn's cosine annealing without restarts).
    Cosine,
}

impl LrSchedule {
    /// The rate at step `position` (from 0) of a run of `total` steps, from `base` down to
    /// `min`. Computed from the position alone, not kept as state, so a resumed or rolled-back
    /// run steps at the rates an uninterrupted one would.
    pub fn rate(self, base: f64, min: f64, position: u64, total: u64) -> f64 {
        match self {
            LrSchedule::Constant => base,
            LrSchedule::Cosine => {
                let progress = position.min(total) as f64 / total.max(1) as f64;
                min + 0.5 * (base - min) * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LrSchedule;
    use proptest::prelude::*;

    #[test]
    fn cosine_runs_from_the_base_through_the_middle_to_the_floor() {
        let rate = |position| LrSchedule::Cosine.rate(1e-3, 1e-5, position, 100);
        assert_eq!(rate(0), 1e-3);
        assert!((rate(50) - (1e-3 + 1e-5) / 2.0).abs() < 1e-12, "{}", rate(50));
        assert!((rate(100) - 1e-5).abs() < 1e-15);
        assert_eq!(LrSchedule::Constant.rate(1e-3, 1e-5, 70, 100), 1e-3);
    }

    proptest! {
        #[test]
        fn cosine_only_falls_and_stays_in_its_range(total in 1u64..10_000, a in 0u64..10_000, b in 0u64..10_000) {
            let (early, late) = (a.min(b), a.max(b));
            let rate = |position| LrSchedule::Cosine.rate(2e-3, 1e-4, position, total);
            prop_assert!(rate(early) >= rate(late));
            prop_assert!((1e-4..=2e-3).contains(&rate(late)));
        }
    }
}
