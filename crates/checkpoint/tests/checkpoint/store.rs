//! A checkpoint directory: naming, retention, `latest`, and rollback to the last good state.

use crate::common::*;
use morphogen_checkpoint::{active_seeds, CheckpointDir, CheckpointError, Goal, Retention, Snapshot, TENSOR_FILE};
use morphogen_engine::{SeedAddress, Stage};
use morphogen_testkit::*;

fn steps(dir: &CheckpointDir) -> Vec<u64> {
    dir.list().unwrap().iter().map(|e| e.progress.step).collect()
}

#[test]
fn retention_keeps_the_last_n_and_the_best_k() {
    let root = tempfile::tempdir().unwrap();
    let retention = Retention { keep_last: 2, keep_best: 2, goal: Goal::Minimize };
    let dir = CheckpointDir::open(root.path()).unwrap().with_retention(retention);
    let model = net::<B>(&device());
    let losses = [0.9, 0.2, 0.8, 0.1, 0.7, 0.6, 0.5];
    for (step, loss) in losses.iter().enumerate() {
        let saved = dir.save(&Snapshot::of(&model).unwrap().with_progress(0, step as u64).with_metric(*loss)).unwrap();
        assert!(saved.path.ends_with(format!("step-{step:012}")));
    }
    assert_eq!(steps(&dir), [1, 3, 5, 6], "best two (0.2, 0.1) and newest two");

    let maximize = Retention { keep_last: 1, keep_best: 1, goal: Goal::Maximize };
    let dir = dir.with_retention(maximize);
    let saved = dir.save(&Snapshot::of(&model).unwrap().with_progress(0, 6).with_metric(0.3)).unwrap();
    assert!(saved.path.ends_with("step-000000000006-1"), "a second save at a step gets a suffix");
    assert_eq!(steps(&dir), [5, 6], "highest metric (0.7) and the newest");
}

#[test]
fn latest_skips_damaged_checkpoints() {
    let root = tempfile::tempdir().unwrap();
    let dir = CheckpointDir::open(root.path()).unwrap();
    let model = net::<B>(&device());
    dir.save(&Snapshot::of(&model).unwrap().with_progress(0, 1)).unwrap();
    let newest = dir.save(&Snapshot::of(&model).unwrap().with_progress(0, 2)).unwrap().path;
    let file = newest.join(TENSOR_FILE);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&file, bytes).unwrap();
    assert_eq!(dir.latest().unwrap().progress().step, 1);

    std::fs::remove_dir_all(root.path().join("step-000000000001")).unwrap();
    let err = dir.latest().unwrap_err();
    assert!(matches!(&err, CheckpointError::NoCheckpoint { skipped, .. } if skipped.len() == 1), "{err}");
}

#[test]
fn rollback_restores_the_last_good_state_and_lists_the_active_seeds() {
    let root = tempfile::tempdir().unwrap();
    let dir = CheckpointDir::open(root.path()).unwrap();
    let good = grown::<B>(&device());
    dir.save(&Snapshot::of(&good).unwrap().with_progress(1, 10).with_extra("controller", serde_json::json!(7)))
        .unwrap();
    // A newer checkpoint that is damaged, then training goes wrong.
    let damaged = dir.save(&Snapshot::of(&good).unwrap().with_progress(1, 20)).unwrap().path;
    std::fs::write(damaged.join(TENSOR_FILE), b"not safetensors").unwrap();
    let mut model = good.clone();
    model.fc2.advance(1, Stage::Grafting).unwrap();
    model.fc2.request_germination(0, "residual_mlp", "fixed_ramp").unwrap();
    model.fc2.advance(0, Stage::Training).unwrap();

    let active = active_seeds(&model);
    let address = |layer: &str, seed| SeedAddress { layer: layer.into(), seed };
    let expected = [address("fc1", 0), address("fc1", 2), address("fc1", 3), address("fc2", 0), address("fc2", 1)];
    assert_eq!(active, expected, "TRAINING..FINE_TUNING seeds; GERMINATED fc1/1 is not active");

    let rollback = dir.rollback(&mut model).unwrap();
    assert_eq!(rollback.rolled_back, expected);
    assert_eq!(rollback.checkpoint.progress().step, 10);
    assert_eq!(rollback.checkpoint.extra("controller"), Some(&serde_json::json!(7)));
    assert!(rollback.skipped.is_empty(), "{:?}", rollback.skipped);
    let [quarantined] = &rollback.quarantined[..] else { panic!("{:?}", rollback.quarantined) };
    assert_eq!(quarantined.from, damaged);
    assert!(!damaged.exists() && quarantined.to.join("reason.txt").exists());
    assert_eq!(steps(&dir), [10], "the damaged checkpoint left the directory's list");
    assert_eq!(fingerprint(&model), fingerprint(&good));
}

#[test]
fn verify_all_quarantines_damaged_checkpoints_and_retention_no_longer_counts_them() {
    let root = tempfile::tempdir().unwrap();
    let retention = Retention { keep_last: 2, keep_best: 0, goal: Goal::Minimize };
    let dir = CheckpointDir::open(root.path()).unwrap().with_retention(retention);
    let model = net::<B>(&device());
    let save = |step| dir.save(&Snapshot::of(&model).unwrap().with_progress(0, step)).unwrap().path;
    save(1);
    let flipped = save(2);
    let file = flipped.join(TENSOR_FILE);
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&file, bytes).unwrap();
    assert_eq!(steps(&dir), [1, 2], "a damaged tensor file still has a valid manifest");

    let quarantined = dir.verify_all().unwrap();
    assert_eq!(quarantined.iter().map(|q| q.from.clone()).collect::<Vec<_>>(), [flipped]);
    assert!(quarantined[0].reason.contains("SHA-256"), "{}", quarantined[0].reason);
    assert!(quarantined[0].to.starts_with(root.path().join(morphogen_checkpoint::QUARANTINE_DIR)));
    save(3);
    assert_eq!(steps(&dir), [1, 3], "two restorable checkpoints kept");
    assert!(dir.verify_all().unwrap().is_empty());
}

#[test]
fn rollback_without_a_usable_checkpoint_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let dir = CheckpointDir::open(root.path()).unwrap();
    let saved = dir.save(&Snapshot::of(&grown::<B>(&device())).unwrap()).unwrap();
    let mut other = net::<B>(&device());
    other.fc1 =
        morphogen_engine::SeededLinearConfig::new(6, 10).with_num_seeds(5).with_name("fc1".into()).init(&device());
    let before = fingerprint(&other);
    let err = dir.rollback(&mut other).unwrap_err();
    assert!(err.to_string().contains(&saved.path.display().to_string()), "{err}");
    assert!(saved.path.exists(), "a checkpoint that does not fit the model is not damaged: it stays");
    assert_eq!(fingerprint(&other), before);
}
