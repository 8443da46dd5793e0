//! The controller on scripted telemetry: plateaus, budgets, embargo, quarantine and gates.

use crate::fixtures::{dormant_layer, germinated, health, layer, seed, system, with_stage};
use morphogen_contracts::{CommandKind, Score, SeedEvaluation, SeedHealth, Stage};
use morphogen_controller::{Controller, ControllerConfig, GrowthTrigger, SiteSelection};

#[test]
fn grows_at_the_unhealthiest_seed_only_on_a_plateau() {
    let config = ControllerConfig { trigger: GrowthTrigger::Plateau, patience: 2, ..Default::default() };
    let mut ctl = Controller::new(config).unwrap();
    let mut l = dormant_layer("fc1", 4);
    l.health.seeds[2] = health(2, 0.01, 0.75); // low variance, mostly dead
    assert!(germinated(&ctl.step(&system(1, 0.50, vec![l.clone()]))).is_empty(), "first epoch sets the baseline");
    assert!(germinated(&ctl.step(&system(2, 0.60, vec![l.clone()]))).is_empty(), "still improving");
    assert!(germinated(&ctl.step(&system(3, 0.6005, vec![l.clone()]))).is_empty(), "one flat epoch < patience");
    let d = ctl.step(&system(4, 0.6008, vec![l.clone()]));
    let grown = germinated(&d);
    assert_eq!(grown[0], ("fc1".into(), 2), "{d:?}");
    assert!(d.commands[0].reason.contains("plateau"), "{}", d.commands[0].reason);
    assert_eq!(ctl.state().epochs_without_progress, 0, "growth restarts the patience count");
}

#[test]
fn the_every_epoch_trigger_grows_from_the_first_epoch_even_while_improving() {
    let config = ControllerConfig {
        trigger: GrowthTrigger::EveryEpoch,
        patience: 5,
        max_germinations_per_epoch: 2,
        ..Default::default()
    };
    let mut ctl = Controller::new(config).unwrap();
    for (epoch, accuracy) in [(1, 0.5), (2, 0.6), (3, 0.7)] {
        let d = ctl.step(&system(epoch, accuracy, vec![dormant_layer("fc1", 8)]));
        assert_eq!(germinated(&d).len(), 2, "epoch {epoch}: {d:?}");
        assert!(d.commands[0].reason.contains("growing every epoch"), "{}", d.commands[0].reason);
    }
    let at_target = ctl.step(&system(4, 0.995, vec![dormant_layer("fc1", 8)]));
    assert!(germinated(&at_target).is_empty(), "the accuracy target still stops growth");
}

#[test]
fn random_sites_ignore_health_but_repeat_for_the_same_epoch() {
    let config = ControllerConfig {
        trigger: GrowthTrigger::EveryEpoch,
        sites: SiteSelection::Random,
        max_germinations_per_epoch: 1,
        ..Default::default()
    };
    let mut l = dormant_layer("fc1", 64);
    l.health.seeds[5] = health(5, 0.0, 1.0); // by far the unhealthiest
    let first =
        |epoch| germinated(&Controller::new(config.clone()).unwrap().step(&system(epoch, 0.5, vec![l.clone()])));
    assert_eq!(first(1), first(1), "the same epoch draws the same site");
    let picks: Vec<usize> = (1..=12).map(|epoch| first(epoch)[0].1).collect();
    assert!(picks.iter().filter(|&&p| p == 5).count() < 6, "health ignored: {picks:?}");
    let distinct: std::collections::BTreeSet<_> = picks.iter().collect();
    assert!(distinct.len() >= 6, "spread over the seeds: {picks:?}");
    let reason = &Controller::new(config).unwrap().step(&system(1, 0.5, vec![l])).commands[0].reason;
    assert!(reason.contains("random dormant seed"), "{reason}");
}

#[test]
fn grow_in_keeps_growth_to_the_named_layers() {
    let config =
        ControllerConfig { grow_in: vec!["mlp.branch".into()], max_germinations_per_epoch: 8, ..Default::default() };
    let mut fc = dormant_layer("blocks.0.mlp.fc1", 4);
    fc.health.seeds[1] = health(1, 0.0, 1.0); // the unhealthiest seed of all, but not in a branch
    let layers = vec![fc, dormant_layer("blocks.0.mlp.branch", 2), dormant_layer("blocks.1.mlp.branch", 2)];
    let grown = germinated(&Controller::new(config.clone()).unwrap().step(&system(1, 0.5, layers.clone())));
    assert_eq!(grown.len(), 4, "{grown:?}");
    assert!(grown.iter().all(|(layer, _)| layer.ends_with("mlp.branch")), "{grown:?}");
    let everywhere = germinated(
        &Controller::new(ControllerConfig { grow_in: vec![], ..config }).unwrap().step(&system(1, 0.5, layers)),
    );
    assert_eq!(everywhere[0], ("blocks.0.mlp.fc1".into(), 1), "an empty list grows anywhere: {everywhere:?}");
}

