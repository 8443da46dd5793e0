//! `morphogen train`: the main job. Trains a small preset model on Fashion-MNIST and lets it
//! grow, with progress bars, a live seed summary, a results table and a run folder.

use crate::error::CliError;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use morphogen::burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use morphogen::burn::optim::AdamConfig;
use morphogen::burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use morphogen::burn::tensor::backend::AutodiffBackend;
use morphogen::burn::tensor::Tensor;
use morphogen::controller::{Controller, ControllerConfig};
use morphogen::trainer::{
    fashion_mnist, Classifier, Dataset, EventLog, ModelConfig, ModelKind, Observer, StageCounts, Trainer,
    TrainerConfig, FASHION_MNIST_DIR,
};
use morphogen::{GlobalMetrics, LayerState, SeededModel, Stage, TransitionEvent};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Flags of `morphogen train`; each overrides the config file's value.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// TOML config with `[run]`, `[model]`, `[trainer]` and `[controller]` tables (see
    /// `docs/train.md`); flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Folder with Fashion-MNIST's four IDX .gz files [default: /usr/share/datasets/fashion-mnist].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Host model preset.
    #[arg(long, value_enum)]
    pub model: Option<ModelArg>,
    /// Epochs.
    #[arg(long)]
    pub epochs: Option<u32>,
    /// Images per step.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Adam learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Seeds per seeded layer.
    #[arg(long)]
    pub seeds: Option<usize>,
    /// MLP hidden width.
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Use only the first N training images.
    #[arg(long, value_name = "N")]
    pub train_subset: Option<usize>,
    /// Use only the first N test images for validation.
    #[arg(long, value_name = "N")]
    pub valid_subset: Option<usize>,
    /// Shuffling seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Train the host only: the controller never germinates.
    #[arg(long)]
    pub no_growth: bool,
    /// Run name: results go to `<runs-dir>/<name>/`.
    #[arg(long)]
    pub name: Option<String>,
    /// Where run folders go.
    #[arg(long, value_name = "DIR")]
    pub runs_dir: Option<PathBuf>,
    /// No progress bars (for logs and scripts).
    #[arg(long)]
    pub quiet: bool,
    /// Check every seeded layer's invariants after every step (slow; stops on the first
    /// violation with the layer named).
    #[arg(long)]
    pub debug: bool,
    /// Feature-flag file: the seeded layers use morphogen's GPU kernels only where the `kernels`
    /// flag is on for this run's name (see `morphogen flags`). Without it the kernels are on,
    /// each checked against the tensor path and dropped for it if they ever disagree.
    #[arg(long, value_name = "FILE")]
    pub flags: Option<PathBuf>,
    /// Continue the run `--name` from its newest checkpoint that verifies (model, optimizer,
    /// controller state), up to `--epochs` in all; metrics and events are appended.
    #[arg(long)]
    pub resume: bool,
    /// Backend.
    #[arg(long, value_enum, default_value_t = crate::backend::BackendKind::Ndarray)]
    pub backend: crate::backend::BackendKind,
    /// Serve Prometheus metrics (`GET /metrics`) on this address while training, e.g.
    /// `127.0.0.1:9464` (see `docs/metrics.md`).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Export OpenTelemetry traces over OTLP/HTTP to this collector, e.g.
    /// `http://127.0.0.1:4318` (spans go to `<URL>/v1/traces`; see `docs/metrics.md`). An
    /// unreachable collector is reported once and training goes on.
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// Print OpenTelemetry traces on stdout instead.
    #[arg(long, conflicts_with = "otlp_endpoint")]
    pub trace_stdout: bool,
    /// Lowest span level exported: `info` (run, epochs, decisions, commands, checkpoints,
    /// rollbacks), `debug` (also every step), `trace` (also every seeded layer's forward work).
    #[arg(long, value_enum, default_value_t = TraceLevel::Info)]
    pub trace_level: TraceLevel,
}

