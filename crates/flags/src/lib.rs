//! Feature flags for morphogen: named features, each enabled or disabled with a rollout
//! percentage, stored in a TOML file.
//!
//! - **Features** are a closed set ([`Feature`]): `kernels`, `extended_lifecycle`,
//!   `message_bus`, `neural_controller`. An unknown name is a typed error
//!   ([`FlagError::UnknownFeature`]) listing the known ones.
//! - **Membership** of a model or run id is decided by a stable hash ([`bucket`]): SHA-256 of
//!   `"feature:id"`, the first 8 bytes as a big-endian `u64`, modulo 10 000. An id is in when the
//!   feature is enabled and its bucket is below `rollout * 100`, so raising a rollout from 1% to
//!   10% keeps every id that was in at 1%.
//! - **Loading never fails**: [`Flags::load`] turns a missing, unreadable or invalid file into
//!   every feature at its safe default (disabled) plus one warning for the caller to print.
//! - **Writing is strict**: [`FlagFile::enable`] and [`FlagFile::disable`] refuse to overwrite a
//!   file they cannot parse ([`FlagError::InvalidFile`]); a missing file is created. Writes are
//!   atomic (a temporary file in the same directory, fsync, rename), and each change appends one
//!   JSON line (time, action, feature, old and new state) to the audit log beside the file
//!   ([`FlagFile::audit_path`]).
//!
//! ```
//! use morphogen_flags::{Feature, FlagFile, Flags};
//!
//! let dir = std::env::temp_dir().join(format!("morphogen-flags-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let file = FlagFile::new(dir.join("morphogen-flags.toml"));
//!
//! file.enable(Feature::Kernels, 10)?;
//! let (flags, warning) = Flags::load(file.path());
//! assert!(warning.is_none());
//! assert_eq!(flags.state(Feature::Kernels).rollout, 10);
//! let _in = flags.is_enabled_for(Feature::Kernels, "run-42");
//! assert!(!flags.is_enabled_for(Feature::MessageBus, "run-42"));
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), morphogen_flags::FlagError>(())
//! ```

#![warn(missing_docs)]

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

/// The file name the CLI uses when no `--file` is given (in the current directory).
pub const DEFAULT_FILE: &str = "morphogen-flags.toml";

/// Number of hash buckets: rollout is resolved to 1/100 of a percent.
pub const BUCKETS: u64 = 10_000;

/// A named feature that can be rolled out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feature {
    /// Fused GPU kernels for seeded layers.
    Kernels,
    /// Lifecycle stages beyond the default graph.
    ExtendedLifecycle,
    /// Controller commands and events over a message bus.
    MessageBus,
    /// A learned (neural) controller policy.
    NeuralController,
}

impl Feature {
    /// Every feature, in file and display order.
    pub const ALL: [Feature; 4] =
        [Feature::Kernels, Feature::ExtendedLifecycle, Feature::MessageBus, Feature::NeuralController];

    /// The feature's name, as written in the flag file and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Feature::Kernels => "kernels",
            Feature::ExtendedLifecycle => "extended_lifecycle",
            Feature::MessageBus => "message_bus",
            Feature::NeuralController => "neural_controller",
        }
    }

    /// The names of every feature, comma-separated (for messages).
    pub fn known_names() -> String {
        Feature::ALL.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")
    }

    fn index(self) -> usize {
        Feature::ALL.iter().position(|f| *f == self).expect("every feature is in ALL")
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Feature {
    type Err = FlagError;

    fn from_str(name: &str) -> Result<Self, FlagError> {
        Feature::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| FlagError::UnknownFeature { name: name.to_string(), known: Feature::known_names() })
    }
}

/// One feature's setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureState {
    /// Whether the feature is on at all.
    pub enabled: bool,
    /// Percent of ids (0 to 100) the feature applies to when enabled.
    pub rollout: u8,
}

impl FeatureState {
    /// The safe default: disabled, rollout 0.
    pub const DISABLED: FeatureState = FeatureState { enabled: false, rollout: 0 };
}

/// What can go wrong with flags.
#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    /// The feature name is not one of [`Feature::ALL`].
    #[error("unknown feature `{name}`; known features: {known}")]
    UnknownFeature {
        /// The name given.
        name: String,
        /// The known names, comma-separated.
        known: String,
    },
    /// A rollout above 100 percent.
    #[error("rollout {0} is over 100 percent")]
    InvalidRollout(u8),
    /// The flag file exists but is not a valid flag file; it was left untouched.
    #[error("flag file {} is invalid ({problem}); fix or remove it, it was not changed", path.display())]
    InvalidFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

impl FlagError {
    /// Whether the error is the caller's request or file content (as opposed to an I/O failure).
    pub fn is_user_error(&self) -> bool {
        !matches!(self, FlagError::Io { .. })
    }
}

