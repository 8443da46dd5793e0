//! What a run shows and logs as it trains: progress bars, the live seed summary,
//! `metrics.jsonl` and `layers.jsonl` (per-seed state).

use super::run_folder::RunFolder;
use super::summary::epoch_numbers;
use crate::error::CliError;
use indicatif::{ProgressBar, ProgressStyle};
use morphogen::trainer::{Observer, StageCounts};
use morphogen::{GlobalMetrics, LayerState, TransitionEvent};
use std::io::Write;
use std::path::PathBuf;

/// How a run reports and whether it continues an earlier one.
#[derive(Clone, Copy, Debug)]
pub struct RunMode {
    /// No progress bars.
    pub quiet: bool,
    /// Continue from the run folder's newest checkpoint.
    pub resume: bool,
}

/// The trainer observer of `morphogen train`: progress bars, the live seed summary,
/// `metrics.jsonl` and `layers.jsonl`.
pub struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
    metrics: std::fs::File,
    path: PathBuf,
    layers: morphogen_dashboard::LayersLog,
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
        Ok(Self { bar: None, quiet: mode.quiet, metrics, path, layers })
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
        let line = format!("epoch {:>3}: {} | seeds: {seeds}", m.epoch, epoch_numbers(m));
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
