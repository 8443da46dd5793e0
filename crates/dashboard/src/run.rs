//! A run folder (or a folder of them), re-read as `morphogen train` writes it.

use crate::tail::JsonlTail;
use crate::{DashboardError, EpochLayers, EpochLine};
use morphogen_contracts::TransitionEvent;
use std::path::{Path, PathBuf};

/// The files of a run folder this crate reads.
pub const RUN_FILES: [&str; 4] = ["config.toml", "metrics.jsonl", "events.jsonl", "layers.jsonl"];

/// One run folder: its config and its three JSON-lines files, each read incrementally.
#[derive(Debug)]
pub struct Run {
    name: String,
    dir: PathBuf,
    config: Option<String>,
    metrics: JsonlTail<EpochLine>,
    events: JsonlTail<TransitionEvent>,
    layers: JsonlTail<EpochLayers>,
    version: u64,
}

impl Run {
    /// The run in `dir`, read once. Missing files are not an error (see [`Run::messages`]); a
    /// missing folder is.
    pub fn open(dir: &Path) -> Result<Self, DashboardError> {
        if !dir.is_dir() {
            return Err(DashboardError::NotAFolder { path: dir.into() });
        }
        let name = dir.canonicalize().unwrap_or_else(|_| dir.into());
        let name = name.file_name().map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned());
        let mut run = Self {
            name,
            dir: dir.into(),
            config: None,
            metrics: JsonlTail::new(&dir.join("metrics.jsonl")),
            events: JsonlTail::new(&dir.join("events.jsonl")),
            layers: JsonlTail::new(&dir.join("layers.jsonl")),
            version: 0,
        };
        run.refresh();
        Ok(run)
    }

    /// Reads what was written since the last call; returns whether anything changed (then
    /// [`Run::version`] went up).
    pub fn refresh(&mut self) -> bool {
        let mut changed = false;
        if self.config.is_none() {
            self.config = std::fs::read_to_string(self.dir.join("config.toml")).ok();
            changed |= self.config.is_some();
        }
        changed |= self.metrics.refresh();
        changed |= self.events.refresh();
        changed |= self.layers.refresh();
        self.version += u64::from(changed);
        changed
    }

    /// The folder's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Goes up by one whenever a refresh found something new.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// `config.toml`, once it exists.
    pub fn config(&self) -> Option<&str> {
        self.config.as_deref()
    }

    /// One entry per finished epoch: its metrics and who decided at its end.
    pub fn metrics(&self) -> &[EpochLine] {
        self.metrics.records()
    }

    /// Every transition so far.
    pub fn events(&self) -> &[TransitionEvent] {
        self.events.records()
    }

    /// Per-seed state, one entry per finished epoch.
    pub fn layers(&self) -> &[EpochLayers] {
        self.layers.records()
    }

    /// Malformed lines skipped so far: metrics, events, layers.
    pub fn skipped(&self) -> [usize; 3] {
        [self.metrics.skipped(), self.events.skipped(), self.layers.skipped()]
    }

    /// What is missing, skipped or unfinished, one sentence each (empty for a complete run).
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.config.is_none() {
            out.push("no config.toml yet: the run has not started, or this is not a run folder".to_string());
        }
        out.extend(self.metrics.messages("no epoch has finished (curves appear after the first)"));
        out.extend(self.events.messages("the run has not started, or it logs no transitions"));
        out.extend(self.layers.messages(
            "no per-seed state (no epoch has finished, or an older run): the lattice is rebuilt from events.jsonl",
        ));
        out
    }
}

/// What `morphogen dashboard` / `watch` were pointed at: one run folder, or a folder whose
/// subfolders are runs (rescanned on every refresh, so new runs appear).
#[derive(Debug)]
pub struct RunSet {
    root: PathBuf,
    single: bool,
    runs: Vec<Run>,
}

impl RunSet {
    /// Opens `path`: a run folder if it holds any run file or no subfolder does, else every
    /// subfolder that holds one.
    pub fn open(path: &Path) -> Result<Self, DashboardError> {
        if !path.is_dir() {
            return Err(DashboardError::NotAFolder { path: path.into() });
        }
        let single = is_run(path) || run_dirs(path).is_empty();
        let mut set = Self { root: path.into(), single, runs: Vec::new() };
        if single {
            set.runs.push(Run::open(path)?);
        }
        set.refresh();
        Ok(set)
    }

    /// Refreshes every run and picks up new run folders; returns whether anything changed.
    pub fn refresh(&mut self) -> bool {
        let mut changed = false;
        if !self.single {
            for dir in run_dirs(&self.root) {
                if !self.runs.iter().any(|r| r.dir == dir) {
                    self.runs.extend(Run::open(&dir).ok());
                    changed = true;
                }
            }
            self.runs.sort_by(|a, b| a.name.cmp(&b.name));
        }
        self.runs.iter_mut().fold(changed, |acc, run| run.refresh() | acc)
    }

    /// The runs, by name.
    pub fn runs(&self) -> &[Run] {
        &self.runs
    }

    /// The run named `name`.
    pub fn get(&self, name: &str) -> Option<&Run> {
        self.runs.iter().find(|r| r.name == name)
    }

    /// The folder given.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// Whether `dir` holds any run file.
fn is_run(dir: &Path) -> bool {
    RUN_FILES.iter().any(|f| dir.join(f).is_file())
}

/// The subfolders of `root` that are runs.
fn run_dirs(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else { return Vec::new() };
    entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir() && is_run(p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_folder_is_an_error_and_an_empty_one_says_what_is_missing() {
        let err = RunSet::open(Path::new("/nonexistent/run")).unwrap_err();
        assert!(err.is_user_error() && err.to_string().contains("not a folder"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let set = RunSet::open(dir.path()).unwrap();
        assert_eq!(set.runs().len(), 1);
        let messages = set.runs()[0].messages().join("\n");
        for file in RUN_FILES {
            assert!(messages.contains(&format!("no {file} yet")), "{messages}");
        }
    }

    #[test]
    fn a_folder_of_runs_lists_them_and_finds_new_ones() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b", "a"] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
            std::fs::write(dir.path().join(name).join("events.jsonl"), "").unwrap();
        }
        std::fs::create_dir(dir.path().join("not-a-run")).unwrap();
        let mut set = RunSet::open(dir.path()).unwrap();
        assert_eq!(set.runs().iter().map(Run::name).collect::<Vec<_>>(), ["a", "b"]);
        std::fs::create_dir(dir.path().join("c")).unwrap();
        std::fs::write(dir.path().join("c").join("config.toml"), "").unwrap();
        assert!(set.refresh());
        assert!(set.get("c").is_some() && set.get("not-a-run").is_none());
    }
}
