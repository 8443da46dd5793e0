//! What every message on the bus is: a versioned envelope around a JSON payload, or around a
//! claim check for one stored elsewhere.

use crate::Outgoing;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

/// Version of [`Envelope`]'s serialized form; a reader refuses any other.
pub const BUS_SCHEMA_VERSION: u32 = 1;

/// One message: who sent it for which run and step, and its payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// [`BUS_SCHEMA_VERSION`] when written.
    pub schema_version: u32,
    /// Unique id of this message (also the key that makes applying it idempotent).
    pub id: String,
    /// The run it belongs to.
    pub run: String,
    /// The run's optimizer step when it was sent.
    pub step: u64,
    /// The id of the message this one answers (a decision names the state it decides on).
    pub reply_to: Option<String>,
    /// Who sent it: `trainer`, or the controller's consumer name.
    pub sender: String,
    /// The payload, or where to find it.
    pub body: Body,
}

/// A payload carried in the message, or a claim check for one stored as a blob.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Body {
    /// The payload itself.
    Inline {
        /// The JSON payload.
        payload: serde_json::Value,
    },
    /// Where the payload is and how to check it.
    Claim(ClaimCheck),
}

/// A payload stored once under `key`; the reader checks its length and SHA-256.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClaimCheck {
    /// The blob's key.
    pub key: String,
    /// The payload's length in bytes.
    pub bytes: u64,
    /// The payload's SHA-256, lowercase hex.
    pub sha256: String,
}

impl Envelope {
    /// `message` with a fresh id, its payload carried as `body`.
    pub fn new(message: &Outgoing<'_>, body: Body) -> Self {
        Self {
            schema_version: BUS_SCHEMA_VERSION,
            id: fresh_id(),
            run: message.run.to_string(),
            step: message.step,
            reply_to: message.reply_to.map(str::to_string),
            sender: message.sender.to_string(),
            body,
        }
    }

    /// Parses a message, refusing what is not an envelope or has another schema version; the
    /// error is the reason a dead letter carries.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let not_one = |e: serde_json::Error| format!("not a morphogen bus envelope: {e}");
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(not_one)?;
        match value.get("schema_version").and_then(serde_json::Value::as_u64) {
            Some(version) if version != u64::from(BUS_SCHEMA_VERSION) => {
                Err(format!("schema version {version} where this build reads {BUS_SCHEMA_VERSION}"))
            }
            _ => serde_json::from_value(value).map_err(not_one),
        }
    }
}

/// A process-unique, time-ordered id: nanoseconds since the epoch, process id and a counter.
fn fresh_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{nanos:x}-{:x}-{:x}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_and_other_versions_or_garbage_are_refused() {
        let payload = serde_json::json!({"x": 1});
        let sent = Envelope::new(&Outgoing::state("run", 7, &payload), Body::Inline { payload: payload.clone() });
        let bytes = serde_json::to_vec(&sent).unwrap();
        assert_eq!(Envelope::parse(&bytes).unwrap(), sent);
        let mut newer: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        newer["schema_version"] = 99.into();
        let refused = Envelope::parse(&serde_json::to_vec(&newer).unwrap()).unwrap_err();
        assert!(refused.contains("schema version 99"), "{refused}");
        assert!(Envelope::parse(b"\xff garbage").unwrap_err().contains("not a morphogen bus envelope"));
    }

    #[test]
    fn ids_are_unique() {
        let null = serde_json::Value::Null;
        let body = || Body::Inline { payload: serde_json::Value::Null };
        let ids: std::collections::HashSet<String> =
            (0..1000).map(|_| Envelope::new(&Outgoing::state("r", 0, &null), body()).id).collect();
        assert_eq!(ids.len(), 1000);
    }
}
