//! What a run shows and logs as it trains: progress bars, the live seed summary,
//! `metrics.jsonl` and `layers.jsonl` (per-seed state).

use super::incidents::Incidents;
use super::run_folder::RunFolder;
use super::summary::epoch_numbers;
use crate::error::CliError;
use indicatif::{ProgressBar, ProgressStyle};
use morphogen::trainer::{DecisionSource, ErrorKind, Observer, StageCounts};
use morphogen::{GlobalMetrics, LayerState, TransitionEvent};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// How a run reports and whether it continues an earlier one.
#[derive(Clone, Copy, Debug)]
pub struct RunMode {
    /// No progress bars.
    pub quiet: bool,
    /// Continue from the run folder's newest checkpoint.
    pub resume: bool,
    /// When the command started (start-up is measured from it).
    pub started: Instant,
}

/// The trainer observer of `morphogen train`: progress bars, the live seed summary,
/// `metrics.jsonl` and `layers.jsonl`.
pub struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
    metrics: std::fs::File,
    path: PathBuf,
    layers: morphogen_dashboard::LayersLog,
    timing: Timing,
    incidents: Incidents,
    /// Who decided at the last decision point, and the bus round trip in milliseconds.
    decision: Option<(String, Option<f64>)>,
    /// Features the host widened by after the epoch now ending.
    widened: Option<usize>,
}

/// Where a run's time went, as the host saw it.
#[derive(Clone, Debug)]
pub struct Timing {
    started: Instant,
    /// Seconds from the command's start to the first training step's loss.
    pub start_up: Option<f64>,
    epoch_began: Option<Instant>,
    /// Seconds of each epoch: training pass, validation, measurements and the controller.
    pub epochs: Vec<f64>,
}

impl Timing {
    /// The median epoch, leaving out the first when there are more (it pays for warm-up).
    pub fn typical_epoch(&self) -> Option<f64> {
        let mut warm: Vec<f64> = self.epochs.iter().skip(usize::from(self.epochs.len() > 1)).copied().collect();
        warm.sort_by(f64::total_cmp);
        warm.get(warm.len() / 2).copied()
    }

    /// One line for the results: start-up and epoch times.
    pub fn line(&self) -> String {
        let epochs: Vec<String> = self.epochs.iter().map(|s| format!("{s:.2}")).collect();
        format!(
            "timing: start-up {} s (command start to first step), epochs {} s, typical epoch {} s",
            self.start_up.map_or("-".into(), |s| format!("{s:.2}")),
            epochs.join(" "),
            self.typical_epoch().map_or("-".into(), |s| format!("{s:.2}")),
        )
    }
}

impl Progress {
    /// Opens the run folder's metric and per-seed logs: appended to on resume, else truncated.
    pub fn new(folder: &RunFolder, mode: RunMode) -> Result<Self, CliError> {
        let path = folder.metrics_path();
        let metrics = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(mode.resume)
            .truncate(!mode.resume)
            .open(&path)
            .map_err(|source| CliError::Write { path: path.clone(), source })?;
        let layers_path = folder.layers_path();
        let layers = morphogen_dashboard::LayersLog::open(&layers_path, mode.resume)
            .map_err(|source| CliError::Write { path: layers_path, source })?;
        let timing = Timing { started: mode.started, start_up: None, epoch_began: None, epochs: Vec::new() };
        let incidents = Incidents::new(folder.path().join("incidents.jsonl"));
        Ok(Self {
            bar: None,
            quiet: mode.quiet,
            metrics,
            path,
            layers,
            timing,
            incidents,
            decision: None,
            widened: None,
        })
    }

    /// Where the run's time went so far.
    pub fn timing(&self) -> &Timing {
        &self.timing
    }

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
        self.timing.epoch_began = Some(Instant::now());
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
        let timing = &mut self.timing;
        timing.start_up = timing.start_up.or_else(|| Some(timing.started.elapsed().as_secs_f64()));
        if let Some(bar) = &self.bar {
            bar.set_message(format!("loss {loss:.4}"));
            bar.inc(1);
        }
    }

    fn epoch_ended(&mut self, m: &GlobalMetrics, seeds: &StageCounts) {
        let seconds = self.timing.epoch_began.take().map_or(0.0, |t| t.elapsed().as_secs_f64());
        self.timing.epochs.push(seconds);
        let line = format!("epoch {:>3}: {} | seeds: {seeds} | {seconds:.2} s", m.epoch, epoch_numbers(m));
        match self.bar.take() {
            Some(bar) if !bar.is_hidden() => bar.finish_with_message(line),
            _ => eprintln!("{line}"),
        }
        let (decided_by, decision_ms) = self.decision.clone().map_or((None, None), |(by, ms)| (Some(by), ms));
        let widened_by = self.widened.take();
        let line = morphogen_dashboard::EpochLine { metrics: *m, decided_by, decision_ms, widened_by };
        let json = serde_json::to_string(&line).expect("metrics serialise");
        if let Err(e) = writeln!(self.metrics, "{json}") {
            warn_append_failed(&self.path, &e);
        }
        if let Err(e) = self.layers.epoch_ended(m.epoch, m.step) {
            warn_append_failed(self.layers.path(), &e);
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

    fn widened(&mut self, epoch: u32, features: usize) {
        self.note(format!("  the host widened by {features} features after epoch {epoch}"));
        self.widened = Some(features);
    }

    fn error(&mut self, kind: ErrorKind, message: &str) {
        self.note(format!("warning ({kind}): {message}"));
        if let Err(e) = self.incidents.record(kind, message) {
            warn_append_failed(&self.incidents.path, &e);
        }
    }

    fn fast_path_fell_back(&mut self, layer: &str, reason: &str) {
        self.note(format!("  {layer}: fast path fell back ({reason})"));
    }

    fn flag_disabled(&mut self, feature: &str, reason: &str) {
        self.note(format!("feature flag {feature} disabled for the rest of this run ({reason})"));
    }

    fn decided(&mut self, _epoch: u32, source: &DecisionSource) {
        let controller = source.controller().to_string();
        let round_trip_ms = source.round_trip().map(|t| t.as_secs_f64() * 1e3);
        let changed = self.decision.as_ref().is_none_or(|(last, _)| *last != controller);
        if changed && source.service().is_some() {
            self.note(format!("decisions from controller {controller} over the bus"));
        }
        self.decision = Some((controller, round_trip_ms));
    }
}

/// A log append failed: the run goes on (its checkpoints decide what a resume keeps).
fn warn_append_failed(path: &std::path::Path, error: &std::io::Error) {
    eprintln!("warning: cannot append to {}: {error}{}", path.display(), morphogen::io_advice(error));
}