/// Span levels on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TraceLevel {
    /// Run, epochs, controller decisions, commands, checkpoints and rollbacks.
    Info,
    /// Also every optimizer step.
    Debug,
    /// Also every seeded layer's forward work.
    Trace,
}

impl TrainArgs {
    /// Where `--otlp-endpoint` / `--trace-stdout` send spans, if anywhere.
    fn trace_export(&self) -> Option<morphogen_telemetry::Export> {
        match (&self.otlp_endpoint, self.trace_stdout) {
            (Some(endpoint), _) => Some(morphogen_telemetry::Export::Otlp { endpoint: endpoint.clone() }),
            (None, true) => Some(morphogen_telemetry::Export::Stdout),
            (None, false) => None,
        }
    }
}

/// Model presets on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelArg {
    /// `784 -> hidden -> hidden -> 10`, both hidden layers seeded.
    Mlp,
    /// Two seeded 3x3 conv layers with pooling, then a linear head.
    Cnn,
}

/// Run-level settings: the `[run]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunSection {
    /// Run name.
    pub name: String,
    /// Data folder.
    pub data: PathBuf,
    /// Training images used (0: all).
    pub train_subset: usize,
    /// Validation images used (0: all).
    pub valid_subset: usize,
    /// Whether the controller may grow the model.
    pub growth: bool,
    /// Where run folders go.
    pub runs_dir: PathBuf,
}

impl Default for RunSection {
    fn default() -> Self {
        Self {
            name: "fashion-mlp".into(),
            data: FASHION_MNIST_DIR.into(),
            train_subset: 0,
            valid_subset: 0,
            growth: true,
            runs_dir: "runs".into(),
        }
    }
}

/// The whole configuration of a run, as read from TOML and written to the run folder.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// Run settings.
    pub run: RunSection,
    /// Host model.
    pub model: ModelConfig,
    /// Trainer.
    pub trainer: TrainerConfig,
    /// Controller.
    pub controller: ControllerConfig,
}

impl RunConfig {
    /// Turns growth on or off: off, the controller never germinates.
    pub fn set_growth(&mut self, on: bool) {
        self.run.growth = on;
        if !on {
            self.controller.max_germinations_per_epoch = 0;
        }
    }

    /// The config file (if any) with the flags applied, validated.
    pub fn resolve(args: &TrainArgs) -> Result<Self, CliError> {
        let mut config = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| CliError::Config { path: path.clone(), problem: e.to_string() })?;
                toml::from_str(&text).map_err(|e| CliError::Config { path: path.clone(), problem: e.to_string() })?
            }
            None => RunConfig::default(),
        };
        set(&mut config.run.data, args.data.clone());
        set(&mut config.run.name, args.name.clone());
        set(&mut config.run.runs_dir, args.runs_dir.clone());
        set(&mut config.run.train_subset, args.train_subset);
        set(&mut config.run.valid_subset, args.valid_subset);
        config.run.growth &= !args.no_growth;
        config.trainer.debug |= args.debug;
        set(&mut config.trainer.epochs, args.epochs);
        set(&mut config.trainer.batch_size, args.batch_size);
        set(&mut config.trainer.learning_rate, args.lr);
        set(&mut config.trainer.seed, args.seed);
        set(&mut config.model.seeds, args.seeds);
        set(&mut config.model.hidden, args.hidden);
        if let Some(model) = args.model {
            config.model.kind = match model {
                ModelArg::Mlp => ModelKind::Mlp,
                ModelArg::Cnn => ModelKind::Cnn,
            };
        }
        config.set_growth(config.run.growth);
        if let Some(path) = &args.flags {
            let (flags, warning) = morphogen_flags::Flags::load(path);
            if let Some(warning) = warning {
                eprintln!("warning: {warning}");
            }
            config.model.kernels = flags.is_enabled_for(morphogen_flags::Feature::Kernels, &config.run.name);
        }
        if config.trainer.checkpoint_dir.is_none() {
            config.trainer.checkpoint_dir = Some(config.run.runs_dir.join(&config.run.name).join("checkpoints"));
        }
        config.trainer.validate()?;
        config.controller.validate()?;
        if config.run.name.is_empty() || config.run.name.contains(['/', '\\']) {
            return Err(CliError::Config {
                path: "--name".into(),
                problem: "the run name must be a plain, non-empty file name".into(),
            });
        }
        Ok(config)
    }
}

