//! The reference implementation: the same semantics as the vectorized path, one seed at a time.
//!
//! This is the oracle the tests compare the fast paths with, and the "legacy" baseline of the
//! benchmarks: it loops over seeds on the host and reads seed state back from the device, the way
//! the seed plan's own implementation did. Never use it for training.

use crate::blueprint::{BlueprintInput, BlueprintOp, BlueprintSpec};
use crate::chunks::ChunkMap;
use crate::seeds::SeedCore;
use crate::telemetry::narrow_for_reshape;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use morphogen_contracts::{SeedHealth, Stage};

/// Applies every seed of `core` to the host output `h` (`[a, features, p]`) in a per-seed loop.
pub fn apply<B: Backend>(core: &SeedCore<B>, h: Tensor<B, 3>, spatial: Option<[usize; 3]>) -> Tensor<B, 3> {
    let [a, _, p] = h.dims();
    let state = &core.params().state;
    let (table, alpha) = state.read();
    let ablated = core.ablated_seeds();
    let chunks = core.chunks();
    let parts = (0..chunks.seeds())
        .map(|seed| {
            let range = chunks.range(seed);
            let c = range.len();
            let host = h.clone().narrow(1, range.start, c);
            let row = table[seed];
            let (Some(blueprint), Some(slot)) = (row.blueprint, row.slot) else {
                return host;
            };
            let gate = match row.stage {
                Stage::Grafting => alpha[seed],
                Stage::Evaluating if ablated.contains(&seed) => 0.0,
                Stage::Stabilization | Stage::Evaluating | Stage::FineTuning | Stage::Fossilized => 1.0,
                _ => 0.0,
            };
            let spec = core.blueprints().get(blueprint);
            let bank = core.params().banks[blueprint].as_ref().expect("held blueprint has a bank");
            let params: Vec<_> = bank
                .stacked()
                .into_iter()
                .map(|w| {
                    let w = w.narrow(0, slot, 1);
                    if core.lifecycle().trains_blueprint(row.stage) {
                        w
                    } else {
                        w.detach()
                    }
                })
                .collect();
            let params = narrow_to_chunk(spec, params, chunks.width(), c);
            let reads = spec.reads(chunks, seed);
            let read = h.clone().narrow(1, reads.start, reads.len());
            let x = read.permute([0, 2, 1]).reshape([1, a * p, reads.len()]);
            let x = if row.stage == Stage::Training { x.detach() } else { x };
            let b = spec.forward(&params, x, spatial);
            let contribution = if row.stage == Stage::Training { b.clone() - b.detach() } else { b * gate };
            host + contribution.reshape([a, p, c]).permute([0, 2, 1])
        })
        .collect();
    Tensor::cat(parts, 1)
}

/// Cuts one row's parameters (sized for the padded width) down to a chunk of `chunk` features:
/// the first op's inputs (when it reads the chunk) and the last op's outputs.
fn narrow_to_chunk<B: Backend>(
    spec: &BlueprintSpec,
    params: Vec<Tensor<B, 3>>,
    width: usize,
    chunk: usize,
) -> Vec<Tensor<B, 3>> {
    let mut params = params.into_iter();
    let parametric: Vec<_> = spec.ops.iter().filter(|op| !matches!(op, BlueprintOp::Act(_))).collect();
    let last = parametric.len() - 1;
    let reads_chunk = spec.input == BlueprintInput::Chunk;
    let mut out = Vec::new();
    for (i, op) in parametric.into_iter().enumerate() {
        let mut weight = params.next().expect("weight");
        match *op {
            BlueprintOp::Dense { bias, .. } => {
                if i == 0 && reads_chunk {
                    weight = weight.narrow(1, 0, chunk);
                }
                if i == last {
                    weight = weight.narrow(2, 0, chunk);
                }
                out.push(weight);
                if bias {
                    let b = params.next().expect("bias");
                    out.push(if i == last { b.narrow(2, 0, chunk) } else { b });
                }
            }
            BlueprintOp::Conv { kernel, .. } => {
                if i == 0 && reads_chunk {
                    let [_, o, _] = weight.dims();
                    let k2 = kernel * kernel;
                    weight =
                        narrow_for_reshape(weight.reshape([1, o, width, k2]), 2, 0, chunk).reshape([1, o, chunk * k2]);
                }
                if i == last {
                    weight = weight.narrow(1, 0, chunk);
                }
                out.push(weight);
                let b = params.next().expect("bias");
                out.push(if i == last { b.narrow(2, 0, chunk) } else { b });
            }
            BlueprintOp::Act(_) => unreachable!("filtered out"),
        }
    }
    out
}

/// Health statistics computed directly from raw host outputs `[samples, features]` (f64, one
/// seed at a time): the definitions the telemetry window must reproduce.
pub fn health(chunks: &ChunkMap, samples: &[Vec<f32>], stage: impl Fn(usize) -> Stage) -> Vec<SeedHealth> {
    let n = samples.len().max(1) as f64;
    (0..chunks.seeds())
        .map(|seed| {
            let range = chunks.range(seed);
            let c = range.len() as f64;
            let column = |i: usize| samples.iter().map(move |row| row[i] as f64);
            let mean_of = |v: &mut dyn Iterator<Item = f64>| v.sum::<f64>() / n;
            let var_of = |i: usize| {
                let m = mean_of(&mut column(i));
                column(i).map(|x| (x - m).powi(2)).sum::<f64>() / n
            };
            let values: Vec<f64> = range.clone().flat_map(column).collect();
            let mean = values.iter().sum::<f64>() / (n * c);
            let variance = values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n * c);
            let feature_vars: f64 = range.clone().map(var_of).sum();
            let totals: Vec<f64> = samples.iter().map(|row| range.clone().map(|i| row[i] as f64).sum()).collect();
            let total_mean = totals.iter().sum::<f64>() / n;
            let total_var = totals.iter().map(|t| (t - total_mean).powi(2)).sum::<f64>() / n;
            let correlation = if range.len() > 1 && feature_vars > 1e-12 {
                ((total_var - feature_vars) / ((c - 1.0) * feature_vars)).clamp(-1.0, 1.0)
            } else {
                0.0
            };
            let dead = range.clone().filter(|&i| column(i).all(|x| x <= 0.0)).count() as f64;
            SeedHealth {
                seed,
                stage: stage(seed),
                alpha: 0.0,
                mean: mean as f32,
                variance: variance as f32,
                dead_ratio: (dead / c) as f32,
                correlation: correlation as f32,
                blueprint_rms: 0.0,
            }
        })
        .collect()
}
