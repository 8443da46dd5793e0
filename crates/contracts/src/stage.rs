use serde::{Deserialize, Serialize};
use std::fmt;

/// The 11 lifecycle stages of a seed, with their stable codes (the design's section 3).
///
/// The code is what the seed-state tensor stores on device; [`Stage::allowed_next`] is the
/// whole legal transition graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[repr(u8)]
pub enum Stage {
    /// No blueprint; output is the host's; health statistics accumulate.
    Dormant = 0,
    /// A blueprint is allocated and waits in the queue; output is the host's.
    Germinated = 1,
    /// The blueprint learns on a detached input; output and host gradients are unchanged.
    Training = 2,
    /// Output `h + alpha * b(h)`, alpha moved each step by the grafting strategy.
    Grafting = 3,
    /// Output `h + b(h)` with the blueprint frozen while the host settles.
    Stabilization = 4,
    /// Blueprint frozen; its contribution is measured against alpha forced to 0.
    Evaluating = 5,
    /// Output `h + b(h)`, blueprint trained on the task loss.
    FineTuning = 6,
    /// Output `h + b(h)`, frozen for good.
    Fossilized = 7,
    /// Failed a gate; blueprint discarded; the seed is under embargo.
    Culled = 8,
    /// Cancelled before grafting; blueprint discarded.
    Cancelled = 9,
    /// Emergency rollback; terminal for this lineage.
    RolledBack = 10,
}

use Stage::*;

impl Stage {
    /// Every stage, in code order.
    pub const ALL: [Stage; 11] = [
        Dormant,
        Germinated,
        Training,
        Grafting,
        Stabilization,
        Evaluating,
        FineTuning,
        Fossilized,
        Culled,
        Cancelled,
        RolledBack,
    ];

    /// The stable numeric code (0-10).
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The stage with this code, if any.
    pub fn from_code(code: u8) -> Option<Stage> {
        Self::ALL.get(code as usize).copied()
    }

    /// The stages this one may move to.
    pub fn allowed_next(self) -> &'static [Stage] {
        match self {
            Dormant => &[Germinated],
            Germinated => &[Training, Cancelled],
            Training => &[Grafting, Culled, Cancelled, RolledBack],
            Grafting => &[Stabilization, RolledBack],
            Stabilization => &[Evaluating, RolledBack],
            Evaluating => &[FineTuning, Culled, RolledBack],
            FineTuning => &[Fossilized, Culled, RolledBack],
            Fossilized | Culled | Cancelled => &[Dormant],
            RolledBack => &[],
        }
    }

    /// Whether `self -> to` is an edge of the lifecycle graph.
    pub fn can_transition_to(self, to: Stage) -> bool {
        self.allowed_next().contains(&to)
    }

    /// Whether a seed in this stage owns a blueprint (a row in its layer's bank).
    pub fn holds_blueprint(self) -> bool {
        matches!(self, Germinated | Training | Grafting | Stabilization | Evaluating | FineTuning | Fossilized)
    }

    /// Whether the blueprint's parameters receive gradients in this stage.
    pub fn trains_blueprint(self) -> bool {
        matches!(self, Training | Grafting | FineTuning)
    }

    /// The upper-case name used in the design and in logs.
    pub fn name(self) -> &'static str {
        match self {
            Dormant => "DORMANT",
            Germinated => "GERMINATED",
            Training => "TRAINING",
            Grafting => "GRAFTING",
            Stabilization => "STABILIZATION",
            Evaluating => "EVALUATING",
            FineTuning => "FINE_TUNING",
            Fossilized => "FOSSILIZED",
            Culled => "CULLED",
            Cancelled => "CANCELLED",
            RolledBack => "ROLLED_BACK",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_dense() {
        for (i, stage) in Stage::ALL.iter().enumerate() {
            assert_eq!(stage.code() as usize, i);
            assert_eq!(Stage::from_code(i as u8), Some(*stage));
        }
        assert_eq!(Stage::from_code(11), None);
    }

    #[test]
    fn graph_matches_design_table() {
        assert!(Dormant.can_transition_to(Germinated));
        assert!(!Dormant.can_transition_to(Training));
        assert!(Training.can_transition_to(Cancelled));
        assert!(!Grafting.can_transition_to(Culled));
        assert!(RolledBack.allowed_next().is_empty());
        for s in Stage::ALL {
            assert!(!s.can_transition_to(s), "{s} must not loop on itself");
        }
    }

    #[test]
    fn serde_uses_design_names() {
        assert_eq!(serde_json::to_string(&FineTuning).unwrap(), "\"FINE_TUNING\"");
        let back: Stage = serde_json::from_str("\"ROLLED_BACK\"").unwrap();
        assert_eq!(back, RolledBack);
    }
}
