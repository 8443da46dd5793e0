//! The bus inside one process: the same streams, groups, acknowledgements and reclaiming as on
//! Redis, kept in memory, for runs that need no server (and for the trainer and a controller
//! thread of one process). Clones share the streams.

use crate::envelope::Body;
use crate::{run_of_state_stream, stream_key, Bus, BusError, Delivery, Envelope, Outgoing, Reader, Topic};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// An in-memory bus; every clone sees the same messages.
#[derive(Clone, Debug, Default)]
pub struct InProcessBus {
    shared: Arc<(Mutex<Streams>, Condvar)>,
}

#[derive(Debug, Default)]
struct Streams {
    streams: HashMap<String, Stream>,
    next_entry: u64,
    dead_letters: Vec<DeadLetter>,
}

/// A message moved aside: where it was, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    /// The stream it was on.
    pub stream: String,
    /// Its entry id there.
    pub entry: String,
    /// Why it could not be used.
    pub reason: String,
}

#[derive(Debug, Default)]
struct Stream {
    entries: Vec<(String, Envelope)>,
    groups: HashMap<String, Group>,
}

/// A consumer group: how far it has read, and what it read and has not acknowledged.
#[derive(Debug, Default)]
struct Group {
    next: usize,
    /// Entry id -> (index in the stream, when delivered).
    pending: BTreeMap<String, (usize, Instant)>,
}

impl InProcessBus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// The messages moved to the dead-letter stream, oldest first.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.lock().dead_letters.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Streams> {
        // A panic elsewhere while holding the lock leaves the streams consistent (every change
        // is one statement), so a poisoned lock is still usable.
        self.shared.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn delivery(stream: &str, group: &str, entry: &str, envelope: &Envelope) -> Delivery {
    let Body::Inline { payload } = &envelope.body else { unreachable!("in-process messages are inline") };
    Delivery {
        envelope: envelope.clone(),
        payload: payload.clone(),
        stream: stream.into(),
        entry: entry.into(),
        group: group.into(),
    }
}

impl Bus for InProcessBus {
    fn publish(&mut self, message: Outgoing<'_>) -> Result<String, BusError> {
        let envelope = Envelope::new(&message, Body::Inline { payload: message.payload.clone() });
        let id = envelope.id.clone();
        let mut streams = self.lock();
        streams.next_entry += 1;
        let entry = format!("{}-0", streams.next_entry);
        streams.streams.entry(message.stream()).or_default().entries.push((entry, envelope));
        drop(streams);
        self.shared.1.notify_all();
        Ok(id)
    }

    fn receive(&mut self, reader: Reader<'_>, wait: Duration) -> Result<Option<Delivery>, BusError> {
        let (keys, group) = (reader.streams(), reader.group);
        let deadline = Instant::now() + wait;
        let mut streams = self.lock();
        loop {
            for key in &keys {
                let stream = streams.streams.entry(key.clone()).or_default();
                let state = stream.groups.entry(group.to_string()).or_default();
                if let Some((entry, envelope)) = stream.entries.get(state.next) {
                    state.pending.insert(entry.clone(), (state.next, Instant::now()));
                    state.next += 1;
                    return Ok(Some(delivery(key, group, entry, envelope)));
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            streams = self.shared.1.wait_timeout(streams, left).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    fn ack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        let mut streams = self.lock();
        if let Some(group) = streams.streams.get_mut(&delivery.stream).and_then(|s| s.groups.get_mut(&delivery.group)) {
            group.pending.remove(&delivery.entry);
        }
        Ok(())
    }

    fn reclaim(&mut self, reader: Reader<'_>, idle: Duration) -> Result<Vec<Delivery>, BusError> {
        // Which consumer holds a pending message matters to nothing here: only its idle time.
        let group = reader.group;
        let mut streams = self.lock();
        let mut claimed = Vec::new();
        for key in reader.streams() {
            let Some(stream) = streams.streams.get_mut(&key) else { continue };
            let Some(state) = stream.groups.get_mut(group) else { continue };
            for (entry, (index, delivered)) in state.pending.iter_mut() {
                if delivered.elapsed() >= idle {
                    *delivered = Instant::now();
                    claimed.push(delivery(&key, group, entry, &stream.entries[*index].1));
                }
            }
        }
        Ok(claimed)
    }

    fn dead_letter(&mut self, delivery: &Delivery, reason: &str) -> Result<(), BusError> {
        self.ack(delivery)?;
        let (stream, entry, reason) = (delivery.stream.clone(), delivery.entry.clone(), reason.to_string());
        self.lock().dead_letters.push(DeadLetter { stream, entry, reason });
        Ok(())
    }

    fn announce(&mut self, run: &str) -> Result<(), BusError> {
        self.lock().streams.entry(stream_key(run, Topic::State)).or_default();
        Ok(())
    }

    fn runs(&mut self) -> Result<Vec<String>, BusError> {
        let mut runs: Vec<String> =
            self.lock().streams.keys().filter_map(|key| run_of_state_stream(key)).map(str::to_string).collect();
        runs.sort();
        Ok(runs)
    }
}