/// Overrides `slot` with a flag's value when the flag was given.
fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

/// The `--metrics-addr` exporter's registry, fed beside the progress output.
static METRICS: std::sync::OnceLock<morphogen_metrics::MetricsObserver> = std::sync::OnceLock::new();

/// `morphogen train`.
pub fn train(args: &TrainArgs) -> Result<(), CliError> {
    let config = RunConfig::resolve(args)?;
    if let Some(addr) = args.metrics_addr {
        let server = morphogen_metrics::serve(addr, METRICS.get_or_init(Default::default).clone()).map_err(|e| {
            CliError::Config { path: "--metrics-addr".into(), problem: format!("cannot listen on {addr}: {e}") }
        })?;
        eprintln!("metrics: http://{}/metrics", server.local_addr());
    }
    let level = match args.trace_level {
        TraceLevel::Info => morphogen_telemetry::Level::INFO,
        TraceLevel::Debug => morphogen_telemetry::Level::DEBUG,
        TraceLevel::Trace => morphogen_telemetry::Level::TRACE,
    };
    // Flushed when dropped, after training.
    let _tracing = args
        .trace_export()
        .map(|export| {
            morphogen_telemetry::install(&export, level)
                .map_err(|e| CliError::Config { path: "--otlp-endpoint".into(), problem: e.to_string() })
        })
        .transpose()?;
    crate::backend::run_training(args.backend, &config, Output { quiet: args.quiet, resume: args.resume })
}

/// How a run reports and whether it continues an earlier one.
#[derive(Clone, Copy, Debug)]
pub struct Output {
    /// No progress bars.
    pub quiet: bool,
    /// Continue from the run folder's newest checkpoint.
    pub resume: bool,
}

/// Trains `config`'s preset on backend `B`: builds the model first, so a bad model config fails
/// before any data is read.
pub fn run<B: AutodiffBackend>(config: &RunConfig, output: Output) -> Result<(), CliError> {
    let device = B::Device::default();
    B::seed(&device, config.trainer.seed);
    match config.model.kind {
        ModelKind::Mlp => run_model::<B, _>(config.model.mlp(&device)?, config, output),
        ModelKind::Cnn => run_model::<B, _>(config.model.cnn(&device)?, config, output),
    }
}

fn run_model<B, M>(model: M, config: &RunConfig, output: Output) -> Result<(), CliError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + SeededModel<B> + Classifier<B>,
    M::InnerModule: SeededModel<B::InnerBackend> + Classifier<B::InnerBackend>,
{
    let data = load_data(config)?;
    let dir = config.run.runs_dir.join(&config.run.name);
    std::fs::create_dir_all(&dir).map_err(|source| CliError::Write { path: dir.clone(), source })?;
    write(&dir.join("config.toml"), &toml::to_string_pretty(config).expect("configs serialise"))?;
    let events = EventLog::to_file(&dir.join("events.jsonl"), output.resume)?;
    let mut progress = Progress::new(&dir.join("metrics.jsonl"), output)?;
    eprintln!(
        "training {:?} on {} images ({} for validation), {} epochs, growth {}",
        config.model.kind,
        data.0.len(),
        data.1.len(),
        config.trainer.epochs,
        if config.run.growth { "on" } else { "off" }
    );
    let result = train_once(
        model,
        config,
        &data,
        events,
        output.resume,
        &mut morphogen_metrics::Both(
            morphogen_metrics::Borrowed(&mut progress),
            METRICS.get().cloned().unwrap_or_default(),
        ),
    )?;
    let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
    let model_path = dir.join("model");
    result
        .model
        .clone()
        .save_file(&model_path, &recorder)
        .map_err(|e| CliError::Write { path: model_path, source: std::io::Error::other(e.to_string()) })?;
    print!("{}", results(&result));
    println!("run folder: {}", dir.display());
    Ok(())
}

