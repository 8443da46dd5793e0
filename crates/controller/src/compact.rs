//! The compact wire form of a [`SystemState`] in a decision request: every layer's per-seed
//! fields as columns. A column that is an arithmetic sequence (seed ids, chunk bounds, a
//! constant) travels as two numbers, any other as its little-endian bytes in base64; the rest
//! of the state as JSON. A 10,000-seed layer takes a few hundred kilobytes instead of about
//! three megabytes of JSON objects, and converts in milliseconds. Lossless: decoding gives the
//! state back bit for bit.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use morphogen_contracts::{
    GlobalMetrics, LayerHealthReport, LayerState, Score, SeedAddress, SeedEvaluation, SeedHealth, SeedInfo, Stage,
    SystemState,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// A column of whole numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Ints<'a> {
    /// `start + step * i` for every row `i`.
    Sequence { start: i64, step: i64 },
    /// Little-endian `u32`s, base64.
    Bytes(#[serde(borrow)] Cow<'a, str>),
}

/// A column of `f32`s (bit patterns, so NaN and infinities travel too).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Floats<'a> {
    /// The same value in every row, as its bits.
    Same(u32),
    /// Little-endian `f32`s, base64.
    Bytes(#[serde(borrow)] Cow<'a, str>),
}

/// One layer, columnar.
#[derive(Serialize, Deserialize)]
struct CompactLayer<'a> {
    layer: String,
    host: String,
    blueprint_params: BTreeMap<String, usize>,
    rows: usize,
    #[serde(borrow)]
    seed: Ints<'a>,
    /// Stage indices (`Stage::ALL` order), one byte a seed, base64.
    #[serde(borrow)]
    stage: Cow<'a, str>,
    #[serde(borrow)]
    alpha: Floats<'a>,
    #[serde(borrow)]
    epochs_in_stage: Ints<'a>,
    #[serde(borrow)]
    embargo_epochs_left: Ints<'a>,
    #[serde(borrow)]
    failures: Ints<'a>,
    #[serde(borrow)]
    chunk_start: Ints<'a>,
    #[serde(borrow)]
    chunk_end: Ints<'a>,
    /// `(row, blueprint, strategy)` of the seeds that name either.
    names: Vec<(usize, Option<String>, Option<String>)>,
    #[serde(borrow)]
    health: CompactHealth<'a>,
}

/// A layer's health report, columnar; its seed ids, stages and alphas are left out when they
/// equal the layer's.
#[derive(Serialize, Deserialize)]
struct CompactHealth<'a> {
    layer: String,
    samples: u64,
    rows: usize,
    #[serde(borrow)]
    seed: Option<Ints<'a>>,
    #[serde(borrow)]
    stage: Option<Cow<'a, str>>,
    #[serde(borrow)]
    alpha: Option<Floats<'a>>,
    #[serde(borrow)]
    mean: Floats<'a>,
    #[serde(borrow)]
    variance: Floats<'a>,
    #[serde(borrow)]
    dead_ratio: Floats<'a>,
    #[serde(borrow)]
    correlation: Floats<'a>,
    #[serde(borrow)]
    blueprint_rms: Floats<'a>,
}

/// The whole state: columnar layers; metrics and evaluations with their numbers as bits.
#[derive(Serialize, Deserialize)]
struct CompactState<'a> {
    epoch: u32,
    step: u64,
    score: Score,
    /// Train loss, train accuracy, validation loss and accuracy.
    #[serde(borrow)]
    metrics: Floats<'a>,
    #[serde(borrow)]
    layers: Vec<CompactLayer<'a>>,
    /// Each measured seed, and its loss and accuracy with and without it.
    #[serde(borrow)]
    evaluations: Vec<(SeedAddress, Floats<'a>)>,
    params_added: usize,
}

