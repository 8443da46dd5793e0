//! Soak: thousands of seeds in one layer, random lifecycle operations interleaved with forward
//! and backward passes, grafting steps, epoch ends and checkpoint save/restore cycles. After every
//! operation every invariant holds; at the end the state equals a replay of the same operations
//! on a fresh model that was never saved or restored.
//!
//! CI runs 1,000 seeds and 3,000 operations; `MORPHOGEN_SOAK_SEEDS=10000 MORPHOGEN_SOAK_OPS=100000
//! cargo nextest run --release -p morphogen-checkpoint soak --no-capture` is the long version
//! (about ten times faster in release than in a debug build), which also checks that memory grows
//! less than 5% from the first to the last tenth of the run: the live heap (bytes allocated and not
//! yet freed, counted by this binary's allocator) and resident memory (after handing freed heap
//! pages back to the system, so that the allocator's caching is not taken for a leak).

use crate::common::{options, Net};
use burn::tensor::{Distribution, Tensor};
use morphogen_checkpoint::{Checkpoint, CheckpointDir, Snapshot};
use morphogen_engine::{GraftSignals, SeededLinearConfig, Stage};
use morphogen_testkit::{device, B};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The test MLP with a seed per feature of its first layer: `seeds` features and seeds.
fn wide(seeds: usize) -> Net<B> {
    let layer = |inputs, features, seeds, name: &str| {
        SeededLinearConfig::new(inputs, features)
            .with_num_seeds(seeds)
            .with_name(name.into())
            .with_options(options())
            .init(&device())
    };
    Net { fc1: layer(8, seeds, seeds, "fc1"), fc2: layer(seeds, 2, 2, "fc2") }
}

/// What the soak does; the lifecycle operations are replayed, the rest is not.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// Move `seed` to `to` (germinating it from DORMANT).
    Move { seed: usize, to: Stage },
    /// A grafting step of every GRAFTING seed.
    Graft,
    /// The epoch's end (embargoes and epochs-in-stage count).
    EndEpoch,
}

fn apply(model: &mut Net<B>, op: Op) {
    // Refusals (an embargo, a gate) are part of the lifecycle: they must leave the state legal.
    let _ = match op {
        Op::Move { seed, to: Stage::Germinated } => model.fc1.request_germination(seed, "residual_mlp", "fixed_ramp"),
        Op::Move { seed, to } => model.fc1.advance(seed, to),
        Op::Graft => model.fc1.graft_step(&GraftSignals::new()),
        Op::EndEpoch => {
            model.fc1.end_epoch();
            Ok(())
        }
    };
}

/// A random operation: mostly a legal move of a random seed, sometimes a step or an epoch end.
/// Seeds holding a blueprint are kept at most a quarter of the layer: at that level a move
/// that would germinate one more moves a seed already grown instead. Live state then stays level
/// (the layer's bank holds as many rows from the first tenth of the run to its end), so memory
/// growth can only be a leak.
fn random_op(model: &Net<B>, rng: &mut StdRng) -> Op {
    match rng.random_range(0..100) {
        0..=4 => Op::Graft,
        5 => Op::EndEpoch,
        _ => {
            let table = model.fc1.core.table();
            let mut seed = rng.random_range(0..table.len());
            if table[seed].stage == Stage::Dormant && holding_blueprints(model) >= table.len() / 4 {
                while table[seed].stage == Stage::Dormant {
                    seed = rng.random_range(0..table.len());
                }
            }
            let next = table[seed].stage.allowed_next();
            match next.len() {
                0 => Op::Graft,
                n => Op::Move { seed, to: next[rng.random_range(0..n)] },
            }
        }
    }
}

/// Seeds of the first layer that hold a blueprint (a row of its bank).
fn holding_blueprints(model: &Net<B>) -> usize {
    model.fc1.core.table().iter().filter(|r| r.stage.holds_blueprint()).count()
}

/// The system allocator, counting the bytes allocated and not yet freed.
struct Counting;

