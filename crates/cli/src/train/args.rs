//! The flags of `morphogen train` (also the run flags of `morphogen bench growth`).

use crate::backend::BackendKind;
use clap::Args;
use morphogen::trainer::{ControllerKind, LrSchedule, ModelKind, TaskKind};
use morphogen::Precision;
use std::path::PathBuf;

/// Flags of `morphogen train`; each overrides the config file's value.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// TOML config with `[run]`, `[model]`, `[trainer]` and `[controller]` tables (see
    /// `docs/train.md`); flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data folder: Fashion-MNIST's four IDX .gz files for `--task classify` [default:
    /// /usr/share/datasets/fashion-mnist], a folder of .txt files for `--task lm` [default:
    /// data/shakespeare/texts, made by scripts/get-shakespeare.sh].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Host model preset.
    #[arg(long, value_enum)]
    pub model: Option<ModelArg>,
    /// What the model learns [default: the preset's: classify for mlp, cnn and resnet, lm for
    /// transformer].
    #[arg(long, value_enum)]
    pub task: Option<TaskArg>,
    /// Epochs.
    #[arg(long)]
    pub epochs: Option<u32>,
    /// Examples per step (images, or text windows).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Optimizer steps an epoch takes (validation, growth decisions and a checkpoint at each
    /// epoch end), walking the training set pass after pass [default: one pass an epoch].
    #[arg(long, value_name = "N")]
    pub steps_per_epoch: Option<usize>,
    /// Adam learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// How the learning rate moves: constant, or cosine decay to `[trainer] min_learning_rate`
    /// over the run [default: constant]
    #[arg(long, value_enum)]
    pub lr_schedule: Option<LrScheduleArg>,
    /// Seeds per seeded layer.
    #[arg(long)]
    pub seeds: Option<usize>,
    /// MLP hidden width.
    #[arg(long)]
    pub hidden: Option<usize>,
    /// ResNet channels of the first stage (then twice and four times as many).
    #[arg(long)]
    pub width: Option<usize>,
    /// Transformer blocks.
    #[arg(long)]
    pub layers: Option<usize>,
    /// Transformer width.
    #[arg(long)]
    pub d_model: Option<usize>,
    /// Transformer attention heads (a divisor of --d-model).
    #[arg(long)]
    pub heads: Option<usize>,
    /// Transformer context: characters seen at once.
    #[arg(long)]
    pub context: Option<usize>,
    /// Measure seed telemetry on one training step in N (1: every step; 4: a quarter of the
    /// cost on a GPU, the per-epoch means from a quarter of the batches)
    #[arg(long, value_name = "N")]
    pub telemetry_every: Option<usize>,
    /// The float type the Linear layers' and attention's products compute in: bf16 or f16 is
    /// mixed precision (f32 parameters, optimizer and everything else; mlp and transformer, on
    /// --backend cuda) [default: f32]
    #[arg(long, value_enum)]
    pub precision: Option<PrecisionArg>,
    /// Use only the first N training examples (images, or text windows).
    #[arg(long, value_name = "N")]
    pub train_subset: Option<usize>,
    /// Use only the first N validation examples (test images, or held-out text windows).
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
    /// Take decisions from the controller service on this Redis server
    /// (`redis://[:password@]host:port[/db]`; start one with `morphogen controller serve`)
    /// instead of the controller inside this process. With `--flags`, only where the
    /// `message_bus` flag is on for this run's name. Timeout and fallback: the `[bus]` table.
    #[arg(long, value_name = "URL")]
    pub bus: Option<String>,
    /// Who decides growth: the heuristic, or the neural policy `--policy` (within the same
    /// budgets and gates). With `--flags`, neural only where the `neural_controller` flag is on
    /// for this run's name.
    #[arg(long, value_enum)]
    pub controller: Option<ControllerArg>,
    /// The policy folder for `--controller neural` (made by `morphogen controller
    /// train-policy`); also what `morphogen bench growth`'s `neural` variant uses.
    #[arg(long, value_name = "DIR")]
    pub policy: Option<PathBuf>,
    /// For a `rediss://` bus: a PEM file of the certificate authorities to trust instead of
    /// the system's.
    #[arg(long, value_name = "FILE")]
    pub bus_ca_file: Option<PathBuf>,
    /// Continue the run `--name` from its newest checkpoint that verifies (model, optimizer,
    /// controller state), up to `--epochs` in all; metrics and events are appended.
    #[arg(long)]
    pub resume: bool,
    /// Backend.
    #[arg(long, value_enum, default_value_t = BackendKind::Ndarray)]
    pub backend: BackendKind,
    /// Train data parallel on these devices of the backend, by index (`0,1`: one replica on
    /// each of the first two GPUs, in this process); an index may repeat. Default: the backend's
    /// default device alone.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub devices: Option<Vec<usize>>,
    /// Train over this many processes (nodes), on one host or several, each started with the
    /// same options and its own `--node-rank`; each trains one replica per device of its
    /// `--devices`. Node 0 runs the coordinator and writes the run folder.
    #[arg(long, value_name = "N", requires_all = ["node_rank", "coordinator"])]
    pub nodes: Option<usize>,
    /// This process's index among the `--nodes`, from 0.
    #[arg(long, value_name = "RANK", requires = "nodes")]
    pub node_rank: Option<usize>,
    /// The coordinator's address, `host:port`, the same on every node: node 0 listens on its
    /// port, the others connect to it (and wait up to a minute for it).
    #[arg(long, value_name = "ADDR", value_parser = socket_address, requires = "nodes")]
    pub coordinator: Option<std::net::SocketAddr>,
    /// Where this node serves its tensors to the others, `host:port` (default: this host's
    /// address towards the coordinator, port coordinator + 1 + node rank).
    #[arg(long, value_name = "ADDR", value_parser = socket_address, requires = "nodes")]
    pub node_address: Option<std::net::SocketAddr>,
    /// How long a node waits for the coordinator before it gives up, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, requires = "nodes")]
    pub coordinator_wait: u64,
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
    /// Write where the time goes as a Chrome trace FILE (open it in ui.perfetto.dev or
    /// chrome://tracing): spans for each epoch, step, seeded layer's forward work, backward
    /// pass, optimizer step, loss read, validation, controller decision and checkpoint. On a GPU
    /// the spans are the host's: work queued on the device shows where the host waits for it.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
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

