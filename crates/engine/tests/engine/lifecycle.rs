//! The lifecycle graph, its errors and its bookkeeping: bank rows, embargo, quarantine.

use crate::common::*;
use morphogen_engine::{LifecycleConfig, MorphogenError, SeedOptions, SeededLinear, SeededLinearConfig, Stage};
use proptest::prelude::*;

fn layer(seeds: usize) -> SeededLinear<B> {
    SeededLinearConfig::new(4, 16)
        .with_num_seeds(seeds)
        .with_name("fc1".into())
        .with_options(SeedOptions::new().with_lifecycle(
            LifecycleConfig::new().with_embargo_epochs(2).with_quarantine_after(2).with_bank_page_rows(2),
        ))
        .init(&device())
}

#[derive(Debug, Clone)]
enum Op {
    Germinate(usize, usize),
    Advance(usize, usize),
    Many(Vec<usize>, usize),
    EndEpoch,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..10, 0usize..3).prop_map(|(s, b)| Op::Germinate(s, b)),
        (0usize..10, 0usize..11).prop_map(|(s, t)| Op::Advance(s, t)),
        (proptest::collection::vec(0usize..10, 0..4), 0usize..11).prop_map(|(s, t)| Op::Many(s, t)),
        Just(Op::EndEpoch),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random requests: legal ones move along the graph, illegal ones are errors that change
    /// nothing; the state never leaves the graph.
    #[test]
    fn lifecycle_never_leaves_its_graph(ops in proptest::collection::vec(op(), 1..40)) {
        let mut layer = layer(8);
        let blueprints = ["residual_mlp", "low_rank", "no_such_blueprint"];
        for op in ops {
            let before = layer.core.table().clone();
            let result = match &op {
                Op::Germinate(s, b) => layer.request_germination(*s, blueprints[*b], "fixed_ramp"),
                Op::Advance(s, t) => layer.advance(*s, Stage::ALL[*t]),
                Op::Many(seeds, t) => layer.advance_many(seeds, Stage::ALL[*t]),
                Op::EndEpoch => { layer.end_epoch(); Ok(()) }
            };
            match result {
                Ok(()) => {
                    for (seed, (old, new)) in before.iter().zip(layer.core.table()).enumerate() {
                        if old.stage != new.stage {
                            prop_assert!(old.stage.can_transition_to(new.stage), "seed {}: {} -> {}", seed, old.stage, new.stage);
                        }
                    }
                }
                Err(_) => prop_assert_eq!(&before, layer.core.table(), "a failed {:?} changed state", op),
            }
            layer.check_invariants().unwrap();
        }
    }
}

#[test]
fn illegal_transition_is_a_specific_error_naming_everything() {
    let mut layer = layer(4);
    let err = layer.advance(3, Stage::Fossilized).unwrap_err();
    match &err {
        MorphogenError::IllegalTransition { layer, seed, from, to, allowed } => {
            assert_eq!((layer.as_str(), *seed, *from, *to), ("fc1", 3, Stage::Dormant, Stage::Fossilized));
            assert_eq!(allowed, &vec![Stage::Germinated]);
        }
        other => panic!("wrong error {other:?}"),
    }
    assert!(matches!(layer.seed(9), Err(MorphogenError::UnknownSeed { seed: 9, num_seeds: 4, .. })));
    assert!(matches!(layer.request_germination(0, "nope", "fixed_ramp"), Err(MorphogenError::UnknownBlueprint { .. })));
    assert!(matches!(layer.request_germination(0, "low_rank", "nope"), Err(MorphogenError::UnknownStrategy { .. })));
    let err = layer.request_germination(0, "small_conv", "fixed_ramp").unwrap_err();
    assert!(matches!(err, MorphogenError::UnsupportedBlueprint { .. }), "{err}");
    assert!(err.to_string().contains("residual_mlp"), "suggests usable blueprints: {err}");
    assert!(matches!(
        layer.request_germinations(&[1, 1], "low_rank", "fixed_ramp"),
        Err(MorphogenError::DuplicateSeed { .. })
    ));
    assert!(layer.core.table().iter().all(|r| r.stage == Stage::Dormant), "errors changed state");
}