/// Serializes `system` in the compact form (for `#[serde(serialize_with)]`).
pub(crate) fn serialize<S: Serializer>(system: &&SystemState, serializer: S) -> Result<S::Ok, S::Error> {
    let m = &system.metrics;
    let evaluation = |e: &SeedEvaluation| {
        let together = e.ablated_together as f32;
        let numbers =
            [e.loss_with, e.loss_without, e.accuracy_with, e.accuracy_without, e.contribution_stderr, together];
        (e.seed.clone(), all_bytes(&numbers))
    };
    CompactState {
        epoch: m.epoch,
        step: m.step,
        score: m.score,
        metrics: all_bytes(&[m.train_loss, m.train_accuracy, m.val_loss, m.val_accuracy]),
        layers: in_parallel(system.layers.iter().collect(), |l| l.seeds.len(), compact_layer),
        evaluations: system.evaluations.iter().map(evaluation).collect(),
        params_added: system.params_added,
    }
    .serialize(serializer)
}

/// Reads a state written by [`serialize`] (for `#[serde(deserialize_with)]`); a malformed
/// column is an error naming it.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SystemState, D::Error> {
    let compact = CompactState::deserialize(deserializer)?;
    expand_state(compact).map_err(serde::de::Error::custom)
}

fn expand_state(c: CompactState<'_>) -> Result<SystemState, String> {
    let [train_loss, train_accuracy, val_loss, val_accuracy] = fixed::<4>(&c.metrics, "metrics")?;
    let metrics = GlobalMetrics {
        epoch: c.epoch,
        step: c.step,
        train_loss,
        train_accuracy,
        val_loss,
        val_accuracy,
        score: c.score,
    };
    let evaluation = |(seed, numbers): (SeedAddress, Floats)| {
        // Older senders: four numbers before the standard error (ADR 0018: 0, unmeasured), five
        // before group ablation (every seed measured alone).
        let [loss_with, loss_without, accuracy_with, accuracy_without, contribution_stderr, together] =
            fixed::<6>(&numbers, "evaluation")
                .or_else(|_| fixed::<5>(&numbers, "evaluation").map(|[a, b, c, d, e]| [a, b, c, d, e, 1.0]))
                .or_else(|_| fixed::<4>(&numbers, "evaluation").map(|[a, b, c, d]| [a, b, c, d, 0.0, 1.0]))?;
        let ablated_together = together as u32;
        Ok(SeedEvaluation {
            seed,
            loss_with,
            loss_without,
            accuracy_with,
            accuracy_without,
            contribution_stderr,
            ablated_together,
        })
    };
    Ok(SystemState {
        metrics,
        layers: in_parallel(c.layers, |l| l.rows, expand_layer).into_iter().collect::<Result<_, String>>()?,
        evaluations: c.evaluations.into_iter().map(evaluation).collect::<Result<_, String>>()?,
        params_added: c.params_added,
    })
}

/// Seeds in a state from which its layers convert on several threads (below, starting the
/// threads costs more than it saves).
const PARALLEL_FROM_SEEDS: usize = 50_000;

/// `f` over `items`, in order, spread over the machine's cores when the items hold at least
/// [`PARALLEL_FROM_SEEDS`] seeds (`seeds` counts an item's): a state of many large layers
/// converts in a fraction of the time (the other side of the bus waits meanwhile).
fn in_parallel<T: Send, U: Send>(items: Vec<T>, seeds: impl Fn(&T) -> usize, f: impl Fn(T) -> U + Sync) -> Vec<U> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from).min(items.len());
    if threads <= 1 || items.iter().map(seeds).sum::<usize>() < PARALLEL_FROM_SEEDS {
        return items.into_iter().map(f).collect();
    }
    let per_thread = items.len().div_ceil(threads);
    let mut chunks: Vec<Vec<T>> = Vec::new();
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        chunks.push(items.by_ref().take(per_thread).collect());
    }
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> =
            chunks.into_iter().map(|chunk| scope.spawn(move || chunk.into_iter().map(f).collect::<Vec<U>>())).collect();
        handles.into_iter().flat_map(|h| h.join().expect("a conversion thread panicked")).collect()
    })
}

/// A few numbers as one column of bytes.
fn all_bytes(values: &[f32]) -> Floats<'static> {
    Floats::Bytes(STANDARD.encode(values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).into())
}

/// The `N` numbers of a fixed-length column.
fn fixed<const N: usize>(column: &Floats<'_>, what: &str) -> Result<[f32; N], String> {
    let values = expand_floats(column, N, what)?;
    Ok(std::array::from_fn(|i| values[i]))
}