/// The training and validation sets of `config`, cut to its subsets.
pub fn load_data(config: &RunConfig) -> Result<(Dataset, Dataset), CliError> {
    let (train, valid) = fashion_mnist(&config.run.data)?;
    let subset = |n: usize| if n == 0 { usize::MAX } else { n };
    Ok((train.take(subset(config.run.train_subset)), valid.take(subset(config.run.valid_subset))))
}

/// What one training run produced.
pub struct RunResult<M> {
    /// The final model.
    pub model: M,
    /// Metrics per epoch.
    pub history: Vec<GlobalMetrics>,
    /// Every transition.
    pub events: Vec<TransitionEvent>,
    /// Rollbacks done.
    pub rollbacks: u32,
    /// Trainable parameters before training (the host; banks are still empty).
    pub host_params: usize,
    /// Parameters the blueprints seeds hold at the end add.
    pub params_added: usize,
    /// Wall time of training, seconds.
    pub seconds: f64,
}

impl<M> RunResult<M> {
    /// Transitions into `stage`.
    pub fn reached(&self, stage: Stage) -> usize {
        self.events.iter().filter(|e| e.to == stage).count()
    }

    /// Validation accuracy after the last epoch.
    pub fn final_accuracy(&self) -> f32 {
        self.history.last().map_or(0.0, |m| m.val_accuracy)
    }
}

/// Parameters that train (host weights and blueprint banks; not the seed-state columns).
pub fn trainable_params<B: AutodiffBackend, M: Module<B>>(model: &M) -> usize {
    struct Count(usize);
    impl<B: AutodiffBackend> ModuleVisitor<B> for Count {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if param.is_require_grad() {
                self.0 += param.shape().num_elements();
            }
        }
    }
    let mut count = Count(0);
    model.visit(&mut count);
    count.0
}

