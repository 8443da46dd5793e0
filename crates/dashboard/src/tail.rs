//! A JSON-lines file read incrementally while another process appends to it.

use crate::{EpochLayers, EpochLine};
use morphogen_contracts::TransitionEvent;
use serde::de::DeserializeOwned;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// A record type of a run file: parsed from one line, then checked.
pub trait Record: DeserializeOwned {
    /// What is wrong with a record that parsed, if anything (the line is then skipped).
    fn problem(&self) -> Option<String> {
        None
    }
}

impl Record for EpochLine {}
impl Record for TransitionEvent {}
impl Record for EpochLayers {
    fn problem(&self) -> Option<String> {
        self.layers.iter().find_map(|layer| layer.problem())
    }
}

/// The records of one JSON-lines file, re-read from where the last read stopped.
///
/// Complete lines are parsed; a line that does not parse (or fails [`Record::problem`]) is
/// skipped and counted; a last line without its newline is left for the next read (it is still
/// being written). A file that shrank was rewritten (a new run of the same name): it is read
/// again from the start.
#[derive(Debug)]
pub struct JsonlTail<T> {
    path: PathBuf,
    offset: u64,
    lines: usize,
    records: Vec<T>,
    skipped: usize,
    first_problem: Option<String>,
    partial: u64,
    state: FileState,
}

/// Whether the file was there at the last read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileState {
    /// Not found.
    Missing,
    /// Read.
    Present,
    /// Found but could not be read (the error, in words).
    Unreadable(String),
}

impl<T: Record> JsonlTail<T> {
    /// A tail of `path`; nothing is read until [`JsonlTail::refresh`].
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.into(),
            offset: 0,
            lines: 0,
            records: Vec::new(),
            skipped: 0,
            first_problem: None,
            partial: 0,
            state: FileState::Missing,
        }
    }

    /// Reads what was appended since the last call; returns whether anything changed.
    pub fn refresh(&mut self) -> bool {
        match self.read_new() {
            Ok(changed) => changed,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.set_state(FileState::Missing),
            Err(e) => self.set_state(FileState::Unreadable(e.to_string())),
        }
    }

    fn set_state(&mut self, state: FileState) -> bool {
        let changed = self.state != state;
        self.state = state;
        changed
    }

    fn read_new(&mut self) -> std::io::Result<bool> {
        let mut file = std::fs::File::open(&self.path)?;
        let len = file.metadata()?.len();
        let mut changed = self.set_state(FileState::Present);
        if len < self.offset {
            *self = Self { state: FileState::Present, ..Self::new(&self.path) };
            changed = true;
        }
        if len == self.offset + self.partial {
            return Ok(changed);
        }
        file.seek(SeekFrom::Start(self.offset))?;
        let mut bytes = Vec::with_capacity((len - self.offset) as usize);
        file.take(len - self.offset).read_to_end(&mut bytes)?;
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        for line in bytes[..complete].split(|b| *b == b'\n') {
            self.take_line(line);
        }
        self.offset += complete as u64;
        self.partial = (bytes.len() - complete) as u64;
        Ok(true)
    }

    fn take_line(&mut self, line: &[u8]) {
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        self.lines += 1;
        let problem = match serde_json::from_slice::<T>(line) {
            Ok(record) => match record.problem() {
                None => return self.records.push(record),
                Some(problem) => problem,
            },
            Err(e) => e.to_string(),
        };
        self.skipped += 1;
        self.first_problem.get_or_insert_with(|| format!("line {}: {problem}", self.lines));
    }

    /// The records read so far, in file order.
    pub fn records(&self) -> &[T] {
        &self.records
    }

    /// Lines skipped because they did not parse or were inconsistent.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// Bytes of an unfinished last line (a writer is still at it), 0 when the file ends cleanly.
    pub fn partial_bytes(&self) -> u64 {
        self.partial
    }

    /// Whether the file was there at the last read.
    pub fn state(&self) -> &FileState {
        &self.state
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the user should know about this file (missing, skipped lines, an unfinished line),
    /// one sentence each; `missing` says what a missing file means.
    pub fn messages(&self, missing: &str) -> Vec<String> {
        let name = self.path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let mut out = Vec::new();
        match &self.state {
            FileState::Missing => out.push(format!("no {name} yet: {missing}")),
            FileState::Unreadable(e) => out.push(format!("cannot read {name}: {e}")),
            FileState::Present => {}
        }
        if let Some(problem) = &self.first_problem {
            out.push(format!("{name}: {} malformed line(s) skipped (first: {problem})", self.skipped));
        }
        if self.partial > 0 {
            out.push(format!("{name}: the last line is incomplete ({} bytes; still being written?)", self.partial));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn metrics(epoch: u32) -> String {
        serde_json::to_string(&morphogen_contracts::GlobalMetrics { epoch, ..Default::default() }).unwrap()
    }

    #[test]
    fn reads_incrementally_skips_malformed_and_waits_for_partial_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let mut tail = JsonlTail::<EpochLine>::new(&path);
        assert!(!tail.refresh());
        assert_eq!(tail.state(), &FileState::Missing);
        assert!(tail.messages("waiting")[0].contains("no metrics.jsonl yet: waiting"));

        let mut file = std::fs::File::create(&path).unwrap();
        write!(file, "{}\n{{not json\n\n{}\n{}", metrics(1), metrics(2), &metrics(3)[..5]).unwrap();
        assert!(tail.refresh());
        assert_eq!(tail.records().iter().map(|m| m.metrics.epoch).collect::<Vec<_>>(), [1, 2]);
        assert_eq!((tail.skipped(), tail.partial_bytes()), (1, 5));
        let messages = tail.messages("").join("\n");
        assert!(messages.contains("1 malformed line(s) skipped (first: line 2"), "{messages}");
        assert!(messages.contains("incomplete"), "{messages}");
        assert!(!tail.refresh(), "nothing new");

        writeln!(file, "{}", &metrics(3)[5..]).unwrap();
        assert!(tail.refresh());
        assert_eq!(tail.records().len(), 3);
        assert_eq!(tail.partial_bytes(), 0);

        std::fs::write(&path, format!("{}\n", metrics(7))).unwrap();
        assert!(tail.refresh(), "a shorter file is a new run");
        assert_eq!(tail.records().iter().map(|m| m.metrics.epoch).collect::<Vec<_>>(), [7]);
        assert_eq!(tail.skipped(), 0);
    }

    #[test]
    fn inconsistent_layer_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layers.jsonl");
        let good = EpochLayers { epoch: 1, step: 0, layers: vec![Default::default()] };
        let mut bad = good.clone();
        bad.layers[0].alpha.push(1.0);
        let lines = [&good, &bad].map(|l| serde_json::to_string(l).unwrap());
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let mut tail = JsonlTail::<EpochLayers>::new(&path);
        tail.refresh();
        assert_eq!((tail.records().len(), tail.skipped()), (1, 1));
    }
}