#[test]
fn batch_requests_are_all_or_nothing() {
    let mut layer = layer(8);
    layer.request_germination(5, "low_rank", "fixed_ramp").unwrap();
    let before = layer.core.table().clone();
    assert!(layer.request_germinations(&[1, 2, 5], "residual_mlp", "fixed_ramp").is_err());
    assert_eq!(&before, layer.core.table());
    layer.request_germinations(&[1, 2, 3], "residual_mlp", "fixed_ramp").unwrap();
    assert_eq!(layer.seed(3).unwrap().blueprint.as_deref(), Some("residual_mlp"));
}

#[test]
fn culled_rows_are_freed_and_reused_embargo_then_quarantine() {
    let mut layer = layer(8);
    layer.request_germinations(&[0, 1, 2], "residual_mlp", "fixed_ramp").unwrap();
    assert_eq!(layer.core.table()[2].slot, Some(2));
    let capacity = layer.core.params().banks[0].as_ref().unwrap().pages.len();
    layer.advance_many(&[1], Stage::Training).unwrap();
    layer.advance(1, Stage::Culled).unwrap();
    assert_eq!(layer.core.table()[1].slot, None, "cull frees the row");
    layer.request_germination(6, "residual_mlp", "fixed_ramp").unwrap();
    assert_eq!(layer.core.table()[6].slot, Some(1), "the freed row is reused");
    assert_eq!(layer.core.params().banks[0].as_ref().unwrap().pages.len(), capacity, "no growth needed");

    // Embargo: CULLED -> DORMANT waits, then germination is allowed again.
    assert!(matches!(layer.advance(1, Stage::Dormant), Err(MorphogenError::Embargoed { epochs_left: 2, .. })));
    layer.end_epoch();
    layer.end_epoch();
    layer.advance(1, Stage::Dormant).unwrap();
    layer.request_germination(1, "low_rank", "fixed_ramp").unwrap();
    // Second failure: quarantined (quarantine_after = 2).
    layer.advance(1, Stage::Training).unwrap();
    layer.advance(1, Stage::Culled).unwrap();
    layer.end_epoch();
    layer.end_epoch();
    layer.advance(1, Stage::Dormant).unwrap();
    let err = layer.request_germination(1, "low_rank", "fixed_ramp").unwrap_err();
    assert!(matches!(err, MorphogenError::Quarantined { failures: 2, .. }), "{err}");
}

#[test]
fn ten_thousand_germinations_are_one_call_and_banks_grow_by_pages() {
    let mut layer = SeededLinearConfig::new(4, 10_000).with_num_seeds(10_000).init::<B>(&device());
    let seeds: Vec<usize> = (0..10_000).collect();
    layer.request_germinations(&seeds, "residual_mlp", "fixed_ramp").unwrap();
    let bank = layer.core.params().banks[0].as_ref().unwrap();
    assert_eq!(bank.capacity(), 10_000);
    let pages: Vec<usize> = bank.pages.iter().map(|p| p.params[0].dims()[0]).collect();
    assert_eq!(pages[..3], [64, 128, 256], "pages double: {pages:?}");
    let x = random([2, 4]);
    assert_eq!(values(layer.forward(x.clone())), values(layer.host.forward(x)));
}

#[test]
fn fossilized_is_terminal_unless_reuse_is_configured() {
    let mut layer = layer(2);
    for stage in [
        Stage::Training,
        Stage::Grafting,
        Stage::Stabilization,
        Stage::Evaluating,
        Stage::FineTuning,
        Stage::Fossilized,
    ] {
        if stage == Stage::Training {
            layer.request_germination(0, "low_rank", "fixed_ramp").unwrap();
        }
        layer.advance(0, stage).unwrap();
    }
    let err = layer.advance(0, Stage::Dormant).unwrap_err();
    assert!(err.to_string().contains("terminal"), "{err}");
    let err = layer.advance(1, Stage::Germinated).unwrap_err();
    assert!(err.to_string().contains("request_germination"), "{err}");
}
