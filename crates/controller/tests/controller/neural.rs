//! The neural policy: it learns the heuristic's choices, keeps every budget and gate, explains
//! itself, learns from rewards in the right direction, and a policy file that is missing,
//! damaged or made for other features is refused with a typed error.

use crate::fixtures::{germinated, health, varied_system, with_stage};
use morphogen_contracts::{CommandKind, Stage};
use morphogen_controller::{
    Controller, ControllerConfig, DecisionRecord, NeuralPolicy, Observation, PolicyError, PolicyLearner,
    CANDIDATE_FEATURES,
};
use proptest::prelude::*;
use std::sync::Arc;

fn config() -> ControllerConfig {
    ControllerConfig { max_germinations_per_epoch: 2, ..Default::default() }
}

/// The heuristic's growth decisions on states drawn from `keys`.
fn heuristic_records(keys: std::ops::Range<u64>) -> Vec<DecisionRecord> {
    keys.flat_map(|key| {
        let mut controller = Controller::new(config()).unwrap().recording();
        controller.step(&varied_system(key, 1, 3, 12));
        controller.trace().to_vec()
    })
    .collect()
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("morphogen-policy-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    dir
}

#[test]
fn imitation_learns_to_pick_the_seeds_the_heuristic_picks_on_states_it_never_saw() {
    let mut learner = PolicyLearner::new(NeuralPolicy::untrained(32, 7), 3e-3);
    let records = heuristic_records(0..24);
    let first = learner.imitate(&records);
    let mut last = first;
    for _ in 0..150 {
        last = learner.imitate(&records);
    }
    assert!(last < first * 0.5, "the imitation loss fell from {first} to {last}");
    let policy = Arc::new(learner.policy());
    let (mut same, mut total) = (0, 0);
    for key in 100..110 {
        let state = varied_system(key, 1, 3, 12);
        let heuristic = germinated(&Controller::new(config()).unwrap().step(&state));
        let neural = germinated(&Controller::new(config()).unwrap().with_policy(policy.clone()).step(&state));
        same += neural.iter().filter(|g| heuristic.contains(g)).count();
        total += heuristic.len();
    }
    assert!(same * 10 >= total * 7, "the policy agreed with the heuristic on {same} of {total} held-out picks");
}

#[test]
fn a_rewarded_decision_becomes_more_likely_and_a_punished_one_less() {
    let record = heuristic_records(5..6).remove(0);
    for (advantage, grows) in [(1.0, true), (-1.0, false)] {
        let mut learner = PolicyLearner::new(NeuralPolicy::untrained(16, 3), 1e-2);
        let before = learner.policy().log_probability(&record);
        for _ in 0..10 {
            learner.reinforce([(&record, advantage, before)], 100.0);
        }
        let after = learner.policy().log_probability(&record);
        assert_eq!(after > before, grows, "advantage {advantage}: log p {before} -> {after}");
    }
}

#[test]
fn clipping_limits_how_far_repeated_steps_on_the_same_episodes_move_the_policy() {
    let record = heuristic_records(5..6).remove(0);
    let moved = |clip: f32| {
        let mut learner = PolicyLearner::new(NeuralPolicy::untrained(16, 3), 1e-2);
        let drawn = learner.policy().log_probability(&record);
        for _ in 0..30 {
            learner.reinforce([(&record, 1.0, drawn)], clip);
        }
        learner.policy().log_probability(&record) - drawn
    };
    let (clipped, free) = (moved(0.2), moved(100.0));
    assert!(clipped > 0.0, "clipped at 0.2: log p moved {clipped}");
    assert!(free > 2.0 * clipped, "unclipped it moves further: {free} against {clipped}");
}

#[test]
fn the_policy_keeps_every_budget_and_never_skips_a_gate() {
    let policy = Arc::new(NeuralPolicy::untrained(16, 11));
    proptest!(ProptestConfig::with_cases(24), |(key in 0u64..1000, picks in 0usize..5, per_layer in 1usize..4, budget in 0usize..400)| {
        let config = ControllerConfig {
            max_germinations_per_epoch: picks,
            max_active_per_layer: per_layer,
            param_budget: budget,
            ..Default::default()
        };
        let mut state = varied_system(key, 2, 3, 10);
        // A seed due for its training gate with an unbounded blueprint output: the gate culls it.
        let mut gated = health(0, 1.0, 0.0);
        gated.blueprint_rms = 1e6;
        state.layers[0] = with_stage(Stage::Training, 1, gated);
        let decisions = Controller::new(config.clone()).unwrap().with_policy(policy.clone()).step(&state);
        let grown = germinated(&decisions);
        let cost: usize = decisions.commands.iter().filter_map(|c| match &c.kind {
            CommandKind::Germinate { blueprint, .. } => state.layers.iter().find(|l| l.layer == c.target.layer).map(|l| l.blueprint_params[blueprint]),
            CommandKind::Advance { .. } => None,
        }).sum();
        prop_assert!(grown.len() <= picks);
        prop_assert!(cost <= budget);
        let only_layer2 = ControllerConfig { grow_in: vec!["layer2".into()], ..config.clone() };
        let kept = germinated(&Controller::new(only_layer2).unwrap().with_policy(policy.clone()).step(&state));
        prop_assert!(kept.iter().all(|(layer, _)| layer == "layer2"), "grow_in: {kept:?}");
        for layer in &state.layers {
            let held = layer.seeds.iter().filter(|s| s.stage.holds_blueprint()).count();
            prop_assert!(held + grown.iter().filter(|(l, _)| *l == layer.layer).count() <= per_layer.max(held));
        }
        let culled = decisions.commands.iter().any(|c| c.target.layer == state.layers[0].layer
            && c.kind == CommandKind::Advance { to: Stage::Culled });
        prop_assert!(culled, "the training gate still culled the unbounded seed: {:?}", decisions.commands);
    });
}

#[test]
fn each_germination_carries_its_score_and_the_features_behind_it() {
    let policy = Arc::new(NeuralPolicy::untrained(16, 5));
    let mut controller = Controller::new(config()).unwrap().with_policy(policy.clone());
    let state = varied_system(9, 1, 2, 8);
    let observation = Observation::of(&state, &config(), controller.state());
    let decisions = controller.step(&state);
    let choice = policy.choose(&observation, morphogen_controller::Picking::Greedy, 1).unwrap();
    assert_eq!(germinated(&decisions).len(), choice.picks.len());
    for (command, pick) in decisions.commands.iter().zip(&choice.picks) {
        assert!(command.reason.starts_with(&format!("neural policy: score {:.3}", pick.score)), "{}", command.reason);
        let top = policy.explain(&observation, pick.candidate, 3);
        assert_eq!(top.len(), 3);
        for effect in &top {
            assert!(CANDIDATE_FEATURES.contains(&effect.feature));
            assert!(command.reason.contains(effect.feature), "{} names {}", command.reason, effect.feature);
        }
        assert!(top.windows(2).all(|w| w[0].effect.abs() >= w[1].effect.abs()), "largest effect first");
    }
}

#[test]
fn scores_that_are_not_finite_fall_back_to_the_heuristic_with_the_reason() {
    let policy = Arc::new(NeuralPolicy::untrained(16, 5));
    let mut state = varied_system(3, 1, 2, 8);
    state.layers[1].health.seeds[4].variance = f32::NAN;
    let neural = Controller::new(config()).unwrap().with_policy(policy).step(&state);
    let heuristic = Controller::new(config()).unwrap().step(&state);
    let why = neural.fallback.as_deref().expect("a fallback is reported");
    assert!(why.contains("not finite") || why.contains("NaN"), "{why}");
    assert_eq!(germinated(&neural), germinated(&heuristic));
}

#[test]
fn sampling_repeats_for_a_key_and_varies_between_keys() {
    let policy = Arc::new(NeuralPolicy::untrained(16, 2));
    let state = varied_system(1, 1, 3, 12);
    let run = |key| {
        germinated(&Controller::new(config()).unwrap().with_policy(policy.clone()).exploring(key, 1.0).step(&state))
    };
    assert_eq!(run(4), run(4));
    assert!((0..20).any(|key| run(key) != run(4)), "twenty keys drew the same picks");
}

#[test]
fn a_saved_policy_loads_back_identical_and_damage_is_refused_by_name() {
    let dir = temp_dir("files");
    let path = dir.join("grow.policy");
    let policy = NeuralPolicy::untrained(16, 9);
    policy.save(&path, serde_json::json!({ "episodes": 0 })).unwrap();
    let state = varied_system(2, 1, 2, 6);
    let observation = Observation::of(&state, &config(), &Default::default());
    let loaded = NeuralPolicy::load(&path).unwrap();
    assert_eq!(
        loaded.choose(&observation, morphogen_controller::Picking::Sample { key: 1, temperature: 1.0 }, 1).unwrap(),
        policy.choose(&observation, morphogen_controller::Picking::Sample { key: 1, temperature: 1.0 }, 1).unwrap()
    );
    assert_eq!(loaded.manifest().training["episodes"], 0);

    assert!(matches!(policy.save(&path, serde_json::Value::Null), Err(PolicyError::Exists { .. })));
    assert!(NeuralPolicy::load(&path).is_ok(), "the refused save left the policy intact");
    assert!(matches!(NeuralPolicy::load(&dir.join("missing.policy")), Err(PolicyError::Io { .. })));

    let weights = path.join("weights.safetensors");
    let original = std::fs::read(&weights).unwrap();
    let mut bytes = original.clone();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&weights, &bytes).unwrap();
    let damaged = NeuralPolicy::load(&path).unwrap_err();
    assert!(matches!(damaged, PolicyError::Corrupt { .. }), "{damaged}");
    assert!(damaged.to_string().contains("hash"), "{damaged}");

    // Weights whose hash the manifest names but that do not fit the network: a tensor of
    // integers (Burn's loader would panic on it), then one tensor too few.
    let rewrite = |new: Vec<u8>| {
        let manifest = path.join("manifest.json");
        let mut json: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
        json["weights_sha256"] = morphogen_checkpoint::sha256_hex(&new).into();
        std::fs::write(&manifest, serde_json::to_string_pretty(&json).unwrap()).unwrap();
        std::fs::write(&weights, new).unwrap();
    };
    let parsed = safetensors::SafeTensors::deserialize(&original).unwrap();
    let ints = vec![0u8; 4 * 16 * 14];
    let mut tensors: Vec<(String, safetensors::tensor::TensorView)> =
        parsed.tensors().into_iter().filter(|(name, _)| !name.starts_with("enc1.weight")).collect();
    tensors.push((
        "enc1.weight".into(),
        safetensors::tensor::TensorView::new(safetensors::Dtype::I32, vec![14, 16], &ints).unwrap(),
    ));
    rewrite(safetensors::serialize(tensors.clone(), None).unwrap());
    let wrong = NeuralPolicy::load(&path).unwrap_err();
    assert!(matches!(wrong, PolicyError::Corrupt { .. }) && wrong.to_string().contains("I32"), "{wrong}");
    tensors.pop();
    rewrite(safetensors::serialize(tensors, None).unwrap());
    let short = NeuralPolicy::load(&path).unwrap_err();
    assert!(short.to_string().contains("tensors, the network has"), "{short}");

    let manifest = path.join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap().replace("\"schema_version\": 1", "\"schema_version\": 99");
    std::fs::write(&manifest, text).unwrap();
    let other = NeuralPolicy::load(&path).unwrap_err();
    assert!(matches!(other, PolicyError::Mismatch { .. }) && other.to_string().contains("99"), "{other}");
    std::fs::write(&manifest, "{ not json").unwrap();
    assert!(matches!(NeuralPolicy::load(&path), Err(PolicyError::Corrupt { .. })));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_shipped_policies_load_and_decide_within_the_budgets() {
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    for name in ["grow.policy", "lean.policy", "budget.policy"] {
        let policy = NeuralPolicy::load(&folder.join(name)).unwrap_or_else(|e| panic!("policies/{name}: {e}"));
        let decisions =
            Controller::new(config()).unwrap().with_policy(Arc::new(policy)).step(&varied_system(4, 1, 3, 12));
        assert!(decisions.fallback.is_none(), "{name}: {:?}", decisions.fallback);
        assert!(germinated(&decisions).len() <= config().max_germinations_per_epoch, "{name}");
    }
}