/// The stable bucket of `id` for `feature`, in `0..BUCKETS`: SHA-256 of `"feature:id"`, the
/// first 8 bytes as a big-endian `u64`, modulo [`BUCKETS`].
pub fn bucket(feature: Feature, id: &str) -> u64 {
    let digest = Sha256::digest(format!("{}:{id}", feature.name()).as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) % BUCKETS
}

/// Whether `id` falls inside a `rollout` percent rollout of `feature` (ignoring `enabled`).
pub fn in_rollout(feature: Feature, id: &str, rollout: u8) -> bool {
    bucket(feature, id) < u64::from(rollout.min(100)) * 100
}

/// The state of every feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    states: [FeatureState; 4],
}

impl Flags {
    /// Every feature at its safe default (disabled).
    pub fn defaults() -> Self {
        Flags::default()
    }

    /// Loads `path`, never failing: a missing, unreadable or invalid file gives
    /// [`Flags::defaults`] and a warning saying so, for the caller to print once.
    pub fn load(path: &Path) -> (Flags, Option<String>) {
        match Flags::read(path) {
            Ok(Some(flags)) => (flags, None),
            Ok(None) => {
                (Flags::defaults(), Some(format!("flag file {} not found; every feature is disabled", path.display())))
            }
            Err(error) => (Flags::defaults(), Some(format!("{error}; every feature is disabled"))),
        }
    }

    /// Reads `path` strictly: `Ok(None)` if it does not exist, an error if it cannot be read
    /// or is not a valid flag file.
    pub fn read(path: &Path) -> Result<Option<Flags>, FlagError> {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(FlagError::Io { path: path.to_path_buf(), source }),
        };
        let invalid = |problem: String| FlagError::InvalidFile { path: path.to_path_buf(), problem };
        let text = String::from_utf8(bytes).map_err(|_| invalid("not UTF-8".into()))?;
        Flags::parse(&text).map(Some).map_err(invalid)
    }

    /// Parses the TOML text of a flag file: one table per feature, each with `enabled` and
    /// `rollout`. Features left out are at their defaults.
    pub fn parse(text: &str) -> Result<Flags, String> {
        let tables: BTreeMap<String, FeatureState> = toml::from_str(text).map_err(|e| e.message().to_string())?;
        let mut flags = Flags::defaults();
        for (name, state) in tables {
            let feature = Feature::from_str(&name).map_err(|e| e.to_string())?;
            if state.rollout > 100 {
                return Err(format!("{name}: rollout {} is over 100 percent", state.rollout));
            }
            flags.states[feature.index()] = state;
        }
        Ok(flags)
    }

    /// The TOML text of these flags (every feature, in [`Feature::ALL`] order).
    pub fn to_toml(&self) -> String {
        let tables: BTreeMap<&str, FeatureState> = Feature::ALL.iter().map(|f| (f.name(), self.state(*f))).collect();
        let body = toml::to_string(&tables).expect("flag tables always serialise");
        format!("# morphogen feature flags (written by `morphogen flags`)\n\n{body}")
    }

    /// The state of `feature`.
    pub fn state(&self, feature: Feature) -> FeatureState {
        self.states[feature.index()]
    }

    /// Sets the state of `feature`.
    pub fn set(&mut self, feature: Feature, state: FeatureState) -> Result<(), FlagError> {
        if state.rollout > 100 {
            return Err(FlagError::InvalidRollout(state.rollout));
        }
        self.states[feature.index()] = state;
        Ok(())
    }

    /// Whether `feature` applies to the model or run `id`: enabled, and `id`'s bucket inside
    /// the rollout.
    pub fn is_enabled_for(&self, feature: Feature, id: &str) -> bool {
        let state = self.state(feature);
        state.enabled && in_rollout(feature, id, state.rollout)
    }
}

/// One change of a feature, as written to the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// UTC time of the change, RFC 3339 (`2026-01-31T12:00:00Z`).
    pub time: String,
    /// `enable` or `disable`.
    pub action: String,
    /// The feature's name.
    pub feature: String,
    /// The state before.
    pub old: FeatureState,
    /// The state after.
    pub new: FeatureState,
}

/// A flag file on disk and its audit log, for changing flags.
#[derive(Debug, Clone)]
pub struct FlagFile {
    path: PathBuf,
}