fn compact_layer(layer: &LayerState) -> CompactLayer<'static> {
    let s = &layer.seeds;
    let h = &layer.health;
    let names = s
        .iter()
        .enumerate()
        .filter(|(_, seed)| seed.blueprint.is_some() || seed.strategy.is_some())
        .map(|(row, seed)| (row, seed.blueprint.clone(), seed.strategy.clone()))
        .collect();
    let stages = |stages: &mut dyn Iterator<Item = Stage>| STANDARD.encode(stages.map(Stage::code).collect::<Vec<_>>());
    let seed = ints(s.iter().map(|x| x.seed as u64));
    let stage = stages(&mut s.iter().map(|x| x.stage));
    let alpha = floats(s.iter().map(|x| x.alpha));
    let same_rows = h.seeds.len() == s.len();
    let health_seed = ints(h.seeds.iter().map(|x| x.seed as u64));
    let health_stage = stages(&mut h.seeds.iter().map(|x| x.stage));
    let health_alpha = floats(h.seeds.iter().map(|x| x.alpha));
    let health = CompactHealth {
        layer: h.layer.clone(),
        samples: h.samples,
        rows: h.seeds.len(),
        seed: (!(same_rows && health_seed == seed)).then_some(health_seed),
        stage: (!(same_rows && health_stage == stage)).then_some(health_stage.into()),
        alpha: (!(same_rows && health_alpha == alpha)).then_some(health_alpha),
        mean: floats(h.seeds.iter().map(|x| x.mean)),
        variance: floats(h.seeds.iter().map(|x| x.variance)),
        dead_ratio: floats(h.seeds.iter().map(|x| x.dead_ratio)),
        correlation: floats(h.seeds.iter().map(|x| x.correlation)),
        blueprint_rms: floats(h.seeds.iter().map(|x| x.blueprint_rms)),
    };
    CompactLayer {
        layer: layer.layer.clone(),
        host: layer.host.clone(),
        blueprint_params: layer.blueprint_params.clone(),
        rows: s.len(),
        seed,
        stage: stage.into(),
        alpha,
        epochs_in_stage: ints(s.iter().map(|x| u64::from(x.epochs_in_stage))),
        embargo_epochs_left: ints(s.iter().map(|x| u64::from(x.embargo_epochs_left))),
        failures: ints(s.iter().map(|x| u64::from(x.failures))),
        chunk_start: ints(s.iter().map(|x| x.chunk.start as u64)),
        chunk_end: ints(s.iter().map(|x| x.chunk.end as u64)),
        names,
        health,
    }
}

fn expand_layer(c: CompactLayer<'_>) -> Result<LayerState, String> {
    let n = c.rows;
    let seed = expand_ints(&c.seed, n, "seed")?;
    let stage = expand_stages(&c.stage, n, "stage")?;
    let alpha = expand_floats(&c.alpha, n, "alpha")?;
    let (epochs, embargo, failures) = (
        expand_ints(&c.epochs_in_stage, n, "epochs_in_stage")?,
        expand_ints(&c.embargo_epochs_left, n, "embargo_epochs_left")?,
        expand_ints(&c.failures, n, "failures")?,
    );
    let (start, end) = (expand_ints(&c.chunk_start, n, "chunk_start")?, expand_ints(&c.chunk_end, n, "chunk_end")?);
    let mut seeds: Vec<SeedInfo> = (0..n)
        .map(|i| SeedInfo {
            seed: seed[i] as usize,
            stage: stage[i],
            blueprint: None,
            strategy: None,
            alpha: alpha[i],
            epochs_in_stage: epochs[i],
            embargo_epochs_left: embargo[i],
            failures: failures[i],
            chunk: start[i] as usize..end[i] as usize,
        })
        .collect();
    for (row, blueprint, strategy) in c.names {
        let seed = seeds.get_mut(row).ok_or_else(|| format!("a blueprint name for row {row} of {n}"))?;
        (seed.blueprint, seed.strategy) = (blueprint, strategy);
    }
    let health = expand_health(c.health, &seeds)?;
    Ok(LayerState { layer: c.layer, host: c.host, seeds, health, blueprint_params: c.blueprint_params })
}

