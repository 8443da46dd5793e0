//! The transition event log (JSON lines) and progress observers.

use crate::{ErrorKind, OnTimeout, Resources, TrainError};
use burn::tensor::backend::Backend;
use morphogen_contracts::{GlobalMetrics, LayerState, Stage, TransitionEvent};
use morphogen_engine::SeededModel;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Every transition of a run, kept in memory and, if opened on a file, appended to it as one
/// JSON object a line.
#[derive(Debug, Default)]
pub struct EventLog {
    events: Vec<TransitionEvent>,
    file: Option<(PathBuf, std::io::BufWriter<std::fs::File>)>,
}

impl EventLog {
    /// A log kept in memory only.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// A log that also writes to `path`: truncated, or appended to when `append` (a resumed run).
    pub fn to_file(path: &Path, append: bool) -> Result<Self, TrainError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(path)
            .map_err(|source| TrainError::Io { path: path.into(), source })?;
        Ok(Self { events: Vec::new(), file: Some((path.into(), std::io::BufWriter::new(file))) })
    }

    /// Records one event.
    pub fn push(&mut self, event: TransitionEvent) -> Result<(), TrainError> {
        if let Some((path, file)) = &mut self.file {
            let line = serde_json::to_string(&event).expect("events serialise");
            writeln!(file, "{line}")
                .and_then(|_| file.flush())
                .map_err(|source| TrainError::Io { path: path.clone(), source })?;
        }
        self.events.push(event);
        Ok(())
    }

    /// Every event so far.
    pub fn events(&self) -> &[TransitionEvent] {
        &self.events
    }
}

/// How many seeds are in each stage, over every layer: the one-line seed summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StageCounts(pub [usize; 11]);

impl StageCounts {
    /// Counts the seeds of every seeded layer of `model` (from the host tables: no device read,
    /// and the telemetry windows are left alone).
    pub fn of<B: Backend, M: SeededModel<B>>(model: &M) -> Self {
        let mut counts = [0; 11];
        model.visit_seeded(&mut |_, layer| {
            layer.seed_core().table().iter().for_each(|row| counts[row.stage.code() as usize] += 1)
        });
        Self(counts)
    }

    /// Seeds in `stage`.
    pub fn get(&self, stage: Stage) -> usize {
        self.0[stage.code() as usize]
    }
}

impl fmt::Display for StageCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = Stage::ALL
            .iter()
            .filter(|s| self.get(**s) > 0)
            .map(|s| format!("{} {}", s.name().to_lowercase(), self.get(*s)))
            .collect();
        f.write_str(&parts.join(" | "))
    }
}

/// Where an epoch's decisions came from.
#[derive(Clone, Debug, PartialEq)]
pub enum DecisionSource {
    /// The controller inside the run's process.
    InProcess,
    /// A controller service over the message bus.
    Bus {
        /// Its consumer name.
        controller: String,
        /// From publishing the request to reading the reply.
        round_trip: std::time::Duration,
    },
    /// No decision came over the bus, for `reason`; the run paused growth or decided in process,
    /// as `fallback` says.
    Missing {
        /// Why (timeout, or the bus's error).
        reason: String,
        /// What the run did instead.
        fallback: OnTimeout,
    },
}

impl DecisionSource {
    /// Who decided, as logs and metrics label it: `in-process`, the service's name, `paused`.
    pub fn controller(&self) -> &str {
        match self {
            DecisionSource::InProcess | DecisionSource::Missing { fallback: OnTimeout::InProcess, .. } => "in-process",
            DecisionSource::Bus { controller, .. } => controller,
            DecisionSource::Missing { fallback: OnTimeout::Pause, .. } => "paused",
        }
    }

    /// The controller service's name, when one decided over the bus.
    pub fn service(&self) -> Option<&str> {
        match self {
            DecisionSource::Bus { controller, .. } => Some(controller),
            _ => None,
        }
    }

    /// The bus round trip, when a service decided.
    pub fn round_trip(&self) -> Option<std::time::Duration> {
        match self {
            DecisionSource::Bus { round_trip, .. } => Some(*round_trip),
            _ => None,
        }
    }
}

/// Receives progress as a run goes; every method has a do-nothing default.
pub trait Observer {
    /// An epoch of `steps` optimizer steps begins.
    fn epoch_started(&mut self, _epoch: u32, _steps: usize) {}
    /// One optimizer step finished with this loss.
    fn step(&mut self, _loss: f32) {}
    /// An epoch ended: its metrics and the seeds per stage after the controller's decisions
    /// (and after the widening, if the host widened after it).
    fn epoch_ended(&mut self, _metrics: &GlobalMetrics, _seeds: &StageCounts) {}
    /// Every seeded layer's state as measured at an epoch end, before the controller decides.
    fn layers_measured(&mut self, _layers: &[LayerState]) {}
    /// A transition happened.
    fn transition(&mut self, _event: &TransitionEvent) {}
    /// The model went back to its last good state.
    fn rolled_back(&mut self, _reason: &str) {}
    /// The host widened by `features` after `epoch` (`[trainer.widen]`), before that epoch's
    /// [`epoch_ended`](Self::epoch_ended).
    fn widened(&mut self, _epoch: u32, _features: usize) {}
    /// Memory and the seeded layers' share of a forward pass, measured at an epoch end before
    /// the rollback rules are checked.
    fn resources_measured(&mut self, _resources: &Resources) {}
    /// A layer left its fast path for the general one (reported through
    /// [`Signals`](crate::Signals)).
    fn fast_path_fell_back(&mut self, _layer: &str, _reason: &str) {}
    /// An error happened: one the run survives (a diverged step, something reported through
    /// [`Signals`](crate::Signals)), or the one that stops it, just before `run` returns it.
    fn error(&mut self, _kind: ErrorKind, _message: &str) {}
    /// The rollback rule `rule` fired (the rollback itself follows as
    /// [`rolled_back`](Self::rolled_back)).
    fn rule_fired(&mut self, _rule: &str, _reason: &str) {}
    /// A feature flag was switched off for the rest of this run (the flag file is not touched).
    fn flag_disabled(&mut self, _feature: &str, _reason: &str) {}
    /// The controller decided on the state of `epoch` (before the decisions are applied).
    fn decided(&mut self, _epoch: u32, _source: &DecisionSource) {}
}

impl Observer for () {}