impl FlagFile {
    /// The flag file at `path` (it need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FlagFile { path: path.into() }
    }

    /// The flag file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The audit log beside the file: the file's path with `.audit.jsonl` appended
    /// (`morphogen-flags.toml.audit.jsonl`).
    pub fn audit_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_os_string();
        name.push(".audit.jsonl");
        PathBuf::from(name)
    }

    /// Enables `feature` at `rollout` percent; returns the logged change.
    pub fn enable(&self, feature: Feature, rollout: u8) -> Result<AuditEntry, FlagError> {
        if rollout > 100 {
            return Err(FlagError::InvalidRollout(rollout));
        }
        self.change("enable", feature, FeatureState { enabled: true, rollout })
    }

    /// Disables `feature`, keeping its rollout for a later enable; returns the logged change.
    pub fn disable(&self, feature: Feature) -> Result<AuditEntry, FlagError> {
        let (flags, _) = self.current()?;
        let rollout = flags.state(feature).rollout;
        self.change("disable", feature, FeatureState { enabled: false, rollout })
    }

    /// The flags in the file strictly (defaults if it is missing) and whether it exists.
    fn current(&self) -> Result<(Flags, bool), FlagError> {
        Ok(match Flags::read(&self.path)? {
            Some(flags) => (flags, true),
            None => (Flags::defaults(), false),
        })
    }

    /// Sets `feature` to `new`, writes the file atomically, then appends the audit line.
    fn change(&self, action: &str, feature: Feature, new: FeatureState) -> Result<AuditEntry, FlagError> {
        let (mut flags, _) = self.current()?;
        let old = flags.state(feature);
        flags.set(feature, new)?;
        write_atomic(&self.path, flags.to_toml().as_bytes())
            .map_err(|source| FlagError::Io { path: self.path.clone(), source })?;
        let entry = AuditEntry {
            time: rfc3339_now(),
            action: action.to_string(),
            feature: feature.name().to_string(),
            old,
            new,
        };
        let audit = self.audit_path();
        append_line(&audit, &serde_json::to_string(&entry).expect("audit entries always serialise"))
            .map_err(|source| FlagError::Io { path: audit, source })?;
        Ok(entry)
    }
}

/// The temporary file `write_atomic` writes before renaming it over `path`.
fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Replaces `path` with `bytes` atomically: a temporary file in the same directory, fsync,
/// rename, then a best-effort fsync of the directory. On failure the old file is untouched.
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let temp = temp_path(path);
    let result = (|| {
        let mut file = File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, path)
    })();
    if result.is_err() {
        if temp.is_file() {
            fs::remove_file(&temp).ok();
        }
        return result;
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if let Ok(dir) = File::open(dir) {
        dir.sync_all().ok();
    }
    Ok(())
}

/// Appends `line` and a newline to `path`, creating it, and syncs it.
fn append_line(path: &Path, line: &str) -> io::Result<()> {
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(format!("{line}\n").as_bytes())?;
    file.sync_all()
}

/// The current UTC time as RFC 3339, to the second.
fn rfc3339_now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    rfc3339(secs)
}

