//! What can go wrong on the bus, each naming what to do.

/// A bus failure. Connection strings in these messages never show a password.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The server cannot be reached or answered with an error.
    #[error("message bus at {url}: {problem}; check that Redis runs there (e.g. `redis-server --port 6390`)")]
    Unreachable {
        /// The server, password redacted.
        url: String,
        /// What failed.
        problem: String,
    },
    /// The connection string does not parse (or its TLS settings are unusable).
    #[error(
        "'{url}' is not a usable Redis URL ({problem}); use redis://[:password@]host:port[/db], or rediss:// for TLS"
    )]
    BadUrl {
        /// The string, password redacted.
        url: String,
        /// Why.
        problem: String,
    },
    /// A claim-checked payload is gone (expired or never stored). The message stays pending, so a
    /// retry or another consumer can try again.
    #[error(
        "the payload of message {message} is missing from {key}; it may have expired (raise the blob time to live)"
    )]
    MissingBlob {
        /// The message id.
        message: String,
        /// The blob key.
        key: String,
    },
    /// A claim-checked payload does not match its claim check. The message stays pending.
    #[error("the payload of message {message} at {key} fails its check: {problem}")]
    AlteredBlob {
        /// The message id.
        message: String,
        /// The blob key.
        key: String,
        /// Length or hash mismatch.
        problem: String,
    },
}