#[test]
fn no_growth_at_target_accuracy() {
    let mut ctl =
        Controller::new(ControllerConfig { patience: 1, accuracy_target: 0.9, ..Default::default() }).unwrap();
    ctl.step(&system(1, 0.95, vec![dormant_layer("fc1", 4)]));
    assert!(germinated(&ctl.step(&system(2, 0.95, vec![dormant_layer("fc1", 4)]))).is_empty());
}

#[test]
fn budgets_cap_growth() {
    let config = ControllerConfig {
        patience: 1,
        max_germinations_per_epoch: 10,
        max_active_per_layer: 2,
        max_active_total: 3,
        param_budget: 10_000,
        ..Default::default()
    };
    let mut ctl = Controller::new(config.clone()).unwrap();
    let layers = vec![dormant_layer("a", 4), dormant_layer("b", 4)];
    ctl.step(&system(1, 0.5, layers.clone()));
    let grown = germinated(&ctl.step(&system(2, 0.5, layers.clone())));
    assert_eq!(grown.len(), 3, "total cap: {grown:?}");
    assert!(grown.iter().filter(|(l, _)| l == "a").count() <= 2, "per-layer cap: {grown:?}");

    let mut ctl = Controller::new(ControllerConfig { param_budget: 250, ..config }).unwrap();
    ctl.step(&system(1, 0.5, layers.clone()));
    assert_eq!(germinated(&ctl.step(&system(2, 0.5, layers))).len(), 2, "100 params each, budget 250");
}

#[test]
fn embargoed_and_quarantined_seeds_do_not_grow() {
    let mut ctl =
        Controller::new(ControllerConfig { patience: 1, max_germinations_per_epoch: 10, ..Default::default() })
            .unwrap();
    let mut l = dormant_layer("fc1", 3);
    l.seeds[0].embargo_epochs_left = 2;
    l.seeds[1].failures = 3;
    ctl.step(&system(1, 0.5, vec![l.clone()]));
    assert_eq!(germinated(&ctl.step(&system(2, 0.5, vec![l]))), vec![("fc1".to_string(), 2)]);
}

fn only(d: &morphogen_contracts::Decisions) -> (Stage, String) {
    match &d.commands[..] {
        [c] => match c.kind {
            CommandKind::Advance { to } => (to, c.reason.clone()),
            _ => panic!("{c:?}"),
        },
        other => panic!("expected one command, got {other:?}"),
    }
}

#[test]
fn training_gate_passes_bounded_learning_and_culls_the_rest() {
    let mut ctl = Controller::new(ControllerConfig::default()).unwrap();
    let learned = SeedHealth { blueprint_rms: 0.05, ..health(0, 1.0, 0.0) };
    assert_eq!(
        only(&ctl.step(&system(1, 0.5, vec![with_stage(Stage::Training, 1, learned.clone())]))).0,
        Stage::Grafting
    );
    let exploded = SeedHealth { blueprint_rms: f32::NAN, ..learned.clone() };
    let (to, why) = only(&ctl.step(&system(2, 0.5, vec![with_stage(Stage::Training, 1, exploded)])));
    assert_eq!(to, Stage::Culled);
    assert!(why.contains("training gate failed"), "{why}");
    let silent = SeedHealth { blueprint_rms: 0.0, ..learned.clone() };
    assert_eq!(only(&ctl.step(&system(3, 0.5, vec![with_stage(Stage::Training, 1, silent)]))).0, Stage::Culled);
    assert!(
        ctl.step(&system(4, 0.5, vec![with_stage(Stage::Training, 0, learned)])).commands.is_empty(),
        "not yet due"
    );
}

#[test]
fn the_evaluation_gate_asks_a_contribution_above_its_noise() {
    let config = ControllerConfig { min_contribution_z: 2.0, ..Default::default() };
    let judged = |stderr: f32| {
        let mut s = system(1, 0.5, vec![with_stage(Stage::Evaluating, 1, health(0, 1.0, 0.0))]);
        s.evaluations = vec![SeedEvaluation {
            seed: morphogen_contracts::SeedAddress { layer: "fc1".into(), seed: 0 },
            loss_with: 0.5,
            loss_without: 0.6,
            accuracy_with: 0.8,
            accuracy_without: 0.79,
            contribution_stderr: stderr,
            ablated_together: 1,
        }];
        only(&Controller::new(config.clone()).unwrap().step(&s))
    };
    let (to, why) = judged(0.04);
    assert_eq!(to, Stage::FineTuning, "0.1 is 2.5 standard errors: {why}");
    let (to, why) = judged(0.06);
    assert_eq!(to, Stage::Culled, "0.1 is 1.7 standard errors: noise");
    assert!(why.contains("+- 0.0600") && why.contains("minimum +0.1200"), "{why}");
    let refused = Controller::new(ControllerConfig { min_contribution_z: -1.0, ..Default::default() });
    assert!(refused.unwrap_err().to_string().contains("min_contribution_z"));
}

