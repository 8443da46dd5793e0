//! The bus on Redis Streams: `XADD` to publish, `XREADGROUP` to receive, `XACK`, and
//! `XAUTOCLAIM` to reclaim; claim-checked payloads are keys with a time to live.

use crate::envelope::Body;
use crate::names::{blob_key, redacted, DEAD_LETTER_STREAM, STREAM_PATTERN};
use crate::{
    run_of_state_stream, stream_key, Bus, BusError, BusOptions, BusStatus, ClaimCheck, Delivery, Envelope, GroupStatus,
    Outgoing, Reader, StreamStatus, Topic,
};
use redis::streams::{StreamAutoClaimReply, StreamId, StreamInfoGroupsReply, StreamReadOptions, StreamReadReply};
use redis::{Commands, Connection, RedisError};
use sha2::{Digest, Sha256};
use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

/// The stream field holding a message's envelope.
const FIELD: &str = "envelope";

/// A connection to one Redis server. A dropped connection (Redis restarted, a network fault)
/// is reopened on the next call; the call that saw it fails with [`BusError::Unreachable`].
pub struct RedisBus {
    client: redis::Client,
    connection: Option<Connection>,
    timeout: Duration,
    url: String,
    options: BusOptions,
    /// Groups known to exist (forgotten on reconnection: a restarted Redis may have lost them).
    groups: HashSet<(String, String)>,
    /// Entries one read of several streams returned beyond the first: already delivered to
    /// their consumer, handed out by the next calls.
    unread: VecDeque<Unread>,
}

/// An entry delivered by Redis and not yet handed out.
struct Unread {
    stream: String,
    group: String,
    consumer: String,
    entry: StreamId,
}

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBus").field("url", &self.url).field("options", &self.options).finish()
    }
}

impl RedisBus {
    /// Connects to `url` (`redis://[:password@]host:port[/db]`), within `timeout`.
    pub fn connect(url: &str, options: BusOptions, timeout: Duration) -> Result<Self, BusError> {
        let mut bus = Self::open(url, options, timeout)?;
        bus.run(|c| redis::cmd("PING").query::<String>(c))?;
        Ok(bus)
    }

    /// A bus on `url` that connects at its first call (and after every drop), each call
    /// waiting at most `timeout` for the server: for a run that must go on while Redis is down.
    /// Only a URL that does not parse is an error here.
    pub fn open(url: &str, options: BusOptions, timeout: Duration) -> Result<Self, BusError> {
        let shown = redacted(url);
        let client = client(url, options.ca_file.as_deref())
            .map_err(|problem| BusError::BadUrl { url: shown.clone(), problem })?;
        let (groups, unread) = (HashSet::new(), VecDeque::new());
        Ok(Self { client, connection: None, timeout, url: shown, options, groups, unread })
    }

    /// The server's URL, password redacted.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs `op` on the connection, opening it first if needed; forgets a dropped connection.
    fn run<T>(&mut self, op: impl FnOnce(&mut Connection) -> redis::RedisResult<T>) -> Result<T, BusError> {
        if self.connection.is_none() {
            let opened =
                self.client.get_connection_with_timeout(self.timeout).map_err(|e| unreachable(&self.url, &e))?;
            opened.set_read_timeout(Some(self.timeout)).map_err(|e| unreachable(&self.url, &e))?;
            self.connection = Some(opened);
            self.groups.clear();
        }
        let result = op(self.connection.as_mut().expect("opened above"));
        if let Err(e) = &result {
            if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout() {
                self.connection = None;
            }
        }
        result.map_err(|e| unreachable(&self.url, &e))
    }

