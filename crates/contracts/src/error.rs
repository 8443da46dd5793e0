use crate::Stage;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Everything that can go wrong when a user or a controller drives morphogen.
///
/// Every variant names the layer (and seed, where there is one), what was wrong and what to do.
/// An operation that returns an error has changed no state.
#[derive(Clone, Debug, Error, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum MorphogenError {
    /// A configuration value is out of range or inconsistent.
    #[error("invalid configuration for {component}: {problem}; {hint}")]
    InvalidConfig {
        /// The config struct or layer concerned.
        component: String,
        /// What is wrong.
        problem: String,
        /// What to do instead.
        hint: String,
    },
    /// A seed id outside `0..num_seeds`.
    #[error("layer '{layer}' has seeds 0..{num_seeds}; seed {seed} does not exist")]
    UnknownSeed {
        /// Layer name.
        layer: String,
        /// The id asked for.
        seed: usize,
        /// The layer's seed count.
        num_seeds: usize,
    },
    /// The same seed appears twice in one batch request.
    #[error("layer '{layer}': seed {seed} appears more than once in one request; list each seed once")]
    DuplicateSeed {
        /// Layer name.
        layer: String,
        /// The repeated id.
        seed: usize,
    },
    /// A transition that is not an edge of the lifecycle graph.
    #[error(
        "layer '{layer}' seed {seed}: illegal transition {from} -> {to}; from {from} the allowed stages are {}",
        list_stages(allowed)
    )]
    IllegalTransition {
        /// Layer name.
        layer: String,
        /// Seed id.
        seed: usize,
        /// Current stage.
        from: Stage,
        /// Requested stage.
        to: Stage,
        /// The legal targets from `from`.
        allowed: Vec<Stage>,
    },
    /// A blueprint name the layer's registry does not know.
    #[error("layer '{layer}': unknown blueprint '{name}'; registered blueprints: {}", known.join(", "))]
    UnknownBlueprint {
        /// Layer name.
        layer: String,
        /// The name asked for.
        name: String,
        /// Names the registry holds.
        known: Vec<String>,
    },
    /// A blueprint that cannot run on this kind of host layer.
    #[error("layer '{layer}': blueprint '{blueprint}' needs {needs}, but this is a {host} layer; choose one of: {}", usable.join(", "))]
    UnsupportedBlueprint {
        /// Layer name.
        layer: String,
        /// Blueprint name.
        blueprint: String,
        /// What the blueprint needs.
        needs: String,
        /// The host layer kind.
        host: String,
        /// Blueprints that do run on this layer.
        usable: Vec<String>,
    },
    /// A grafting strategy name the layer does not know.
    #[error("layer '{layer}': unknown grafting strategy '{name}'; registered strategies: {}", known.join(", "))]
    UnknownStrategy {
        /// Layer name.
        layer: String,
        /// The name asked for.
        name: String,
        /// Names the registry holds.
        known: Vec<String>,
    },
    /// Germination refused while a culled seed's embargo runs.
    #[error("layer '{layer}' seed {seed}: under embargo for {epochs_left} more epoch(s) after a cull; germinate another seed or wait")]
    Embargoed {
        /// Layer name.
        layer: String,
        /// Seed id.
        seed: usize,
        /// Epochs until it may germinate again.
        epochs_left: u32,
    },
    /// Germination refused because the seed failed too often.
    #[error("layer '{layer}' seed {seed}: quarantined after {failures} failures; it will not germinate again")]
    Quarantined {
        /// Layer name.
        layer: String,
        /// Seed id.
        seed: usize,
        /// Failures so far.
        failures: u32,
    },
    /// An input tensor whose shape does not fit the layer.
    #[error("layer '{layer}': expected input {expected}, got shape {got:?}")]
    ShapeMismatch {
        /// Layer name.
        layer: String,
        /// The expected shape, in words.
        expected: String,
        /// The shape received.
        got: Vec<usize>,
    },
    /// A grafting strategy in use needs a signal the caller did not pass.
    #[error("layer '{layer}': grafting strategy '{strategy}' needs the {signal} signal; {hint}")]
    MissingSignal {
        /// Layer name.
        layer: String,
        /// Strategy name.
        strategy: String,
        /// The missing signal.
        signal: String,
        /// How to provide it.
        hint: String,
    },
    /// A debug-mode invariant check failed: the layer's state is not one the lifecycle can
    /// produce, or its numbers are not finite.
    #[error("layer '{layer}': invariant broken: {problem}; this is a bug or a diverged run: roll back and report it")]
    InvariantBroken {
        /// Layer name.
        layer: String,
        /// What is wrong.
        problem: String,
    },
    /// An operation that needs its seeds in certain stages was asked of a seed in another.
    #[error(
        "layer '{layer}' seed {seed} is {stage}; {action} needs a seed in {}; nothing changed",
        list_stages(required)
    )]
    WrongStage {
        /// Layer name.
        layer: String,
        /// The seed.
        seed: usize,
        /// The stage it is in.
        stage: Stage,
        /// The stages the operation accepts.
        required: Vec<Stage>,
        /// The operation asked for, e.g. "set_alpha".
        action: String,
    },
    /// An argument of a call is out of range or of the wrong kind (not a configuration value).
    #[error("layer '{layer}': {argument} {problem}; {hint}; nothing changed")]
    InvalidArgument {
        /// Layer name.
        layer: String,
        /// The argument, e.g. "alpha".
        argument: String,
        /// What is wrong with it.
        problem: String,
        /// What to pass or call instead.
        hint: String,
    },
    /// A seed-model address naming a layer that does not exist.
    #[error("no seeded layer named '{layer}'; layers: {}", known.join(", "))]
    UnknownLayer {
        /// The name asked for.
        layer: String,
        /// Names that exist.
        known: Vec<String>,
    },
    /// Two seeded layers of one model report the same path, so commands, checkpoints and
    /// reports could not tell them apart.
    #[error(
        "two seeded layers of the model are both at path '{path}'; give each its own field, or its own path segment in a hand-written SeededModel visitor"
    )]
    DuplicateLayerPath {
        /// The path both layers report.
        path: String,
    },
}

