//! Where messages live in Redis, and how a server address is shown.

use crate::Topic;

/// The stream of messages that could not be read, with the reason, for every run.
pub const DEAD_LETTER_STREAM: &str = "morphogen:dead-letter";

/// The stream of `topic` for `run`: `morphogen:<run>:<topic>`. Runs sharing one Redis never
/// share a stream.
pub fn stream_key(run: &str, topic: Topic) -> String {
    format!("morphogen:{run}:{}", topic.name())
}

/// The run whose state stream `key` is (`morphogen:<run>:state`), if it is one.
pub fn run_of_state_stream(key: &str) -> Option<&str> {
    key.strip_prefix("morphogen:")?.strip_suffix(":state").filter(|run| !run.is_empty())
}

/// A `SCAN MATCH` pattern covering every stream of [`stream_key`] (with `TYPE stream`, blobs are
/// left out).
pub(crate) const STREAM_PATTERN: &str = "morphogen:*";

/// The key of a claim-checked payload: content-addressed, so the same payload is stored once.
pub(crate) fn blob_key(sha256: &str) -> String {
    format!("morphogen:blob:{sha256}")
}

/// `url` with any password replaced by `***`: what errors and logs show of a connection string.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let Some((credentials, host)) = rest.rsplit_once('@') else { return url.to_string() };
    let user = credentials.split_once(':').map_or(credentials, |(user, _)| user);
    if credentials.contains(':') {
        format!("{scheme}://{user}:***@{host}")
    } else {
        // `redis://password@host` is how a password without a user is often written.
        format!("{scheme}://***@{host}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(redacted("redis://:s3cret@127.0.0.1:6390/0"), "redis://:***@127.0.0.1:6390/0");
        assert_eq!(redacted("rediss://ops:s3cret@host:6380"), "rediss://ops:***@host:6380");
        assert_eq!(redacted("redis://s3cret@host"), "redis://***@host");
        assert_eq!(redacted("redis://127.0.0.1:6390"), "redis://127.0.0.1:6390");
        assert!(!redacted("redis://u:p@ss@host").contains("p@ss"));
    }

    #[test]
    fn streams_are_namespaced_by_run() {
        assert_eq!(stream_key("a", Topic::State), "morphogen:a:state");
        assert_eq!(run_of_state_stream(&stream_key("a:b", Topic::State)), Some("a:b"));
        assert_eq!(run_of_state_stream(&stream_key("a", Topic::Commands)), None);
        assert_eq!(run_of_state_stream(DEAD_LETTER_STREAM), None);
        assert_ne!(stream_key("a", Topic::Commands), stream_key("b", Topic::Commands));
    }
}