    /// The keys of every stream matching `pattern`, sorted.
    fn stream_keys(&mut self, pattern: &str) -> Result<Vec<String>, BusError> {
        let mut keys: Vec<String> = self.run(|c| {
            redis::cmd("SCAN")
                .cursor_arg(0)
                .arg("MATCH")
                .arg(pattern)
                .arg("TYPE")
                .arg("stream")
                .clone()
                .iter(c)?
                .collect()
        })?;
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    /// Every run stream with its groups, and the dead letters.
    pub fn status(&mut self) -> Result<BusStatus, BusError> {
        let mut keys = self.stream_keys(STREAM_PATTERN)?;
        keys.retain(|key| key != DEAD_LETTER_STREAM);
        let mut streams = Vec::new();
        for key in keys {
            let length: u64 = self.run(|c| c.xlen(&key))?;
            let groups: StreamInfoGroupsReply = self.run(|c| c.xinfo_groups(&key))?;
            let groups = groups
                .groups
                .into_iter()
                .map(|g| GroupStatus {
                    name: g.name,
                    consumers: g.consumers as u64,
                    pending: g.pending as u64,
                    lag: g.lag.map(|lag| lag as u64),
                })
                .collect();
            streams.push(StreamStatus { stream: key, length, groups });
        }
        let dead_letters: u64 = self.run(|c| c.xlen(DEAD_LETTER_STREAM))?;
        Ok(BusStatus { streams, dead_letters })
    }

    /// Payloads too large to travel inline are stored once under their hash.
    fn body(&mut self, payload: &serde_json::Value) -> Result<Body, BusError> {
        let bytes = serde_json::to_vec(payload).expect("JSON values serialize");
        if bytes.len() <= self.options.claim_check_bytes {
            return Ok(Body::Inline { payload: payload.clone() });
        }
        let sha256 = hex(&Sha256::digest(&bytes));
        let key = blob_key(&sha256);
        let ttl = self.options.blob_ttl.as_secs().max(1);
        self.run(|c| c.set_ex::<_, _, ()>(&key, &bytes, ttl))?;
        Ok(Body::Claim(ClaimCheck { key, bytes: bytes.len() as u64, sha256 }))
    }

    /// The payload of `envelope`, its claim check fetched and verified.
    fn payload(&mut self, envelope: &Envelope) -> Result<serde_json::Value, BusError> {
        let check = match &envelope.body {
            Body::Inline { payload } => return Ok(payload.clone()),
            Body::Claim(check) => check,
        };
        let stored: Option<Vec<u8>> = self.run(|c| c.get(&check.key))?;
        let stored =
            stored.ok_or_else(|| BusError::MissingBlob { message: envelope.id.clone(), key: check.key.clone() })?;
        let altered =
            |problem: String| BusError::AlteredBlob { message: envelope.id.clone(), key: check.key.clone(), problem };
        if stored.len() as u64 != check.bytes {
            return Err(altered(format!("{} bytes where the claim check says {}", stored.len(), check.bytes)));
        }
        let actual = hex(&Sha256::digest(&stored));
        if actual != check.sha256 {
            return Err(altered(format!("SHA-256 {actual} where the claim check says {}", check.sha256)));
        }
        serde_json::from_slice(&stored).map_err(|e| altered(format!("not JSON: {e}")))
    }

    /// Creates `group` on `stream` (and the stream) once.
    fn ensure_group(&mut self, stream: &str, group: &str) -> Result<(), BusError> {
        if self.groups.contains(&(stream.to_string(), group.to_string())) {
            return Ok(());
        }
        self.run(|c| match c.xgroup_create_mkstream::<_, _, _, ()>(stream, group, "0") {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => other,
        })?;
        self.groups.insert((stream.to_string(), group.to_string()));
        Ok(())
    }

    /// Turns a stream entry into a delivery; an unreadable one goes to the dead-letter stream
    /// and is acknowledged (`None`).
    fn deliver(&mut self, stream: &str, group: &str, entry: &StreamId) -> Result<Option<Delivery>, BusError> {
        let raw: Vec<u8> = entry.get(FIELD).unwrap_or_default();
        let envelope = match Envelope::parse(&raw) {
            Ok(envelope) => envelope,
            Err(reason) => {
                self.bury(stream, group, &entry.id, &reason, &raw)?;
                return Ok(None);
            }
        };
        let payload = match self.payload(&envelope) {
            // Its blob outlived: no retry can ever read it, so it is not left pending forever.
            Err(BusError::MissingBlob { .. }) if self.older_than_blobs(&entry.id) => {
                let reason = "its claim-checked payload expired (older than the blob time to live)";
                self.bury(stream, group, &entry.id, reason, &raw)?;
                return Ok(None);
            }
            other => other?,
        };
        Ok(Some(Delivery { envelope, payload, stream: stream.into(), entry: entry.id.clone(), group: group.into() }))
    }

    /// Whether the stream entry `id` (`<milliseconds>-<n>`) was added longer ago than a blob
    /// lives.
    fn older_than_blobs(&self, id: &str) -> bool {
        let added = id.split('-').next().and_then(|ms| ms.parse::<u64>().ok());
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        added.is_some_and(|ms| now.saturating_sub(Duration::from_millis(ms)) > self.options.blob_ttl)
    }

    /// Copies the entry `id` of `stream` (its `raw` bytes) to the dead-letter stream with
    /// `reason`, and acknowledges it for `group`.
    fn bury(&mut self, stream: &str, group: &str, id: &str, reason: &str, raw: &[u8]) -> Result<(), BusError> {
        let fields: [(&str, &[u8]); 4] =
            [("stream", stream.as_bytes()), ("entry", id.as_bytes()), ("reason", reason.as_bytes()), ("raw", raw)];
        self.run(|c| c.xadd::<_, _, _, _, String>(DEAD_LETTER_STREAM, "*", &fields))?;
        self.run(|c| c.xack::<_, _, _, i64>(stream, group, &[id]))?;
        Ok(())
    }

    /// The first entry left from an earlier read of `reader`'s streams, delivered.
    fn next_unread(&mut self, reader: &Reader<'_>, streams: &[String]) -> Result<Option<Delivery>, BusError> {
        while let Some(at) = self
            .unread
            .iter()
            .position(|u| u.group == reader.group && u.consumer == reader.consumer && streams.contains(&u.stream))
        {
            let unread = self.unread.remove(at).expect("found above");
            if let Some(delivery) = self.deliver(&unread.stream, &unread.group, &unread.entry)? {
                return Ok(Some(delivery));
            }
        }
        Ok(None)
    }
}

/// A client for `url`; with `ca_file`, TLS trusts the certificate authorities in it.
fn client(url: &str, ca_file: Option<&std::path::Path>) -> Result<redis::Client, String> {
    let Some(path) = ca_file else { return redis::Client::open(url).map_err(|e| e.to_string()) };
    if !url.starts_with("rediss://") {
        return Err(format!("a CA file ({}) is for rediss:// (TLS) servers only", path.display()));
    }
    let root_cert = std::fs::read(path).map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?;
    let certificates = redis::TlsCertificates { client_tls: None, root_cert: Some(root_cert) };
    redis::Client::build_with_tls(url, certificates).map_err(|e| e.to_string())
}

fn unreachable(url: &str, error: &RedisError) -> BusError {
    BusError::Unreachable { url: url.to_string(), problem: error.to_string() }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Bus for RedisBus {
    fn publish(&mut self, message: Outgoing<'_>) -> Result<String, BusError> {
        let envelope = Envelope::new(&message, self.body(message.payload)?);
        let bytes = serde_json::to_vec(&envelope).expect("envelopes serialize");
        self.run(|c| c.xadd::<_, _, _, _, String>(message.stream(), "*", &[(FIELD, bytes)]))?;
        Ok(envelope.id)
    }

    fn receive(&mut self, reader: Reader<'_>, wait: Duration) -> Result<Option<Delivery>, BusError> {
        let streams = reader.streams();
        if let Some(delivery) = self.next_unread(&reader, &streams)? {
            return Ok(Some(delivery));
        }
        if streams.is_empty() {
            std::thread::sleep(wait);
            return Ok(None);
        }
        for stream in &streams {
            self.ensure_group(stream, reader.group)?;
        }
        let from_new = vec![">"; streams.len()];
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // BLOCK 0 would wait forever: at least a millisecond; at most half the read timeout.
            let block = left.min(self.timeout / 2).as_millis().max(1) as usize;
            let options = StreamReadOptions::default().group(reader.group, reader.consumer).count(1).block(block);
            let reply: Option<StreamReadReply> = self.run(|c| c.xread_options(&streams, &from_new, &options))?;
            for key in reply.map(|r| r.keys).unwrap_or_default() {
                for entry in key.ids {
                    let (group, consumer) = (reader.group.to_string(), reader.consumer.to_string());
                    self.unread.push_back(Unread { stream: key.key.clone(), group, consumer, entry });
                }
            }
            if let Some(delivery) = self.next_unread(&reader, &streams)? {
                return Ok(Some(delivery));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
        }
    }

    fn ack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        self.run(|c| c.xack::<_, _, _, i64>(&delivery.stream, &delivery.group, &[&delivery.entry]))?;
        Ok(())
    }

    fn reclaim(&mut self, reader: Reader<'_>, idle: Duration) -> Result<Vec<Delivery>, BusError> {
        let mut deliveries = Vec::new();
        for stream in reader.streams() {
            self.ensure_group(&stream, reader.group)?;
            let mut command = redis::cmd("XAUTOCLAIM");
            command
                .arg(&stream)
                .arg(reader.group)
                .arg(reader.consumer)
                .arg(idle.as_millis() as u64)
                .arg("0-0")
                .arg("COUNT")
                .arg(100);
            let reply: StreamAutoClaimReply = self.run(|c| command.query(c))?;
            for entry in &reply.claimed {
                deliveries.extend(self.deliver(&stream, reader.group, entry)?);
            }
        }
        Ok(deliveries)
    }

    fn dead_letter(&mut self, delivery: &Delivery, reason: &str) -> Result<(), BusError> {
        let raw = serde_json::to_vec(&delivery.envelope).expect("envelopes serialize");
        self.bury(&delivery.stream, &delivery.group, &delivery.entry, reason, &raw)
    }

    fn announce(&mut self, run: &str) -> Result<(), BusError> {
        self.ensure_group(&stream_key(run, Topic::State), crate::CONTROLLER_GROUP)
    }

    fn runs(&mut self) -> Result<Vec<String>, BusError> {
        let keys = self.stream_keys(&stream_key("*", Topic::State))?;
        Ok(keys.iter().filter_map(|key| run_of_state_stream(key)).map(str::to_string).collect())
    }
}