fn expand_health(h: CompactHealth<'_>, seeds: &[SeedInfo]) -> Result<LayerHealthReport, String> {
    let n = h.rows;
    let or_layer = |what: &str| if n == seeds.len() { Ok(()) } else { Err(format!("health {what} missing")) };
    let seed = match &h.seed {
        Some(column) => expand_ints(column, n, "health seed")?,
        None => or_layer("seed").map(|()| seeds.iter().map(|s| s.seed as u32).collect())?,
    };
    let stage = match &h.stage {
        Some(column) => expand_stages(column, n, "health stage")?,
        None => or_layer("stage").map(|()| seeds.iter().map(|s| s.stage).collect())?,
    };
    let alpha = match &h.alpha {
        Some(column) => expand_floats(column, n, "health alpha")?,
        None => or_layer("alpha").map(|()| seeds.iter().map(|s| s.alpha).collect())?,
    };
    let mean = expand_floats(&h.mean, n, "mean")?;
    let variance = expand_floats(&h.variance, n, "variance")?;
    let dead_ratio = expand_floats(&h.dead_ratio, n, "dead_ratio")?;
    let correlation = expand_floats(&h.correlation, n, "correlation")?;
    let blueprint_rms = expand_floats(&h.blueprint_rms, n, "blueprint_rms")?;
    let seeds = (0..n)
        .map(|i| SeedHealth {
            seed: seed[i] as usize,
            stage: stage[i],
            alpha: alpha[i],
            mean: mean[i],
            variance: variance[i],
            dead_ratio: dead_ratio[i],
            correlation: correlation[i],
            blueprint_rms: blueprint_rms[i],
        })
        .collect();
    Ok(LayerHealthReport { layer: h.layer, samples: h.samples, seeds })
}

/// `values` as a sequence when they are one (and fit a `u32`), else as bytes.
fn ints(values: impl Iterator<Item = u64> + Clone) -> Ints<'static> {
    let mut it = values.clone();
    let (first, second) = (it.next().unwrap_or(0) as i64, it.next());
    let step = second.map_or(0, |v| v as i64 - first);
    let sequence = values.clone().enumerate().all(|(i, v)| v as i64 == first + step * i as i64);
    if sequence {
        return Ints::Sequence { start: first, step };
    }
    let bytes: Vec<u8> = values.flat_map(|v| (v as u32).to_le_bytes()).collect();
    Ints::Bytes(STANDARD.encode(bytes).into())
}

fn floats(values: impl Iterator<Item = f32> + Clone) -> Floats<'static> {
    let mut it = values.clone();
    match it.next() {
        Some(first) if it.all(|v| v.to_bits() == first.to_bits()) => Floats::Same(first.to_bits()),
        None => Floats::Same(0),
        Some(_) => Floats::Bytes(STANDARD.encode(values.flat_map(f32::to_le_bytes).collect::<Vec<u8>>()).into()),
    }
}

fn decode(text: &str, rows: usize, width: usize, what: &str) -> Result<Vec<u8>, String> {
    let bytes = STANDARD.decode(text).map_err(|e| format!("column {what}: {e}"))?;
    if bytes.len() != rows * width {
        return Err(format!("column {what}: {} bytes for {rows} rows", bytes.len()));
    }
    Ok(bytes)
}

