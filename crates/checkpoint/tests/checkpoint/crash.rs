//! Crash safety: a child process killed by SIGKILL in the middle of a save leaves the previous
//! checkpoint intact and loadable.

use crate::common::*;
use morphogen_checkpoint::{Checkpoint, CheckpointDir, Goal, Retention, Snapshot, TEMP_PREFIX};
use morphogen_engine::SeededLinearConfig;
use morphogen_testkit::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_DIR: &str = "MORPHOGEN_CHECKPOINT_CRASH_CHILD_DIR";
/// The child's test by its full name in this test binary.
const CHILD_TEST: &str = "crash::crash_child_saves_forever";

#[derive(burn::module::Module, Debug)]
struct Big<B: burn::tensor::backend::Backend> {
    fc: morphogen_engine::SeededLinear<B>,
}
morphogen_engine::seeded_model!(Big { fc });

/// Not a test on its own: the child process of the crash test runs it, saving a large model
/// (8 MB a checkpoint) over and over until it is killed.
#[test]
fn crash_child_saves_forever() {
    let Ok(dir) = std::env::var(CHILD_DIR) else { return };
    let mut model = Big::<B> { fc: SeededLinearConfig::new(512, 4096).with_num_seeds(512).init(&device()) };
    model.fc.request_germinations(&[1, 5, 9], "residual_mlp", "fixed_ramp").unwrap();
    let retention = Retention { keep_last: 1000, keep_best: 0, goal: Goal::Minimize };
    let checkpoints = CheckpointDir::open(dir).unwrap().with_retention(retention);
    for step in 1.. {
        checkpoints.save(&Snapshot::of(&model).unwrap().with_progress(0, step)).unwrap();
    }
}

fn temporaries(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(TEMP_PREFIX))
        .count()
}

/// Starts the child and kills it (SIGKILL) as soon as a save is under way; returns whether the
/// kill landed mid-save (a temporary directory was left behind).
fn kill_child_mid_save(dir: &Path) -> bool {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while temporaries(dir) == 0 && Instant::now() < deadline {
        assert!(child.try_wait().unwrap().is_none(), "the child exited before saving");
        std::thread::sleep(Duration::from_micros(200));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    temporaries(dir) > 0
}

#[test]
fn a_save_killed_midway_leaves_the_previous_checkpoint_loadable() {
    let root = tempfile::tempdir().unwrap();
    let model = grown::<B>(&device());
    let retention = Retention { keep_last: 1000, keep_best: 0, goal: Goal::Minimize };
    let checkpoints = CheckpointDir::open(root.path()).unwrap().with_retention(retention);
    let previous = checkpoints.save(&Snapshot::of(&model).unwrap()).unwrap().path;

    let killed_mid_save = (0..5).any(|_| kill_child_mid_save(root.path()));
    assert!(killed_mid_save, "no kill landed in the middle of a save");

    let mut fresh = net::<B>(&device());
    Checkpoint::read(&previous).unwrap().restore(&mut fresh).unwrap();
    assert_eq!(fingerprint(&fresh), fingerprint(&model), "the previous checkpoint is intact");
    for entry in checkpoints.list().unwrap() {
        Checkpoint::read(&entry.path).unwrap_or_else(|e| panic!("a listed checkpoint is damaged: {e}"));
    }
    checkpoints.latest().unwrap();
    // The next save clears what the killed one left behind.
    checkpoints.save(&Snapshot::of(&model).unwrap()).unwrap();
    assert_eq!(temporaries(root.path()), 0);
}
