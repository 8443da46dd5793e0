//! `morphogen bench bus`: the decision round trip over a Redis server, from a run publishing
//! its state to the run reading the decision of a `morphogen controller serve` process started
//! for the benchmark, for states of several sizes, each inline and as a claim check; beside it,
//! the same decision made in process.

use super::json_file::JsonFile;
use crate::error::CliError;
use clap::Args;
use morphogen::controller::{Controller, ControllerConfig, DecisionRequest};
use morphogen::trainer::{BusConfig, RemoteController};
use morphogen::{GlobalMetrics, LayerHealthReport, LayerState, SeedHealth, SeedInfo, Stage, SystemState};
use morphogen_bus::{BusOptions, RedisBus};
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Flags of `morphogen bench bus`.
#[derive(Args, Debug)]
pub struct BusArgs {
    /// The Redis server: `redis://[:password@]host:port[/db]`.
    #[arg(long, value_name = "URL")]
    pub bus: String,
    /// Seeded layers in the state, one case each (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [2usize, 20])]
    pub layers: Vec<usize>,
    /// Seeds per layer.
    #[arg(long, default_value_t = 10_000)]
    pub seeds: usize,
    /// Seeds in TRAINING in the state, spread over the layers (each gets a gate decision: a
    /// command and its reason in the reply) [default: the default controller's
    /// `max_active_total`]; the rest are DORMANT.
    #[arg(long)]
    pub active: Option<usize>,
    /// Decision points timed per case (after 5 of warm-up).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    pub rounds: u64,
    /// Also write the rows as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
}

/// One measured case.
#[derive(Clone, Debug, Serialize)]
struct Row {
    layers: usize,
    seeds_per_layer: usize,
    claim_check: bool,
    request_bytes: usize,
    reply_bytes: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    in_process_ms: f64,
}

/// `morphogen bench bus`.
pub fn run(args: &BusArgs) -> Result<(), CliError> {
    let mut json = JsonFile::create(args.json.as_deref())?;
    let _service = Service::start(&args.bus)?;
    let mut rows = Vec::new();
    for &layers in &args.layers {
        let active = args.active.unwrap_or(ControllerConfig::default().max_active_total);
        let system = state(layers, args.seeds, active);
        for claim_check in [false, true] {
            rows.push(measure(args, &system, claim_check)?);
            eprintln!("measured {layers} x {} seeds, claim check {claim_check}", args.seeds);
        }
    }
    print!("{}", table(&rows, args));
    if let Some(file) = &mut json {
        file.write(&rows)?;
        eprintln!("wrote {}", file.path().display());
    }
    Ok(())
}

