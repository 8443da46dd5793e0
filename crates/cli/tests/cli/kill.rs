//! Kill anywhere, lose nothing: `morphogen train` killed with SIGKILL at random moments (in
//! start-up, inside steps, checkpoint writes, log appends) and resumed each time ends exactly
//! where the same run never interrupted ends: the final checkpoint's model tensors bit for bit
//! (the optimizer's record by size, see [`final_tensors`]), `metrics.jsonl` and `layers.jsonl`
//! line for line, `events.jsonl` record for record but for the wall-clock time.
//!
//! Each killed process serves its metrics; the step count it reports just before the kill, less
//! the progress of the checkpoint the next process resumes from, is the work that kill cost
//! (steps trained again).
//!
//! A few kills in CI; `MORPHOGEN_KILLS=100 cargo nextest run -p morphogen-cli kill` for the long
//! version, which prints how many kills hit a resumed run and the steps each kill cost.

use crate::common::{morphogen, scratch, MetricsRun};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Epochs of the run under test: enough that `kills` kills, each costing the run about half an
/// epoch of progress, do not finish it (at least 5).
fn epochs(kills: usize) -> usize {
    (kills * 2 / 5).max(5)
}

/// Optimizer steps of one of its epochs (600 training images, batches of 50); a checkpoint is
/// written at each epoch's end.
const STEPS_PER_EPOCH: u64 = 12;

/// `morphogen train` of a small run with an eager controller (seeds germinate, graft and are
/// judged within the run) into `<runs>/<name>`.
fn command(runs: &Path, name: &str, epochs: usize, resume: bool) -> std::process::Command {
    let config = runs.join("eager.toml");
    std::fs::write(
        &config,
        "[controller]\npatience = 0\nmax_germinations_per_epoch = 3\nmax_active_per_layer = 3\nmax_active_total = 6\n\
         [model]\ngraft_ramp_steps = 8\n",
    )
    .unwrap();
    let mut cmd = morphogen();
    cmd.args(["train", "--quiet", "--runs-dir", runs.to_str().unwrap(), "--name", name])
        .args(["--epochs", &epochs.to_string()])
        .args(["--train-subset", "600", "--valid-subset", "200", "--batch-size", "50"])
        .args(["--config", config.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if resume {
        cmd.arg("--resume");
    }
    cmd
}

/// The step of the newest checkpoint in the run folder (`checkpoints/step-<step>[-<n>]`), if any.
fn newest_step(run: &Path) -> Option<u64> {
    let entries = std::fs::read_dir(run.join("checkpoints")).ok()?;
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("step-")?.split('-').next()?.parse().ok())
        .max()
}

/// Whether the run folder holds a checkpoint to resume from.
fn has_checkpoint(run: &Path) -> bool {
    newest_step(run).is_some()
}

/// The newest checkpoint's tensors by name. Every model tensor is compared bit for bit; the
/// optimizer's state is one serialized record keyed by Burn's parameter ids, which are drawn anew
/// in every process, so it is compared by size (its values show in every later step's loss).
fn final_tensors(run: &Path) -> Vec<(String, Vec<u8>)> {
    let mut steps: Vec<PathBuf> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("step-"))
        .collect();
    steps.sort();
    let bytes = std::fs::read(steps.last().unwrap().join("tensors.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Vec<u8>)> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let data = view.data().to_vec();
            if name == "optimizer.record" {
                (name, data.len().to_le_bytes().to_vec())
            } else {
                (name, data)
            }
        })
        .collect();
    tensors.sort();
    tensors
}

/// The records of a JSONL log, without the wall-clock `time` of events.
fn records(run: &Path, log: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(run.join(log)).unwrap_or_default();
    text.lines()
        .map(|line| {
            let mut record: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(map) = record.as_object_mut() {
                map.remove("time");
            }
            record
        })
        .collect()
}