fn expand_ints(column: &Ints<'_>, rows: usize, what: &str) -> Result<Vec<u32>, String> {
    match column {
        Ints::Sequence { start, step } => (0..rows as i64)
            .map(|i| u32::try_from(start + step * i).map_err(|_| format!("column {what}: out of range")))
            .collect(),
        Ints::Bytes(text) => {
            let bytes = decode(text, rows, 4, what)?;
            Ok(bytes.chunks_exact(4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes"))).collect())
        }
    }
}

fn expand_floats(column: &Floats<'_>, rows: usize, what: &str) -> Result<Vec<f32>, String> {
    match column {
        Floats::Same(bits) => Ok(vec![f32::from_bits(*bits); rows]),
        Floats::Bytes(text) => {
            let bytes = decode(text, rows, 4, what)?;
            Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect())
        }
    }
}

fn expand_stages(text: &str, rows: usize, what: &str) -> Result<Vec<Stage>, String> {
    let bytes = decode(text, rows, 1, what)?;
    let stage = |b: u8| Stage::from_code(b).ok_or_else(|| format!("column {what}: no stage {b}"));
    bytes.into_iter().map(stage).collect()
}

#[cfg(test)]
mod tests {
    use super::{all_bytes, expand_state, CompactState, Score};
    use crate::{Controller, ControllerConfig, DecisionRequest};
    use morphogen_contracts::{
        GlobalMetrics, LayerHealthReport, LayerState, SeedAddress, SeedEvaluation, SeedHealth, SeedInfo, Stage,
        SystemState,
    };
    use proptest::prelude::*;

    /// Any `f32`, NaN and infinities included, from its bits.
    fn float() -> impl Strategy<Value = f32> {
        prop_oneof![any::<u32>().prop_map(f32::from_bits), Just(0.0f32), -1.0f32..1.0]
    }

    fn stage() -> impl Strategy<Value = Stage> {
        prop::sample::select(Stage::ALL.to_vec())
    }

    fn seed(row: usize) -> impl Strategy<Value = SeedInfo> {
        let names = prop::option::of(prop::sample::select(vec!["residual_mlp".to_string(), "small_conv".into()]));
        (stage(), names.clone(), names, float(), 0u32..5, 0u32..3, 0u32..4, prop::bool::ANY).prop_map(
            move |(stage, blueprint, strategy, alpha, epochs, embargo, failures, odd)| SeedInfo {
                seed: if odd { row * 3 + 1 } else { row },
                stage,
                blueprint,
                strategy,
                alpha,
                epochs_in_stage: epochs,
                embargo_epochs_left: embargo,
                failures,
                chunk: row * 2..row * 2 + 2,
            },
        )
    }

    fn health(row: usize) -> impl Strategy<Value = SeedHealth> {
        (stage(), float(), float(), float(), float(), float(), float()).prop_map(
            move |(stage, alpha, mean, variance, dead_ratio, correlation, blueprint_rms)| SeedHealth {
                seed: row,
                stage,
                alpha,
                mean,
                variance,
                dead_ratio,
                correlation,
                blueprint_rms,
            },
        )
    }

    fn layer() -> impl Strategy<Value = LayerState> {
        (0usize..24, 0usize..2).prop_flat_map(|(rows, fewer)| {
            let seeds: Vec<_> = (0..rows).map(seed).collect();
            let health: Vec<_> = (0..rows.saturating_sub(fewer)).map(health).collect();
            (seeds, health, prop::bool::ANY).prop_map(|(seeds, mut health, mirror)| {
                if mirror {
                    // Reports usually agree with the layer's own seed table.
                    for (h, s) in health.iter_mut().zip(&seeds) {
                        (h.seed, h.stage, h.alpha) = (s.seed, s.stage, s.alpha);
                    }
                }
                LayerState {
                    layer: "blocks.0.fc".into(),
                    host: "Linear".into(),
                    seeds,
                    health: LayerHealthReport { layer: "blocks.0.fc".into(), samples: 640, seeds: health },
                    blueprint_params: [("residual_mlp".to_string(), 296)].into(),
                }
            })
        })
    }

    fn system() -> impl Strategy<Value = SystemState> {
        let numbers = (float(), float(), float(), float(), float());
        let evaluation = (0usize..9, numbers, 1u32..9).prop_map(|(seed, (a, b, c, d, e), together)| {
            let seed = SeedAddress { layer: "blocks.0.fc".into(), seed };
            SeedEvaluation {
                seed,
                loss_with: a,
                loss_without: b,
                accuracy_with: c,
                accuracy_without: d,
                contribution_stderr: e,
                ablated_together: together,
            }
        });
        let metrics = (float(), float(), float(), float()).prop_map(|(a, b, c, d)| GlobalMetrics {
            epoch: 4,
            step: 900,
            train_loss: a,
            train_accuracy: b,
            val_loss: c,
            val_accuracy: d,
            ..Default::default()
        });
        (metrics, prop::collection::vec(layer(), 0..3), prop::collection::vec(evaluation, 0..3), 0usize..1000).prop_map(
            |(metrics, layers, evaluations, params_added)| SystemState { metrics, layers, evaluations, params_added },
        )
    }

    proptest! {
        /// Any state crosses the wire unchanged, bit for bit (NaNs included).
        #[test]
        fn any_state_round_trips_exactly(system in system()) {
            let controller = Controller::new(ControllerConfig::default()).unwrap();
            let text = DecisionRequest::json(&controller, &system).to_string();
            let back: DecisionRequest = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(format!("{:?}", back.system), format!("{:?}", system));
        }
    }

    #[test]
    fn evaluations_from_older_senders_read_with_no_standard_error_and_one_seed_ablated() {
        let seed = SeedAddress { layer: "fc1".into(), seed: 2 };
        let state = |numbers: &[f32]| CompactState {
            epoch: 1,
            step: 10,
            score: Score::Accuracy,
            metrics: all_bytes(&[0.5, 0.8, 0.6, 0.7]),
            layers: Vec::new(),
            evaluations: vec![(seed.clone(), all_bytes(numbers))],
            params_added: 0,
        };
        let old = expand_state(state(&[0.4, 0.5, 0.9, 0.8])).unwrap();
        assert_eq!(old.evaluations[0].contribution_stderr, 0.0);
        assert_eq!(old.evaluations[0].loss_without, 0.5);
        assert_eq!(old.evaluations[0].ablated_together, 1);
        let five = expand_state(state(&[0.4, 0.5, 0.9, 0.8, 0.01])).unwrap();
        assert_eq!((five.evaluations[0].contribution_stderr, five.evaluations[0].ablated_together), (0.01, 1));
        let six = expand_state(state(&[0.4, 0.5, 0.9, 0.8, 0.01, 4.0])).unwrap();
        assert_eq!(six.evaluations[0].ablated_together, 4);
        assert!(expand_state(state(&[0.4, 0.5, 0.9])).unwrap_err().contains("evaluation"));
    }

    #[test]
    fn a_ten_thousand_seed_layer_is_a_few_hundred_kilobytes_and_a_bad_column_is_named() {
        let rows = 10_000;
        let seeds = (0..rows)
            .map(|s| SeedInfo {
                seed: s,
                stage: if s.is_multiple_of(97) { Stage::Training } else { Stage::Dormant },
                blueprint: None,
                strategy: None,
                alpha: 0.0,
                epochs_in_stage: 3,
                embargo_epochs_left: 0,
                failures: 0,
                chunk: s..s + 1,
            })
            .collect::<Vec<_>>();
        let health = (0..rows)
            .map(|s| SeedHealth {
                seed: s,
                stage: seeds[s].stage,
                alpha: 0.0,
                mean: s as f32 * 1e-4,
                variance: 1.0 / (s + 1) as f32,
                dead_ratio: (s % 13) as f32 / 13.0,
                correlation: (s % 7) as f32 / 7.0,
                blueprint_rms: 0.0,
            })
            .collect();
        let layer = LayerState {
            layer: "fc".into(),
            host: "Linear".into(),
            seeds,
            health: LayerHealthReport { layer: "fc".into(), samples: 1, seeds: health },
            blueprint_params: Default::default(),
        };
        let system =
            SystemState { metrics: Default::default(), layers: vec![layer], evaluations: vec![], params_added: 0 };
        let request = DecisionRequest::json(&Controller::new(ControllerConfig::default()).unwrap(), &system);
        let compact = request.to_string().len();
        let plain = serde_json::to_vec(&system).unwrap().len();
        assert!(compact < 300_000 && compact * 10 < plain, "{compact} bytes, {plain} as plain JSON");

        // Six such layers pass the size from which layers convert on several threads.
        let mut big = system.clone();
        big.layers = (0..6).map(|i| LayerState { layer: format!("fc{i}"), ..system.layers[0].clone() }).collect();
        let text = DecisionRequest::json(&Controller::new(ControllerConfig::default()).unwrap(), &big).to_string();
        let back: DecisionRequest = serde_json::from_str(&text).unwrap();
        assert_eq!(format!("{:?}", back.system), format!("{big:?}"));

        let mut value = request;
        value["system"]["layers"][0]["health"]["variance"]["bytes"] = "AAAA".into();
        let error = serde_json::from_value::<DecisionRequest>(value).unwrap_err().to_string();
        assert!(error.contains("column variance: 3 bytes for 10000 rows"), "{error}");
    }
}