#[test]
fn evaluation_and_fine_tuning_gates() {
    let mut ctl = Controller::new(ControllerConfig::default()).unwrap();
    let h = health(0, 1.0, 0.0);
    let eval = |loss_with: f32| SeedEvaluation {
        seed: morphogen_contracts::SeedAddress { layer: "fc1".into(), seed: 0 },
        loss_with,
        loss_without: 0.6,
        accuracy_with: 0.8,
        accuracy_without: 0.79,
        contribution_stderr: 0.0,
        ablated_together: 1,
    };
    let mut s = system(1, 0.5, vec![with_stage(Stage::Evaluating, 1, h.clone())]);
    assert!(ctl.step(&s).commands.is_empty(), "waits for a measurement");
    s.evaluations = vec![eval(0.5)];
    assert_eq!(only(&ctl.step(&s)).0, Stage::FineTuning);

    let mut later = system(2, 0.5, vec![with_stage(Stage::FineTuning, 1, h.clone())]);
    later.metrics.val_loss = 0.4; // accuracy unchanged, loss improved
    let (to, why) = only(&ctl.step(&later));
    assert_eq!(to, Stage::Fossilized, "{why}");

    s.evaluations = vec![eval(0.7)];
    assert_eq!(only(&ctl.step(&s)).0, Stage::Culled, "a seed that hurts is culled");
    let mut worse = system(3, 0.5, vec![with_stage(Stage::FineTuning, 1, h)]);
    worse.metrics.val_loss = 0.6;
    assert!(ctl.step(&worse).commands.is_empty(), "no baseline on record: take one, judge later");
    worse.metrics.val_loss = 0.9;
    assert_eq!(only(&ctl.step(&worse)).0, Stage::Culled, "no improvement over the baseline: cull");

    let mut ctl = Controller::new(ControllerConfig::default()).unwrap();
    let mut accurate = system(4, 0.5, vec![with_stage(Stage::FineTuning, 1, health(0, 1.0, 0.0))]);
    assert!(ctl.step(&accurate).commands.is_empty(), "baseline taken");
    accurate.metrics.val_loss = 0.6;
    accurate.metrics.val_accuracy = 0.55;
    assert_eq!(only(&ctl.step(&accurate)).0, Stage::Fossilized, "higher accuracy counts as improvement");
}

#[test]
fn queue_limit_and_reset_after_embargo() {
    let mut ctl = Controller::new(ControllerConfig { max_training: 1, ..Default::default() }).unwrap();
    let l = layer(
        "fc1",
        vec![seed(0, Stage::Training), seed(1, Stage::Germinated), seed(2, Stage::Culled)],
        (0..3).map(|i| health(i, 1.0, 0.0)).collect(),
    );
    let mut l0 = l.clone();
    l0.seeds[0].epochs_in_stage = 0;
    let d = ctl.step(&system(1, 0.5, vec![l0]));
    assert!(!d.commands.iter().any(|c| c.target.seed == 1), "queue full: {d:?}");
    assert!(d
        .commands
        .iter()
        .any(|c| c.target.seed == 2 && matches!(c.kind, CommandKind::Advance { to: Stage::Dormant })));
}

#[test]
fn train_at_once_promotes_germinations_into_free_training_slots() {
    let config = ControllerConfig {
        trigger: GrowthTrigger::EveryEpoch,
        max_germinations_per_epoch: 3,
        max_training: 3,
        train_at_once: true,
        ..Default::default()
    };
    let mut ctl = Controller::new(config).unwrap();
    let mut l = dormant_layer("fc1", 6);
    (l.seeds[0].stage, l.seeds[0].epochs_in_stage) = (Stage::Training, 0);
    let d = ctl.step(&system(1, 0.5, vec![l]));
    let grown = germinated(&d);
    assert_eq!(grown.len(), 3, "{d:?}");
    let promoted: Vec<_> = d
        .commands
        .iter()
        .filter(|c| matches!(c.kind, CommandKind::Advance { to: Stage::Training }))
        .map(|c| (c.target.layer.clone(), c.target.seed))
        .collect();
    assert_eq!(promoted, grown[..2], "two of three slots were free: the first two germinations take them");
    let last_germination = d.commands.iter().rposition(|c| matches!(c.kind, CommandKind::Germinate { .. }));
    let first_promotion =
        d.commands.iter().position(|c| matches!(c.kind, CommandKind::Advance { to: Stage::Training }));
    assert!(last_germination < first_promotion, "promotions follow the germinations: {d:?}");
    assert!(d.commands.last().unwrap().reason.contains("promoted at once"), "{d:?}");

    let off = ControllerConfig { train_at_once: false, ..ctl.config().clone() };
    let d = Controller::new(off).unwrap().step(&system(1, 0.5, vec![dormant_layer("fc1", 6)]));
    assert!(d.commands.iter().all(|c| matches!(c.kind, CommandKind::Germinate { .. })), "off: only germinations");
}