impl MorphogenError {
    /// The same error naming `layer` (a model path) as its layer: what model-level code returns
    /// for an error a layer raised under another name. Errors that name no layer are unchanged.
    pub fn at_layer(self, layer: &str) -> Self {
        let mut error = self;
        match &mut error {
            Self::UnknownSeed { layer: name, .. }
            | Self::DuplicateSeed { layer: name, .. }
            | Self::IllegalTransition { layer: name, .. }
            | Self::UnknownBlueprint { layer: name, .. }
            | Self::UnsupportedBlueprint { layer: name, .. }
            | Self::UnknownStrategy { layer: name, .. }
            | Self::Embargoed { layer: name, .. }
            | Self::Quarantined { layer: name, .. }
            | Self::ShapeMismatch { layer: name, .. }
            | Self::MissingSignal { layer: name, .. }
            | Self::InvariantBroken { layer: name, .. }
            | Self::WrongStage { layer: name, .. }
            | Self::InvalidArgument { layer: name, .. } => *name = layer.to_string(),
            Self::InvalidConfig { .. } | Self::UnknownLayer { .. } | Self::DuplicateLayerPath { .. } => {}
        }
        error
    }
}

fn list_stages(stages: &[Stage]) -> String {
    if stages.is_empty() {
        return "none (terminal stage)".to_string();
    }
    stages.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn illegal_transition_names_layer_seed_stage_and_allowed() {
        let err = MorphogenError::IllegalTransition {
            layer: "fc1".into(),
            seed: 3,
            from: Stage::Dormant,
            to: Stage::Training,
            allowed: Stage::Dormant.allowed_next().to_vec(),
        };
        let msg = err.to_string();
        for needle in ["fc1", "seed 3", "DORMANT -> TRAINING", "GERMINATED"] {
            assert!(msg.contains(needle), "{msg} lacks {needle}");
        }
    }

    #[test]
    fn at_layer_renames_the_layer_and_keeps_the_rest() {
        let err = MorphogenError::UnknownSeed { layer: "seeded_conv2d".into(), seed: 9, num_seeds: 4 };
        let renamed = err.at_layer("blocks.1.conv2");
        assert_eq!(renamed, MorphogenError::UnknownSeed { layer: "blocks.1.conv2".into(), seed: 9, num_seeds: 4 });
        let unnamed = MorphogenError::UnknownLayer { layer: "fc9".into(), known: vec!["fc1".into()] };
        assert_eq!(unnamed.clone().at_layer("fc1"), unnamed, "an error naming no layer of its own is unchanged");
    }

    #[test]
    fn duplicate_layer_path_names_the_path_and_what_to_do() {
        let msg = MorphogenError::DuplicateLayerPath { path: "blocks.0.fc".into() }.to_string();
        for needle in ["blocks.0.fc", "its own field"] {
            assert!(msg.contains(needle), "{msg} lacks {needle}");
        }
    }

    #[test]
    fn terminal_stage_says_so() {
        let err = MorphogenError::IllegalTransition {
            layer: "l".into(),
            seed: 0,
            from: Stage::RolledBack,
            to: Stage::Dormant,
            allowed: vec![],
        };
        assert!(err.to_string().contains("terminal"));
    }

    #[test]
    fn wrong_stage_names_the_stages_required() {
        let err = MorphogenError::WrongStage {
            layer: "fc1".into(),
            seed: 2,
            stage: Stage::Training,
            required: vec![Stage::Grafting],
            action: "set_alpha".into(),
        };
        let msg = err.to_string();
        for needle in ["fc1", "seed 2", "TRAINING", "set_alpha", "GRAFTING", "nothing changed"] {
            assert!(msg.contains(needle), "{msg} lacks {needle}");
        }
    }
}
