//! The markdown table of `morphogen bench layer`: a few lines on how the numbers were taken,
//! then one line per case.

use super::plan::ActiveStage;
use super::results::{Results, Row, TelemetryPass, Timings};
use std::fmt::Write as _;

/// Column titles of the table.
const COLUMNS: [&str; 27] = [
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
    "fwd kernel queue %",
    "f+b host ms",
    "f+b tensor ms",
    "f+b kernel ms",
    "f+b ref ms",
    "f+b tensor/host",
    "f+b kernel/host",
    "f+b ref/kernel",
    "f+b kernel queue %",
    "telemetry kernel GB/s",
    "telemetry kernel queue %",
    "telemetry tensor GB/s",
    "kernels ran (telemetry / active)",
    "state B/seed",
    "host fwd TFLOP/s",
    "seeded fwd GB/s",
];

impl Results {
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
             - queue %: the share of a kernel-path call's time the host took to queue it (near 100%: the host, not the GPU, bounds it)\n\
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
            cells.push(m.telemetry.as_ref().map_or("-".into(), |t| queue_share(t.kernel_queue_ms, t.kernel_ms)));
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
fn timing_cells(t: &Timings) -> [String; 8] {
    let skipped = || "skipped".to_string();
    [
        format!("{:.3}", t.host_ms),
        format!("{:.3}", t.tensor_ms),
        format!("{:.3}", t.kernel_ms),
        t.reference_ms.map_or_else(skipped, |ms| format!("{ms:.3}")),
        ratio(t.tensor_over_host),
        ratio(t.kernel_over_host),
        t.reference_over_kernel.map_or_else(skipped, ratio),
        queue_share(t.kernel_queue_ms, t.kernel_ms),
    ]
}

/// The share of a call's time the host took to queue it, in percent.
fn queue_share(queue_ms: f64, ms: f64) -> String {
    format!("{:.0}", 100.0 * queue_ms / ms)
}

/// A ratio as `1.23x`, or `123x` from 100 up.
fn ratio(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}x")
    } else {
        format!("{x:.2}x")
    }
}
