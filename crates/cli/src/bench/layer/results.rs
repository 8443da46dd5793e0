//! What `morphogen bench layer` measured: one row per case and the run's settings, as written
//! to JSON (and printed as the markdown table).

use super::plan::{ActiveStage, Case, Plan, BLUEPRINT, GRAFT_STEPS, STRATEGY};
use super::timer::CallTime;
use serde::Serialize;

/// How the seeded forward's GB/s is computed (printed with the table).
const GBPS_FORMULA: &str =
    "4 B x (batch*hidden input + hidden^2 weight + hidden bias + batch*hidden output) / seeded forward time";

/// Median milliseconds of the four paths, and their ratios.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Timings {
    /// The host layer alone.
    pub host_ms: f64,
    /// The seeded layer on the tensor path (`LifecycleConfig::kernels` off).
    pub tensor_ms: f64,
    /// The seeded layer with morphogen's kernels on (the tensor path where the backend has none).
    pub kernel_ms: f64,
    /// Of `kernel_ms`, the host's time to queue the call: close to `kernel_ms`, the host, not
    /// the device, bounds the seeded layer.
    pub kernel_queue_ms: f64,
    /// Host plus the per-seed reference loop; `None` where it was skipped.
    pub reference_ms: Option<f64>,
    /// `tensor_ms / host_ms`.
    pub tensor_over_host: f64,
    /// `kernel_ms / host_ms`: the seeds' overhead factor.
    pub kernel_over_host: f64,
    /// `reference_ms / kernel_ms`: the speed-up over the reference loop.
    pub reference_over_kernel: Option<f64>,
}

impl Timings {
    /// Timings with their ratios.
    pub fn new(host_ms: f64, tensor_ms: f64, kernel: CallTime, reference_ms: Option<f64>) -> Self {
        let kernel_ms = kernel.ms;
        Timings {
            host_ms,
            tensor_ms,
            kernel_ms,
            kernel_queue_ms: kernel.queue_ms,
            reference_ms,
            tensor_over_host: tensor_ms / host_ms,
            kernel_over_host: kernel_ms / host_ms,
            reference_over_kernel: reference_ms.map(|r| r / kernel_ms),
        }
    }
}

/// The telemetry pass alone (every seed dormant, on a precomputed host output).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct TelemetryPass {
    /// With morphogen's kernels.
    pub kernel_ms: f64,
    /// On the tensor path.
    pub tensor_ms: f64,
    /// Host milliseconds a kernel pass took to queue: close to `kernel_ms`, the host, not the
    /// device, bounds the pass.
    pub kernel_queue_ms: f64,
    /// GB/s of the kernel pass: the f32 host output read once, over `kernel_ms`.
    pub kernel_gbps: f64,
    /// The same bytes over `tensor_ms`.
    pub tensor_gbps: f64,
}

impl TelemetryPass {
    /// The pass over `elements` f32 host outputs.
    pub fn new(elements: usize, kernel: CallTime, tensor_ms: f64) -> Self {
        let gbps = |ms: f64| (4 * elements) as f64 / (ms * 1e-3) / 1e9;
        TelemetryPass {
            kernel_ms: kernel.ms,
            tensor_ms,
            kernel_queue_ms: kernel.queue_ms,
            kernel_gbps: gbps(kernel.ms),
            tensor_gbps: gbps(tensor_ms),
        }
    }
}

/// What was measured for one case.
#[derive(Clone, Debug, Serialize)]
pub struct Measured {
    /// Forward only, on the plain backend.
    pub forward: Timings,
    /// Forward, `sum()`, backward, on the autodiff backend.
    pub forward_backward: Timings,
    /// The telemetry pass alone; `None` with active seeds or telemetry off.
    pub telemetry: Option<TelemetryPass>,
    /// Whether the kernel path really ran the telemetry kernel (a CubeCL backend, chunks within
    /// its tile).
    pub telemetry_kernel_ran: bool,
    /// Whether it ran the active-seed kernel (a CubeCL backend, a blueprint it runs, active seeds).
    pub active_kernel_ran: bool,
    /// `state_bytes() / seeds`: device bytes of seed-state columns per seed.
    pub state_bytes_per_seed: usize,
    /// Device bytes of blueprint bank parameters.
    pub bank_bytes: usize,
    /// Alpha of the active seeds; `None` with no active seed.
    pub alpha: Option<f32>,
    /// Achieved TFLOP/s of the host forward (`2 * batch * hidden^2` flops).
    pub host_forward_tflops: f64,
    /// Achieved GB/s of the seeded forward, kernel path (see [`GBPS_FORMULA`]).
    pub seeded_forward_gbps: f64,
}

/// One line of the table.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The shape.
    #[serde(flatten)]
    pub case: Case,
    /// Why the case was not measured, if it was not.
    pub skipped: Option<String>,
    /// The measurements, if taken.
    pub measured: Option<Measured>,
}

impl Row {
    /// A measured row.
    pub fn measured(case: Case, measured: Measured) -> Self {
        Row { case, skipped: None, measured: Some(measured) }
    }

    /// A row the engine refused to build.
    pub fn skipped(case: Case, reason: String) -> Self {
        Row { case, skipped: Some(reason), measured: None }
    }
}

/// The run's settings, written beside the rows.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    /// morphogen version.
    pub version: &'static str,
    /// Burn's name for the backend, and the device.
    pub backend: String,
    /// The plan: grid, iterations, telemetry, active stage.
    #[serde(flatten)]
    pub plan: Plan,
    /// Blueprint of the active seeds.
    pub blueprint: &'static str,
    /// Grafting strategy of the active seeds.
    pub strategy: &'static str,
    /// `graft_step` calls made in GRAFTING.
    pub graft_steps: usize,
    /// How `seeded_forward_gbps` is computed.
    pub gbps_formula: &'static str,
}

impl Settings {
    /// The settings of `plan` on `backend` (Burn's name for it, and the device).
    pub fn new(backend: String, plan: &Plan) -> Self {
        Settings {
            version: env!("CARGO_PKG_VERSION"),
            backend,
            plan: plan.clone(),
            blueprint: BLUEPRINT,
            strategy: STRATEGY,
            graft_steps: if plan.stage == ActiveStage::Grafting { GRAFT_STEPS } else { 0 },
            gbps_formula: GBPS_FORMULA,
        }
    }
}

/// A whole run.
#[derive(Clone, Debug, Serialize)]
pub struct Results {
    /// How it was run.
    pub settings: Settings,
    /// One row per case.
    pub rows: Vec<Row>,
}