/// Formats Unix seconds as RFC 3339 UTC (civil-from-days, proleptic Gregorian).
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn feature() -> impl Strategy<Value = Feature> {
        prop::sample::select(Feature::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn rollout_is_monotonic(f in feature(), id in ".{0,24}", a in 0u8..=100, b in 0u8..=100) {
            let (low, high) = (a.min(b), a.max(b));
            if in_rollout(f, &id, low) {
                prop_assert!(in_rollout(f, &id, high));
            }
        }

        /// Any text, and any mutation of a valid flags file, parses or gives a message; never a panic.
        #[test]
        fn any_text_parses_or_is_refused(text in "(?s).{0,200}", flip in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let _ = Flags::parse(&text);
            let mut valid = Flags::default().to_toml().into_bytes();
            if !valid.is_empty() {
                let i = flip.index(valid.len());
                valid[i] = byte;
            }
            if let Err(message) = Flags::parse(&String::from_utf8_lossy(&valid)) {
                prop_assert!(!message.is_empty());
            }
        }

        #[test]
        fn bucket_is_stable(f in feature(), id in ".{0,24}") {
            let b = bucket(f, &id);
            prop_assert!(b < BUCKETS);
            prop_assert_eq!(b, bucket(f, &id));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        #[test]
        fn rollout_takes_roughly_its_fraction(f in feature(), rollout in 0u8..=100, salt in any::<u32>()) {
            let n = 4000;
            let hits = (0..n).filter(|i| in_rollout(f, &format!("run-{salt}-{i}"), rollout)).count();
            let fraction = hits as f64 / n as f64;
            prop_assert!((fraction - f64::from(rollout) / 100.0).abs() < 0.04, "{} of {} at {}%", hits, n, rollout);
        }
    }

    #[test]
    fn extremes_and_known_bucket() {
        for f in Feature::ALL {
            assert!(!in_rollout(f, "anything", 0));
            assert!(in_rollout(f, "anything", 100));
        }
        // Pinned: a changed hash would silently reshuffle every rollout.
        let digest = Sha256::digest(b"kernels:run-1");
        let expected = u64::from_be_bytes(digest[..8].try_into().unwrap()) % 10_000;
        assert_eq!(bucket(Feature::Kernels, "run-1"), expected);
    }

    #[test]
    fn unknown_feature_lists_known_ones() {
        let error = "kernel".parse::<Feature>().unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, FlagError::UnknownFeature { .. }));
        for f in Feature::ALL {
            assert!(text.contains(f.name()), "{text}");
            assert_eq!(f.name().parse::<Feature>().unwrap(), f);
        }
    }

    #[test]
    fn toml_round_trips() {
        let mut flags = Flags::defaults();
        flags.set(Feature::MessageBus, FeatureState { enabled: true, rollout: 25 }).unwrap();
        assert_eq!(Flags::parse(&flags.to_toml()).unwrap(), flags);
        assert!(flags.set(Feature::Kernels, FeatureState { enabled: true, rollout: 101 }).is_err());
    }

    #[test]
    fn missing_file_gives_defaults_and_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let (flags, warning) = Flags::load(&dir.path().join("none.toml"));
        assert_eq!(flags, Flags::defaults());
        assert!(warning.unwrap().contains("not found"));
    }

    #[test]
    fn corrupt_files_give_defaults_and_one_warning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flags.toml");
        let bad: [&[u8]; 6] = [
            b"this is = = not toml",
            b"[kernels]\nenabled = true\nrollout = 250\n",
            b"[kernels]\nenabled = true\nrollout = 101\n",
            b"[warp_drive]\nenabled = true\nrollout = 5\n",
            b"[kernels]\nenabled = \"yes\"\nrollout = 5\n",
            b"\xff\xfe\x00garbage",
        ];
        for content in bad {
            fs::write(&path, content).unwrap();
            let (flags, warning) = Flags::load(&path);
            assert_eq!(flags, Flags::defaults(), "{}", String::from_utf8_lossy(content));
            let warning = warning.expect("a warning");
            assert!(warning.contains("invalid") && warning.contains("disabled"), "{warning}");
        }
        // A directory where the file should be: unreadable, still defaults.
        let (flags, warning) = Flags::load(dir.path());
        assert_eq!(flags, Flags::defaults());
        assert!(warning.is_some());
    }

    #[test]
    fn writes_refuse_an_invalid_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flags.toml");
        fs::write(&path, "not = = toml").unwrap();
        let file = FlagFile::new(&path);
        assert!(matches!(file.enable(Feature::Kernels, 10), Err(FlagError::InvalidFile { .. })));
        assert!(matches!(file.disable(Feature::Kernels), Err(FlagError::InvalidFile { .. })));
        assert_eq!(fs::read_to_string(&path).unwrap(), "not = = toml");
        assert!(!file.audit_path().exists());
    }

    #[test]
    fn enable_disable_write_the_file_and_the_audit_log() {
        let dir = tempfile::tempdir().unwrap();
        let file = FlagFile::new(dir.path().join("flags.toml"));
        file.enable(Feature::Kernels, 10).unwrap();
        file.enable(Feature::Kernels, 25).unwrap();
        file.disable(Feature::Kernels).unwrap();
        assert!(matches!(file.enable(Feature::Kernels, 101), Err(FlagError::InvalidRollout(101))));

        let (flags, warning) = Flags::load(file.path());
        assert!(warning.is_none());
        assert_eq!(flags.state(Feature::Kernels), FeatureState { enabled: false, rollout: 25 });
        assert_eq!(flags.state(Feature::MessageBus), FeatureState::DISABLED);

        let log = fs::read_to_string(file.audit_path()).unwrap();
        let entries: Vec<AuditEntry> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].action, "enable");
        assert_eq!(entries[0].feature, "kernels");
        assert_eq!(entries[0].old, FeatureState::DISABLED);
        assert_eq!(entries[0].new, FeatureState { enabled: true, rollout: 10 });
        assert_eq!(entries[1].old, entries[0].new);
        assert_eq!(entries[2].action, "disable");
        assert_eq!(entries[2].new, FeatureState { enabled: false, rollout: 25 });
        assert!(entries[0].time.ends_with('Z') && entries[0].time.len() == 20, "{}", entries[0].time);
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = FlagFile::new(dir.path().join("flags.toml"));
        file.enable(Feature::Kernels, 10).unwrap();
        let before = fs::read_to_string(file.path()).unwrap();
        // Block the temporary file's path with a directory, so creating it fails.
        fs::create_dir(temp_path(file.path())).unwrap();
        let error = file.enable(Feature::Kernels, 50).unwrap_err();
        assert!(matches!(error, FlagError::Io { .. }), "{error}");
        assert!(!error.is_user_error());
        assert_eq!(fs::read_to_string(file.path()).unwrap(), before);
        assert_eq!(fs::read_to_string(file.audit_path()).unwrap().lines().count(), 1);
    }

    #[test]
    fn rfc3339_formats_known_times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_767_225_599), "2025-12-31T23:59:59Z");
    }
}