/// Who decides growth, on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ControllerArg {
    /// Grow at the unhealthiest seeds by the configured trigger.
    Heuristic,
    /// A trained neural policy (`--policy`) decides where, what and when to grow.
    Neural,
}

impl From<ControllerArg> for ControllerKind {
    fn from(controller: ControllerArg) -> Self {
        match controller {
            ControllerArg::Heuristic => ControllerKind::Heuristic,
            ControllerArg::Neural => ControllerKind::Neural,
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
    /// Three stages of two residual blocks with batch norm, every block conv seeded.
    Resnet,
    /// Decoder-only causal transformer; attention projections and MLP layers seeded.
    Transformer,
}

impl From<ModelArg> for ModelKind {
    fn from(model: ModelArg) -> Self {
        match model {
            ModelArg::Mlp => ModelKind::Mlp,
            ModelArg::Cnn => ModelKind::Cnn,
            ModelArg::Resnet => ModelKind::Resnet,
            ModelArg::Transformer => ModelKind::Transformer,
        }
    }
}

/// Precisions on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PrecisionArg {
    /// Every product in f32.
    F32,
    /// Products in bfloat16, everything else f32.
    Bf16,
    /// Products in IEEE half precision, everything else f32.
    F16,
}

impl From<PrecisionArg> for Precision {
    fn from(precision: PrecisionArg) -> Self {
        match precision {
            PrecisionArg::F32 => Precision::F32,
            PrecisionArg::Bf16 => Precision::Bf16,
            PrecisionArg::F16 => Precision::F16,
        }
    }
}

/// Learning-rate schedules on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LrScheduleArg {
    /// The same rate at every step.
    Constant,
    /// Cosine decay from `--lr` to `[trainer] min_learning_rate` over the run.
    Cosine,
}

impl From<LrScheduleArg> for LrSchedule {
    fn from(schedule: LrScheduleArg) -> Self {
        match schedule {
            LrScheduleArg::Constant => LrSchedule::Constant,
            LrScheduleArg::Cosine => LrSchedule::Cosine,
        }
    }
}

/// Tasks on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TaskArg {
    /// Image classification on Fashion-MNIST.
    Classify,
    /// Next-character language modelling on a folder of .txt files (Shakespeare).
    Lm,
}

impl From<TaskArg> for TaskKind {
    fn from(task: TaskArg) -> Self {
        match task {
            TaskArg::Classify => TaskKind::Classify,
            TaskArg::Lm => TaskKind::Lm,
        }
    }
}

/// `host:port` resolved to its first address.
fn socket_address(text: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let mut addresses = text.to_socket_addrs().map_err(|e| format!("'{text}' is not a reachable host:port ({e})"))?;
    addresses.next().ok_or_else(|| format!("'{text}' resolves to no address"))
}
