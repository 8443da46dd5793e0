//! Errors and fast-path fallbacks reported to a running trainer from anywhere in the process.

use crate::{ErrorKind, Observer};
use std::sync::{Arc, Mutex};

/// Something reported while the trainer runs.
#[derive(Clone, Debug, PartialEq)]
enum Signal {
    /// A layer left its fast path for the general one.
    FastPathFallback { layer: String, reason: String },
    /// An error the run survives.
    Error { kind: ErrorKind, message: String },
}

/// A handle for reporting to a running trainer ([`Trainer::signals`](crate::Trainer::signals)):
/// cheap to clone and `Send`, so a model, a kernel wrapper or another thread can hold one.
/// After every step the trainer passes what was reported to its observer and counts it for
/// the `error_rate` rollback rule.
#[derive(Clone, Debug, Default)]
pub struct Signals {
    pending: Arc<Mutex<Vec<Signal>>>,
}

impl Signals {
    /// `layer` fell back from its fast path to the general one, for `reason`.
    pub fn fast_path_fell_back(&self, layer: &str, reason: &str) {
        self.push(Signal::FastPathFallback { layer: layer.into(), reason: reason.into() });
    }

    /// An error of `kind` happened and the run carries on.
    pub fn error(&self, kind: ErrorKind, message: &str) {
        self.push(Signal::Error { kind, message: message.into() });
    }

    fn push(&self, signal: Signal) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.push(signal);
        }
    }

    /// Hands everything reported since the last call to `observer`; returns how many.
    pub(crate) fn pass_to(&self, observer: &mut dyn Observer) -> u64 {
        let signals = self.take();
        for signal in &signals {
            match signal {
                Signal::FastPathFallback { layer, reason } => observer.fast_path_fell_back(layer, reason),
                Signal::Error { kind, message } => observer.error(*kind, message),
            }
        }
        signals.len() as u64
    }

    /// Everything reported since the last call.
    fn take(&self) -> Vec<Signal> {
        self.pending.lock().map(|mut p| std::mem::take(&mut *p)).unwrap_or_default()
    }
}
