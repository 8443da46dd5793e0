//! Rows of the layer benchmark, printed as a markdown table or written as JSON.

use crate::bench::{ActiveStage, Plan, BLUEPRINT, GRAFT_STEPS, STRATEGY};
use serde::Serialize;
use std::fmt::{self, Write as _};

/// How the seeded forward's GB/s is computed (printed with the table).
const GBPS_FORMULA: &str =
    "4 B x (batch*hidden input + hidden^2 weight + hidden bias + batch*hidden output) / seeded forward time";

/// One point of the grid.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Case {
    /// Rows of the input.
    pub batch: usize,
    /// Features in and out.
    pub hidden: usize,
    /// Seeds of the layer.
    pub seeds: usize,
    /// Percent of seeds asked to be active.
    pub active_percent: usize,
    /// Seeds made active: `active_percent` of `seeds`, rounded.
    pub active_seeds: usize,
}

impl Case {
    /// A case, with the active seed count rounded from the percentage.
    pub fn new(batch: usize, hidden: usize, seeds: usize, active_percent: usize) -> Self {
        let active_seeds = (seeds * active_percent + 50) / 100;
        Case { batch, hidden, seeds, active_percent, active_seeds }
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "batch {} hidden {} seeds {} active {}% ({} seeds)",
            self.batch, self.hidden, self.seeds, self.active_percent, self.active_seeds
        )
    }
}

