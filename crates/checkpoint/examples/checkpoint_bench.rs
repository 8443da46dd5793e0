//! Checkpoint size and save/load time at 10,000 seeds with 1,000 active.
//!
//! `cargo run --release -p morphogen-checkpoint --example checkpoint_bench [-- --reps 5]`
//!
//! Model: one `SeededLinear` 64 -> 10,000 with 10,000 seeds (chunk width 1), 1,000 of them
//! germinated with `residual_mlp` and in TRAINING, on Burn's NdArray CPU backend (autodiff), after
//! one Adam step. Times are medians over `--reps` runs; "save" is snapshot (device read-back) plus
//! the atomic write with fsync; "load" is read + verify (SHA-256) plus restore into a freshly
//! built model whose bank is not allocated.

use burn::backend::{Autodiff, NdArray};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use morphogen_checkpoint::{write_checkpoint, Checkpoint, Snapshot};
use morphogen_engine::{seeded_model, SeededLinear, SeededLinearConfig, Stage};
use std::path::Path;
use std::time::{Duration, Instant};

type B = Autodiff<NdArray<f32>>;

#[derive(Module, Debug)]
struct Bench<B: Backend> {
    fc: SeededLinear<B>,
}

seeded_model!(Bench { fc });

fn fresh(device: &burn::tensor::Device<B>) -> Bench<B> {
    Bench { fc: SeededLinearConfig::new(64, 10_000).with_num_seeds(10_000).with_name("fc".into()).init(device) }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum()
}

/// Median save and load times and the checkpoint's size, with or without optimizer state.
fn measure<O: Optimizer<Bench<B>, B>>(model: &Bench<B>, optimizer: &mut O, with_optimizer: bool, reps: usize) {
    let root = tempfile_dir();
    let device = Default::default();
    let (mut saves, mut loads, mut size) = (Vec::new(), Vec::new(), 0);
    for rep in 0..reps {
        let path = root.join(format!("c{rep}"));
        let start = Instant::now();
        let mut snapshot = Snapshot::of(model).unwrap().with_progress(1, 100);
        if with_optimizer {
            snapshot = snapshot.with_optimizer(optimizer).unwrap();
        }
        write_checkpoint(&path, &snapshot).unwrap();
        saves.push(start.elapsed());
        size = dir_bytes(&path);

        let mut target = fresh(&device);
        let start = Instant::now();
        let checkpoint = Checkpoint::read(&path).unwrap();
        if with_optimizer {
            checkpoint.restore_with_optimizer(&mut target, optimizer).unwrap();
        } else {
            checkpoint.restore(&mut target).unwrap();
        }
        loads.push(start.elapsed());
        assert_eq!(target.fc.core.table(), model.fc.core.table());
    }
    let label = if with_optimizer { "model + Adam state" } else { "model" };
    println!("| {label} | {:.2} MB | {} | {} |", size as f64 / 1e6, ms(median(saves)), ms(median(loads)));
    std::fs::remove_dir_all(&root).ok();
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("morphogen-checkpoint-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let reps = args.iter().position(|a| a == "--reps").and_then(|i| args.get(i + 1)?.parse().ok()).unwrap_or(5);
    let device = Default::default();
    let mut model = fresh(&device);
    let active: Vec<usize> = (0..10_000).step_by(10).collect();
    model.fc.request_germinations(&active, "residual_mlp", "fixed_ramp").unwrap();
    model.fc.advance_many(&active, Stage::Training).unwrap();
    let mut optimizer = AdamConfig::new().init::<B, Bench<B>>();
    let x = Tensor::<B, 2>::random([32, 64], Distribution::Normal(0.0, 1.0), &device);
    let grads = GradientsParams::from_grads(model.fc.forward(x).powi_scalar(2).mean().backward(), &model);
    let model = optimizer.step(1e-3, model, grads);

    let bank_rows = model.fc.core.params().banks[0].as_ref().map_or(0, |b| b.capacity());
    println!(
        "SeededLinear 64 -> 10000, 10000 seeds, {} active (residual_mlp, TRAINING), {bank_rows} bank rows; \
         {} parameters; median of {reps}",
        active.len(),
        model.num_params()
    );
    println!("| checkpoint | size on disk | save | load (read + verify + restore) |");
    println!("|---|---|---|---|");
    measure(&model, &mut optimizer, false, reps);
    measure(&model, &mut optimizer, true, reps);
}
