use crate::Stage;
use serde::{Deserialize, Serialize};

/// Where a seed lives: a seeded layer's name within its model and the seed id within the layer.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeedAddress {
    /// The seeded layer's name, as listed by the model.
    pub layer: String,
    /// Seed id within the layer.
    pub seed: usize,
}

/// What a controller asks a seeded model to do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CommandKind {
    /// DORMANT -> GERMINATED with this blueprint and grafting strategy.
    Germinate {
        /// Blueprint name.
        blueprint: String,
        /// Grafting strategy name.
        strategy: String,
    },
    /// Move to a stage along a legal edge.
    Advance {
        /// Target stage.
        to: Stage,
    },
}

/// A command addressed to one seed, with the reason it was issued (kept in the event log).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// Target seed.
    pub target: SeedAddress,
    /// What to do.
    #[serde(flatten)]
    pub kind: CommandKind,
    /// Why, in words.
    pub reason: String,
}

impl Command {
    /// A germination order.
    pub fn germinate(target: SeedAddress, blueprint: &str, strategy: &str, reason: impl Into<String>) -> Self {
        let kind = CommandKind::Germinate { blueprint: blueprint.into(), strategy: strategy.into() };
        Self { target, kind, reason: reason.into() }
    }

    /// An order to move to `to` (cancel, cull and rollback are moves to those stages).
    pub fn advance(target: SeedAddress, to: Stage, reason: impl Into<String>) -> Self {
        Self { target, kind: CommandKind::Advance { to }, reason: reason.into() }
    }
}

/// What a controller decides at one epoch boundary.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Decisions {
    /// Seed commands, in the order to apply them.
    pub commands: Vec<Command>,
    /// Set when the whole model must go back to its last good checkpoint, with the reason.
    pub rollback: Option<String>,
    /// Set when the neural policy could not decide growth and the heuristic did: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
}