/// Waits until `run` has taken a step (or exited, or `ready` holds); returns how long that took.
fn until_training(run: &mut MetricsRun, ready: impl Fn() -> bool) -> Duration {
    let waiting = Instant::now();
    while !(ready() && run.steps().is_some_and(|steps| steps > 0)) && run.alive() {
        assert!(waiting.elapsed().as_secs() < 120, "no training step within 120 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    waiting.elapsed()
}

#[test]
fn a_run_killed_anywhere_and_resumed_ends_as_if_never_interrupted() {
    let kills: usize = std::env::var("MORPHOGEN_KILLS").ok().and_then(|k| k.parse().ok()).unwrap_or(4);
    let epochs = epochs(kills);
    let runs = scratch("kill");
    let (whole, cut) = (runs.join("whole"), runs.join("cut"));
    // The uninterrupted run, timed: its start-up (to the first step) and one epoch.
    let mut run = MetricsRun::spawn(command(&runs, "whole", epochs, false));
    let start_up = until_training(&mut run, || true);
    let started = Instant::now();
    assert!(run.wait().success(), "the uninterrupted run finishes");
    let epoch = started.elapsed() / epochs as u32;

    let mut rng = StdRng::seed_from_u64(7);
    let (mut resumed, mut in_start_up, mut redone) = (0usize, 0usize, Vec::new());
    for kill in 0..kills {
        let resume = has_checkpoint(&cut);
        let from = newest_step(&cut).unwrap_or(0);
        let mut run = MetricsRun::spawn(command(&runs, "cut", epochs, resume));
        if resume && kill % 4 == 3 {
            // Every fourth kill lands in start-up: reading the checkpoint, superseding records.
            std::thread::sleep(start_up.mul_f64(rng.random_range(0.0..1.0)));
            in_start_up += 1;
        } else {
            // The others within an epoch and a half of training (steps, log appends, checkpoint
            // writes); a fresh run is first let reach its first checkpoint, so every kill leaves
            // progress.
            until_training(&mut run, || has_checkpoint(&cut));
            std::thread::sleep(epoch.mul_f64(rng.random_range(0.0..1.5)));
        }
        let steps = run.steps();
        drop(run); // SIGKILL
        if let Some(steps) = steps {
            redone.push((from + steps).saturating_sub(newest_step(&cut).unwrap_or(0)));
        }
        resumed += usize::from(resume);
    }
    let finish = command(&runs, "cut", epochs, has_checkpoint(&cut)).status().unwrap();
    assert!(finish.success(), "the run finishes after {kills} kills");
    eprintln!(
        "{kills} kills ({in_start_up} in start-up), {resumed} of them in a resumed run; every resume recovered; \
         {epochs} epochs, start-up {start_up:.1?}, an epoch {epoch:.1?}"
    );
    redone.sort_unstable();
    if let Some(&most) = redone.last() {
        let mean = redone.iter().sum::<u64>() as f64 / redone.len() as f64;
        let median = redone[redone.len() / 2];
        eprintln!(
            "steps trained again per kill ({} kills measured): mean {mean:.1}, median {median}, most {most}",
            redone.len()
        );
        assert!(most <= STEPS_PER_EPOCH, "a kill cost at most the epoch in progress");
    }

    let (whole_tensors, cut_tensors) = (final_tensors(&whole), final_tensors(&cut));
    assert!(whole_tensors.len() > 2, "the checkpoint holds the model");
    for ((name, a), (other, b)) in whole_tensors.iter().zip(&cut_tensors) {
        assert!(name == other && a == b, "{name} differs from {other}");
    }
    assert_eq!(whole_tensors.len(), cut_tensors.len());
    for log in ["metrics.jsonl", "layers.jsonl", "events.jsonl"] {
        assert_eq!(records(&whole, log), records(&cut, log), "{log}");
    }
    assert!(!records(&whole, "events.jsonl").is_empty(), "seeds moved through their lifecycle");
    std::fs::remove_dir_all(&runs).ok();
}