static LIVE_HEAP: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call goes straight to the system allocator; the counter only adds up sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_HEAP.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_HEAP.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_HEAP.fetch_add(new_size, Ordering::Relaxed);
        LIVE_HEAP.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Memory at one point of the soak.
#[derive(Clone, Copy)]
struct Memory {
    live_heap: usize,
    resident: u64,
    holding_blueprints: usize,
}

impl Memory {
    fn now(model: &Net<B>) -> Self {
        // SAFETY: malloc_trim only returns free heap pages to the system.
        unsafe { libc::malloc_trim(0) };
        let live_heap = LIVE_HEAP.load(Ordering::Relaxed);
        Self { live_heap, resident: rss().unwrap_or(0), holding_blueprints: holding_blueprints(model) }
    }
}

impl std::fmt::Display for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mb = |bytes: f64| bytes / 1e6;
        write!(f, "{:.2}/{:.1} MB ({})", mb(self.live_heap as f64), mb(self.resident as f64), self.holding_blueprints)
    }
}

/// Resident memory of this process, bytes (Linux).
fn rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse::<u64>().ok()?;
    Some(kb * 1024)
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn thousands_of_seeds_survive_random_lifecycles_passes_and_checkpoint_cycles() {
    let (seeds, ops) = (env("MORPHOGEN_SOAK_SEEDS", 1000), env("MORPHOGEN_SOAK_OPS", 3000));
    let root = tempfile::tempdir().unwrap();
    let dir = CheckpointDir::open(root.path()).unwrap();
    let mut rng = StdRng::seed_from_u64(11);
    let mut model = wide(seeds);
    // Filled up front, so the record of operations does not grow through the memory check.
    let (mut done, mut memory) = (vec![Op::EndEpoch; ops], Vec::new());
    for (i, slot) in done.iter_mut().enumerate() {
        let op = random_op(&model, &mut rng);
        apply(&mut model, op);
        *slot = op;
        model.fc1.check_invariants().unwrap_or_else(|e| panic!("after op {i} {op:?}: {e}"));
        if i % 50 == 0 {
            let x = Tensor::<B, 2>::random([16, 8], Distribution::Normal(0.0, 1.0), &device());
            let y = model.forward(x);
            assert!(y.clone().is_finite().all().into_scalar(), "finite output after op {i}");
            let _grads = y.sum().backward();
        }
        if i % 500 == 499 {
            let saved = dir.save(&Snapshot::of(&model).unwrap().with_progress(0, i as u64)).unwrap();
            let mut restored = wide(seeds);
            Checkpoint::read(&saved.path).unwrap().restore(&mut restored).unwrap();
            assert_eq!(restored.fc1.core.table(), model.fc1.core.table(), "restore at op {i}");
            model = restored;
        }
        // At the end of each tenth of the run, each time right after the same operations.
        if (i + 1) % (ops / 10).max(1) == 0 {
            memory.push(Memory::now(&model));
        }
    }
    let mut replay = wide(seeds);
    for &op in &done {
        apply(&mut replay, op);
    }
    assert_eq!(replay.fc1.core.table(), model.fc1.core.table(), "save/restore cycles changed nothing");
    assert_eq!(replay.fc1.core.seed_infos(), model.fc1.core.seed_infos(), "alphas too");
    let reached: std::collections::BTreeSet<Stage> = model.fc1.core.table().iter().map(|r| r.stage).collect();
    assert!(reached.len() >= 5, "the soak reached many stages: {reached:?}");
    if ops >= 20_000 {
        let tenths: Vec<String> = memory.iter().map(Memory::to_string).collect();
        eprintln!(
            "live heap/resident memory at the end of each tenth (seeds holding a blueprint): {}",
            tenths.join(", ")
        );
        let (first, last) = (memory[0], *memory.last().unwrap());
        let grew = |a: f64, b: f64| b / a - 1.0;
        assert!(grew(first.live_heap as f64, last.live_heap as f64) < 0.05, "the live heap grew more than 5%");
        assert!(grew(first.resident as f64, last.resident as f64) < 0.05, "resident memory grew more than 5%");
    }
}