/// Median milliseconds of the four paths, and their ratios.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Timings {
    /// The host layer alone.
    pub host_ms: f64,
    /// The seeded layer on the tensor path (`LifecycleConfig::kernels` off).
    pub tensor_ms: f64,
    /// The seeded layer with morphogen's kernels on (the tensor path where the backend has none).
    pub kernel_ms: f64,
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
    pub fn new(host_ms: f64, tensor_ms: f64, kernel_ms: f64, reference_ms: Option<f64>) -> Self {
        Timings {
            host_ms,
            tensor_ms,
            kernel_ms,
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
    /// GB/s of the kernel pass: the f32 host output read once, over `kernel_ms`.
    pub kernel_gbps: f64,
    /// The same bytes over `tensor_ms`.
    pub tensor_gbps: f64,
}

impl TelemetryPass {
    /// The pass over `elements` f32 host outputs.
    pub fn new(elements: usize, kernel_ms: f64, tensor_ms: f64) -> Self {
        let gbps = |ms: f64| (4 * elements) as f64 / (ms * 1e-3) / 1e9;
        TelemetryPass { kernel_ms, tensor_ms, kernel_gbps: gbps(kernel_ms), tensor_gbps: gbps(tensor_ms) }
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
pub struct Report {
    /// How it was run.
    pub settings: Settings,
    /// One row per case.
    pub rows: Vec<Row>,
}

/// Column titles of the table.
const COLUMNS: [&str; 24] = [
    "batch",
    "hidden",
    "seeds",
    "active",
    "fwd host ms",
    "fwd tensor ms",
    "fwd kernel ms",
    "fwd ref ms",
    "fwd tensor/host",
    "fwd kernel/host",
    "fwd ref/kernel",
    "f+b host ms",
    "f+b tensor ms",
    "f+b kernel ms",
    "f+b ref ms",
    "f+b tensor/host",
    "f+b kernel/host",
    "f+b ref/kernel",
    "telemetry kernel GB/s",
    "telemetry tensor GB/s",
    "kernels ran (telemetry / active)",
    "state B/seed",
    "host fwd TFLOP/s",
    "seeded fwd GB/s",
];

impl Report {
    /// The settings as a few lines, then the markdown table.
    pub fn table(&self) -> String {
        let mut out = self.header();
        out.push('\n');
        writeln!(out, "| {} |", COLUMNS.join(" | ")).expect("write to String");
        writeln!(out, "|{}", "---|".repeat(COLUMNS.len())).expect("write to String");
        for row in &self.rows {
            writeln!(out, "{}", row.line()).expect("write to String");
        }
        out
    }

    /// Lines describing how the numbers were taken.
    fn header(&self) -> String {
        let s = &self.settings;
        let stage = match s.plan.stage {
            ActiveStage::Grafting => format!(
                "GRAFTING after {} graft_step calls (alpha {})",
                s.graft_steps,
                self.alpha().map_or("n/a".into(), |a| format!("{a:.2}"))
            ),
            ActiveStage::FineTuning => "FINE_TUNING (alpha 1, blueprint fully active)".into(),
        };
        format!(
            "morphogen {} bench layer: SeededLinear(hidden -> hidden), backend {}\n\n\
             - median of {} timed samples after {} warm-up; a sample is the mean of {} back-to-back calls, backend synced before and after\n\
             - active seeds: `{}` blueprint, `{}` strategy, in {stage}; telemetry {}\n\
             - fwd: plain backend; f+b: autodiff backend, `output.sum().backward()`\n\
             - tensor: the seeded layer with `LifecycleConfig::kernels` off; kernel: on (CubeCL kernels where the backend has them: see `kernels ran`)\n\
             - telemetry GB/s: the seeded layer's pass alone on a precomputed host output, all seeds dormant: 4 B x batch x hidden read / time\n\
             - ref: host forward + `morphogen::reference::apply` (per-seed loop), median of {} after 1 warm-up, run only where seeds <= {}\n\
             - host fwd TFLOP/s = 2*batch*hidden^2 / host forward time; seeded fwd GB/s = {}\n",
            s.version, s.backend, s.plan.iters, s.plan.warmup, s.plan.burst, s.blueprint, s.strategy, match (s.plan.telemetry, s.plan.telemetry_every) {
                (false, _) => "off".to_string(),
                (true, 1) => "on".to_string(),
                (true, n) => format!("on, one pass in {n}"),
            }, s.plan.reference_iters, s.plan.reference_max_seeds, s.gbps_formula,
        )
    }

    /// Alpha of the active seeds, from the first row that has any.
    fn alpha(&self) -> Option<f32> {
        self.rows.iter().find_map(|r| r.measured.as_ref()?.alpha)
    }
}

impl Row {
    /// The row as one markdown table line.
    pub fn line(&self) -> String {
        format!("| {} |", cells(self).join(" | "))
    }
}

/// The table cells of one row.
fn cells(row: &Row) -> Vec<String> {
    let c = &row.case;
    let mut cells = vec![
        c.batch.to_string(),
        c.hidden.to_string(),
        c.seeds.to_string(),
        format!("{}% ({})", c.active_percent, c.active_seeds),
    ];
    match (&row.measured, &row.skipped) {
        (Some(m), _) => {
            cells.extend(timing_cells(&m.forward));
            cells.extend(timing_cells(&m.forward_backward));
            let gbps =
                |f: fn(&TelemetryPass) -> f64| m.telemetry.as_ref().map_or("-".into(), |t| format!("{:.0}", f(t)));
            cells.push(gbps(|t| t.kernel_gbps));
            cells.push(gbps(|t| t.tensor_gbps));
            let ran = |yes: bool| if yes { "yes" } else { "no" };
            cells.push(format!("{} / {}", ran(m.telemetry_kernel_ran), ran(m.active_kernel_ran)));
            cells.push(m.state_bytes_per_seed.to_string());
            cells.push(format!("{:.3}", m.host_forward_tflops));
            cells.push(format!("{:.2}", m.seeded_forward_gbps));
        }
        (None, reason) => {
            cells.push(format!("skipped: {}", reason.as_deref().unwrap_or("not measured")));
            cells.resize(COLUMNS.len(), String::new());
        }
    }
    cells
}

/// Host, tensor, kernel, reference milliseconds and the three ratios.
fn timing_cells(t: &Timings) -> [String; 7] {
    let skipped = || "skipped".to_string();
    [
        format!("{:.3}", t.host_ms),
        format!("{:.3}", t.tensor_ms),
        format!("{:.3}", t.kernel_ms),
        t.reference_ms.map_or_else(skipped, |ms| format!("{ms:.3}")),
        ratio(t.tensor_over_host),
        ratio(t.kernel_over_host),
        t.reference_over_kernel.map_or_else(skipped, ratio),
    ]
}

/// A ratio as `1.23x`, or `123x` from 100 up.
fn ratio(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}x")
    } else {
        format!("{x:.2}x")
    }
}
