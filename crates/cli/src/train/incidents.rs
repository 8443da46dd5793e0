//! `incidents.jsonl`: every error a run reported (a NaN loss, a spike, a quarantined checkpoint,
//! a failed write), one JSON line each, with the time and kind, beside the event log.

use morphogen::trainer::ErrorKind;
use std::io::Write;
use std::path::PathBuf;

/// The run folder's incident log, opened for appending at its first record.
pub struct Incidents {
    /// The file.
    pub path: PathBuf,
    file: Option<std::fs::File>,
}

impl Incidents {
    /// The log at `path` (nothing is created until something happens).
    pub fn new(path: PathBuf) -> Self {
        Self { path, file: None }
    }

    /// Appends one incident.
    pub fn record(&mut self, kind: ErrorKind, message: &str) -> std::io::Result<()> {
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?),
        };
        let time = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        let line = serde_json::json!({ "time": time, "kind": kind.as_str(), "message": message });
        writeln!(file, "{line}")?;
        file.flush()
    }
}