/// Times `args.rounds` decision points on `system` through the controller service.
fn measure(args: &BusArgs, system: &SystemState, claim_check: bool) -> Result<Row, CliError> {
    let claim_check_bytes = if claim_check { BusOptions::default().claim_check_bytes } else { usize::MAX };
    let config = BusConfig { decision_timeout_ms: 30_000, claim_check_bytes, ..BusConfig::default() };
    let bus = RedisBus::connect(&args.bus, config.options(), Duration::from_secs(30))?;
    let run = format!("bench-{}-{}-{}", system.layers.len(), std::process::id(), u8::from(claim_check));
    let mut remote = RemoteController::new(Box::new(bus), &run, config);
    remote.announce();
    let controller = Controller::new(ControllerConfig::default())?;
    let (mut applied, mut times, mut reply_bytes) = (Vec::new(), Vec::new(), 0);
    for round in 0..args.rounds + 5 {
        let answer = remote.ask(&controller, system, round, &applied);
        let answer = answer.map_err(|e| CliError::Config { path: "--bus".into(), problem: e.to_string() })?;
        reply_bytes = serde_json::to_vec(&answer.reply)?.len();
        applied.push(answer.record);
        if round >= 5 {
            times.push(answer.round_trip.as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    let quantile = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    Ok(Row {
        layers: system.layers.len(),
        seeds_per_layer: system.layers[0].seeds.len(),
        claim_check,
        request_bytes: DecisionRequest::json(&controller, system).to_string().len(),
        reply_bytes,
        p50_ms: quantile(0.5),
        p99_ms: quantile(0.99),
        max_ms: quantile(1.0),
        in_process_ms: in_process_ms(&controller, system),
    })
}

/// `morphogen controller serve` on the bus, as a process of its own (as in production: its
/// memory and threads apart from the run's); killed on drop.
struct Service(std::process::Child);

impl Service {
    fn start(url: &str) -> Result<Self, CliError> {
        let cannot = |e: std::io::Error| CliError::Config {
            path: "--bus".into(),
            problem: format!("cannot start `morphogen controller serve` for the benchmark: {e}"),
        };
        let child = std::process::Command::new(std::env::current_exe().map_err(cannot)?)
            .args(["controller", "serve", "--bus", url, "--name", "bench-controller", "--quiet"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .map_err(cannot)?;
        Ok(Self(child))
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// The median of 20 in-process decisions on `system`, in milliseconds.
fn in_process_ms(controller: &Controller, system: &SystemState) -> f64 {
    let mut times: Vec<f64> = (0..20)
        .map(|_| {
            let mut fresh = controller.clone();
            let started = Instant::now();
            std::hint::black_box(fresh.step(system));
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// A state of `layers` Linear layers of `seeds` seeds with every statistic set, `active` of the
/// seeds (spread evenly over all of them) in TRAINING, as a run on a plateau sends it.
fn state(layers: usize, seeds: usize, active: usize) -> SystemState {
    let every = (layers * seeds / active.max(1)).max(1);
    let metrics = GlobalMetrics { epoch: 3, step: 1200, val_loss: 0.61, val_accuracy: 0.78, ..Default::default() };
    let layer = |l: usize| {
        let training = |s: usize| active > 0 && (l * seeds + s).is_multiple_of(every);
        let stage = |s: usize| if training(s) { Stage::Training } else { Stage::Dormant };
        let value = |s: usize, k: usize| ((s * 7919 + k * 104_729 + l) % 10_007) as f32 / 10_007.0;
        let seeds_info = (0..seeds)
            .map(|s| SeedInfo {
                seed: s,
                stage: stage(s),
                blueprint: (stage(s) != Stage::Dormant).then(|| "residual_mlp".into()),
                strategy: (stage(s) != Stage::Dormant).then(|| "fixed_ramp".into()),
                alpha: 0.0,
                epochs_in_stage: 1,
                embargo_epochs_left: 0,
                failures: 0,
                chunk: s..s + 1,
            })
            .collect();
        let health = (0..seeds)
            .map(|s| SeedHealth {
                seed: s,
                stage: stage(s),
                alpha: 0.0,
                mean: value(s, 1) - 0.5,
                variance: value(s, 2),
                dead_ratio: value(s, 3) * 0.2,
                correlation: value(s, 4) - 0.5,
                blueprint_rms: value(s, 5) * 0.1,
            })
            .collect();
        let name = format!("blocks.{l}.fc");
        LayerState {
            layer: name.clone(),
            host: "Linear".into(),
            seeds: seeds_info,
            health: LayerHealthReport { layer: name, samples: 60_000, seeds: health },
            blueprint_params: [("residual_mlp".to_string(), 296)].into(),
        }
    };
    SystemState { metrics, layers: (0..layers).map(layer).collect(), evaluations: Vec::new(), params_added: 0 }
}

/// The rows as a Markdown table.
fn table(rows: &[Row], args: &BusArgs) -> String {
    let mut out = format!(
        "decision round trip over {} ({} decision points a case)\n\n| layers x seeds | payload | request | reply | p50 ms | p99 ms | max ms | in-process decision ms |\n|---|---|---|---|---|---|---|---|\n",
        morphogen_bus::redacted(&args.bus),
        args.rounds
    );
    for r in rows {
        out += &format!(
            "| {} x {} | {} | {:.0} KiB | {:.1} KiB | {:.2} | {:.2} | {:.2} | {:.2} |\n",
            r.layers,
            r.seeds_per_layer,
            match (r.claim_check, r.request_bytes > BusOptions::default().claim_check_bytes) {
                (true, true) => "claim check",
                (true, false) => "inline (under the claim-check size)",
                (false, _) => "inline",
            },
            r.request_bytes as f64 / 1024.0,
            r.reply_bytes as f64 / 1024.0,
            r.p50_ms,
            r.p99_ms,
            r.max_ms,
            r.in_process_ms
        );
    }
    out
}