#[test]
fn non_finite_metrics_order_a_rollback() {
    let mut ctl = Controller::new(ControllerConfig::default()).unwrap();
    let mut s = system(1, 0.5, vec![dormant_layer("fc1", 2)]);
    s.metrics.train_loss = f32::NAN;
    let d = ctl.step(&s);
    assert!(d.rollback.as_deref().is_some_and(|r| r.contains("non-finite")), "{d:?}");
    let json = serde_json::to_string(&d).unwrap();
    assert!(json.contains("rollback"));
}

#[test]
fn bad_config_is_rejected_with_the_field_named() {
    let err = Controller::new(ControllerConfig { accuracy_target: 1.5, ..Default::default() }).unwrap_err();
    assert!(err.to_string().contains("accuracy_target"), "{err}");
    let err = Controller::new(ControllerConfig { grow_in: vec![String::new()], ..Default::default() }).unwrap_err();
    assert!(err.to_string().contains("grow_in"), "{err}");
}

#[test]
fn a_language_model_plateaus_on_perplexity_not_accuracy() {
    let config =
        ControllerConfig { trigger: GrowthTrigger::Plateau, patience: 1, plateau_delta: 0.01, ..Default::default() };
    let mut ctl = Controller::new(config).unwrap();
    let lm = |epoch, val_loss| {
        let mut s = system(epoch, 0.3, vec![dormant_layer("blocks.0.mlp.fc1", 2)]);
        s.metrics.score = Score::NegativePerplexity;
        s.metrics.val_loss = val_loss;
        s
    };
    assert!(germinated(&ctl.step(&lm(1, 2.0))).is_empty(), "first epoch sets the best score");
    // Accuracy is flat, but perplexity falls from e^2 to e^1.5: progress, no growth.
    assert!(germinated(&ctl.step(&lm(2, 1.5))).is_empty(), "perplexity improved");
    let d = ctl.step(&lm(3, 1.5));
    assert!(!germinated(&d).is_empty(), "flat perplexity is a plateau: {d:?}");
    let reason = &d.commands[0].reason;
    assert!(reason.contains("negative perplexity"), "{reason}");
}

/// The service answers a request with the run's own controller's decisions, and tells the run
/// when it cannot answer (moving the message to the dead letters).
#[test]
fn the_service_answers_requests_and_refuses_what_is_not_one() {
    use morphogen_bus::{Bus, InProcessBus, Outgoing, Reader};
    use morphogen_controller::{ControllerService, DecisionReply, DecisionRequest, Handled, Refusal, ServiceOptions};
    use serde::Deserialize;
    use std::time::Duration;

    let mut run = InProcessBus::new();
    let options = ServiceOptions { wait: Duration::from_millis(20), ..Default::default() };
    let mut service = ControllerService::new(run.clone(), "svc", options);
    let config = ControllerConfig { patience: 0, ..Default::default() };
    let controller = Controller::new(config).unwrap();
    let system = system(2, 0.5, vec![dormant_layer("fc1", 4)]);
    run.announce("r").unwrap();
    run.publish(Outgoing::state("r", 10, &DecisionRequest::json(&controller, &system))).unwrap();
    run.publish(Outgoing::state("r", 11, &serde_json::json!({"config": "nonsense"}))).unwrap();
    let mut handled = Vec::new();
    for _ in 0..10 {
        handled.extend(service.poll().unwrap());
    }
    assert!(matches!(&handled[0], Handled::Answered { run, step: 10, .. } if run == "r"), "{handled:?}");
    assert!(matches!(&handled[1], Handled::Refused { reason, .. } if reason.contains("not a decision request")));

    let mut expected = controller.clone();
    let reply = run.receive(Reader::trainer("r"), Duration::from_secs(1)).unwrap().unwrap();
    let reply = DecisionReply::deserialize(&reply.payload).unwrap();
    assert_eq!(reply.decisions, expected.step(&system));
    assert_eq!(&reply.state, expected.state());
    let refusal = run.receive(Reader::trainer("r"), Duration::from_secs(1)).unwrap().unwrap();
    assert_eq!(refusal.envelope.sender, "svc");
    assert!(Refusal::deserialize(&refusal.payload).unwrap().refused.contains("not a decision request"));
    assert_eq!(run.dead_letters().len(), 1);
}