/// Trains `model` once with Adam as `config` says.
pub fn train_once<B, M>(
    model: M,
    config: &RunConfig,
    (train, valid): &(Dataset, Dataset),
    events: EventLog,
    resume: bool,
    observer: &mut dyn Observer,
) -> Result<RunResult<M>, CliError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + SeededModel<B> + Classifier<B>,
    M::InnerModule: SeededModel<B::InnerBackend> + Classifier<B::InnerBackend>,
{
    let controller = Controller::new(config.controller.clone())?;
    let mut trainer = Trainer::new(config.trainer.clone(), controller, events)?;
    let (mut model, mut optim) = (model, AdamConfig::new().init());
    let host_params = trainable_params(&model);
    if resume {
        let epoch = trainer.resume(&mut model, &mut optim)?;
        eprintln!("resumed after epoch {epoch}");
    }
    let start = std::time::Instant::now();
    let outcome = trainer.run(model, optim, train, valid, observer)?;
    Ok(RunResult {
        params_added: outcome.model.params_added(),
        model: outcome.model,
        history: outcome.history,
        events: trainer.events().events().to_vec(),
        rollbacks: outcome.rollbacks,
        host_params,
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn write(path: &Path, text: &str) -> Result<(), CliError> {
    std::fs::write(path, text).map_err(|source| CliError::Write { path: path.into(), source })
}

/// The results table: one row per epoch, then the growth summary.
fn results<M>(run: &RunResult<M>) -> String {
    let mut out = String::from("\n| epoch | train loss | train acc | val loss | val acc |\n|---|---|---|---|---|\n");
    for m in &run.history {
        out += &format!(
            "| {} | {:.4} | {:.4} | {:.4} | {:.4} |\n",
            m.epoch, m.train_loss, m.train_accuracy, m.val_loss, m.val_accuracy
        );
    }
    out += &format!(
        "\nseeds germinated {}, fossilized {}, culled {}, rolled back {}; rollbacks {}\nparameters: host {}, added by blueprints {}; {:.1} s\n",
        run.reached(Stage::Germinated),
        run.reached(Stage::Fossilized),
        run.reached(Stage::Culled),
        run.reached(Stage::RolledBack),
        run.rollbacks,
        run.host_params,
        run.params_added,
        run.seconds,
    );
    out
}

/// Progress bars, the live seed summary, `metrics.jsonl` and `layers.jsonl` (per-seed state).
struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
    metrics: std::fs::File,
    path: PathBuf,
    layers: morphogen_dashboard::LayersLog,
}

impl Progress {
    fn new(path: &Path, output: Output) -> Result<Self, CliError> {
        let metrics = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(output.resume)
            .truncate(!output.resume)
            .open(path)
            .map_err(|source| CliError::Write { path: path.into(), source })?;
        let layers_path = path.with_file_name("layers.jsonl");
        let layers = morphogen_dashboard::LayersLog::open(&layers_path, output.resume)
            .map_err(|source| CliError::Write { path: layers_path, source })?;
        Ok(Self { bar: None, quiet: output.quiet, metrics, path: path.into(), layers })
    }
}

impl Progress {
    /// A line above the progress bar, or on stderr without one.
    fn note(&self, line: String) {
        match &self.bar {
            Some(bar) if !bar.is_hidden() => bar.println(line),
            _ => eprintln!("{line}"),
        }
    }
}

impl Observer for Progress {
    fn epoch_started(&mut self, epoch: u32, steps: usize) {
        if self.quiet {
            return;
        }
        let bar = ProgressBar::new(steps as u64);
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix:>3} [{bar:30}] {pos}/{len} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(epoch.to_string());
        self.bar = Some(bar);
    }

    fn step(&mut self, loss: f32) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("loss {loss:.4}"));
            bar.inc(1);
        }
    }

    fn epoch_ended(&mut self, m: &GlobalMetrics, seeds: &StageCounts) {
        let line = format!(
            "epoch {:>3}: train loss {:.4} acc {:.4} | val loss {:.4} acc {:.4} | seeds: {seeds}",
            m.epoch, m.train_loss, m.train_accuracy, m.val_loss, m.val_accuracy
        );
        match self.bar.take() {
            Some(bar) if !bar.is_hidden() => bar.finish_with_message(line),
            _ => eprintln!("{line}"),
        }
        let json = serde_json::to_string(m).expect("metrics serialise");
        if let Err(e) = writeln!(self.metrics, "{json}") {
            eprintln!("warning: cannot append to {}: {e}", self.path.display());
        }
        if let Err(e) = self.layers.epoch_ended(m.epoch) {
            eprintln!("warning: cannot append to {}: {e}", self.layers.path().display());
        }
    }

    fn layers_measured(&mut self, layers: &[LayerState]) {
        self.layers.measured(layers);
    }

    fn transition(&mut self, e: &TransitionEvent) {
        let line = format!("  {}/{}: {} -> {} ({})", e.layer, e.seed, e.from, e.to, e.reason);
        match &self.bar {
            Some(bar) if !bar.is_hidden() => bar.println(line),
            _ if !self.quiet => eprintln!("{line}"),
            _ => {}
        }
    }

    fn rolled_back(&mut self, reason: &str) {
        eprintln!("rollback to the last good epoch: {reason}");
    }

    fn fast_path_fell_back(&mut self, layer: &str, reason: &str) {
        self.note(format!("  {layer}: fast path fell back ({reason})"));
    }

    fn flag_disabled(&mut self, feature: &str, reason: &str) {
        self.note(format!("feature flag {feature} disabled for the rest of this run ({reason})"));
    }
}
