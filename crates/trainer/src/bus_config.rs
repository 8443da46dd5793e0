//! Where a run's decisions come from: the `[bus]` table of the run config.

use morphogen_bus::{redacted, BusOptions};
use morphogen_contracts::MorphogenError;
use serde::{Deserialize, Serialize, Serializer};
use std::time::Duration;

/// What a run does at a decision point when no decision comes over the bus in time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnTimeout {
    /// Go on without decisions this epoch: no seed moves, nothing grows.
    #[default]
    Pause,
    /// Decide with the controller inside the trainer's process.
    InProcess,
}

/// The message bus of a run: the `[bus]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusConfig {
    /// The Redis server the controller service reads (`redis://[:password@]host:port[/db]`, or
    /// `rediss://` for TLS). None: the controller runs inside the trainer's process. Written to
    /// the run folder with its password redacted.
    #[serde(serialize_with = "redacted_url")]
    pub url: Option<String>,
    /// How long a run waits for a decision, in milliseconds, before going on without one.
    pub decision_timeout_ms: u64,
    /// What a run does when no decision comes in time (or Redis is down).
    pub on_timeout: OnTimeout,
    /// Payloads above this many bytes travel as claim checks (stored once, verified by SHA-256).
    pub claim_check_bytes: usize,
    /// How long a claim-checked payload is kept, in seconds.
    pub blob_ttl_secs: u64,
    /// For `rediss://`: a PEM file of the certificate authorities to trust instead of the
    /// system's.
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for BusConfig {
    fn default() -> Self {
        let transport = BusOptions::default();
        Self {
            url: None,
            decision_timeout_ms: 5000,
            on_timeout: OnTimeout::Pause,
            claim_check_bytes: transport.claim_check_bytes,
            blob_ttl_secs: transport.blob_ttl.as_secs(),
            ca_file: None,
        }
    }
}

fn redacted_url<S: Serializer>(url: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
    url.as_deref().map(redacted).serialize(serializer)
}

impl BusConfig {
    /// Checks every value is usable; the error names the field.
    pub fn validate(&self) -> Result<(), MorphogenError> {
        if self.decision_timeout_ms == 0 || self.blob_ttl_secs == 0 {
            return Err(MorphogenError::InvalidConfig {
                component: "bus".into(),
                problem: "decision_timeout_ms and blob_ttl_secs must be at least 1".into(),
                hint: "fix the value in the [bus] table".into(),
            });
        }
        Ok(())
    }

    /// The longest wait for a decision.
    pub fn decision_timeout(&self) -> Duration {
        Duration::from_millis(self.decision_timeout_ms)
    }

    /// The transport's settings.
    pub fn options(&self) -> BusOptions {
        BusOptions {
            claim_check_bytes: self.claim_check_bytes,
            blob_ttl: Duration::from_secs(self.blob_ttl_secs),
            ca_file: self.ca_file.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_is_written_without_its_password_and_zero_waits_are_refused() {
        let config = BusConfig { url: Some("redis://:hunter2@10.0.0.5:6390".into()), ..BusConfig::default() };
        let written = toml::to_string(&config).unwrap();
        assert!(written.contains("redis://:***@10.0.0.5:6390") && !written.contains("hunter2"), "{written}");
        assert!(BusConfig { decision_timeout_ms: 0, ..BusConfig::default() }.validate().is_err());
        let read: BusConfig = toml::from_str("on_timeout = \"in_process\"\n").unwrap();
        assert_eq!(read.on_timeout, OnTimeout::InProcess);
    }
}
