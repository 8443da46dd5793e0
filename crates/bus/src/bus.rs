//! The one interface both buses implement, and what it hands out.

use crate::{stream_key, BusError, Envelope};
use std::path::PathBuf;
use std::time::Duration;

/// The two streams of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    /// The run's state at each decision point, for controllers.
    State,
    /// Controllers' decisions, for the run.
    Commands,
}

impl Topic {
    /// The name in stream keys: `state` or `commands`.
    pub fn name(self) -> &'static str {
        match self {
            Topic::State => "state",
            Topic::Commands => "commands",
        }
    }
}

/// How a bus stores and hands out messages, and whom it trusts.
#[derive(Clone, Debug, PartialEq)]
pub struct BusOptions {
    /// Payloads longer than this (serialized JSON bytes) travel as a claim check.
    pub claim_check_bytes: usize,
    /// How long a claim-checked payload is kept.
    pub blob_ttl: Duration,
    /// For `rediss://` (TLS): a PEM file of the certificate authorities to trust instead of the
    /// system's (a private CA, a self-signed server).
    pub ca_file: Option<PathBuf>,
}

impl Default for BusOptions {
    /// Claim checks above 64 KiB (a 10,000-seed layer's state is hundreds of kilobytes), kept an
    /// hour.
    fn default() -> Self {
        Self { claim_check_bytes: 64 * 1024, blob_ttl: Duration::from_secs(3600), ca_file: None }
    }
}

/// A message handed to one consumer of a group: pending until acknowledged.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    /// The message (its body as sent: inline, or the claim check).
    pub envelope: Envelope,
    /// The payload, claim check resolved and verified.
    pub payload: serde_json::Value,
    /// The stream it came from.
    pub stream: String,
    /// Its entry id in that stream.
    pub entry: String,
    /// The consumer group it was delivered to.
    pub group: String,
}

/// The consumer group of the controllers reading a run's states (each state goes to one).
pub const CONTROLLER_GROUP: &str = "controllers";
/// The consumer group (and consumer) of the run reading its commands.
pub const TRAINER_GROUP: &str = "trainer";

/// A message to publish on one run's stream.
#[derive(Clone, Copy, Debug)]
pub struct Outgoing<'a> {
    /// The run.
    pub run: &'a str,
    /// Which of its streams.
    pub topic: Topic,
    /// The run's step it belongs to.
    pub step: u64,
    /// The id of the message it answers.
    pub reply_to: Option<&'a str>,
    /// Who sends it.
    pub sender: &'a str,
    /// The payload.
    pub payload: &'a serde_json::Value,
}

impl<'a> Outgoing<'a> {
    /// The run's state at `step`, from the trainer, for the controllers.
    pub fn state(run: &'a str, step: u64, payload: &'a serde_json::Value) -> Self {
        Self { run, topic: Topic::State, step, reply_to: None, sender: TRAINER_GROUP, payload }
    }

    /// The stream it goes to.
    pub fn stream(&self) -> String {
        stream_key(self.run, self.topic)
    }

    /// A controller's (`sender`'s) decision on the state it `answers`, for the run.
    pub fn decision(answers: &'a Delivery, sender: &'a str, payload: &'a serde_json::Value) -> Self {
        let envelope = &answers.envelope;
        Self {
            run: &envelope.run,
            topic: Topic::Commands,
            step: envelope.step,
            reply_to: Some(&envelope.id),
            sender,
            payload,
        }
    }
}

/// The runs a [`Reader`] reads: one, or several at once (a controller serving every run).
#[derive(Clone, Copy, Debug)]
pub enum Runs<'a> {
    /// One run.
    One(&'a str),
    /// Several runs.
    Many(&'a [String]),
}

impl<'a> Runs<'a> {
    /// The run names.
    pub fn iter(self) -> impl Iterator<Item = &'a str> {
        let (one, many) = match self {
            Runs::One(run) => (Some(run), &[][..]),
            Runs::Many(runs) => (None, runs),
        };
        one.into_iter().chain(many.iter().map(String::as_str))
    }
}

/// A consumer of runs' streams of one topic, in a group.
#[derive(Clone, Copy, Debug)]
pub struct Reader<'a> {
    /// The runs.
    pub runs: Runs<'a>,
    /// Which of its streams.
    pub topic: Topic,
    /// The consumer group: each message goes to one consumer of it.
    pub group: &'a str,
    /// This consumer's name (unique within the group).
    pub consumer: &'a str,
}

impl<'a> Reader<'a> {
    /// The controller `consumer`, reading `run`'s states in [`CONTROLLER_GROUP`].
    pub fn controller(run: &'a str, consumer: &'a str) -> Self {
        Self { runs: Runs::One(run), topic: Topic::State, group: CONTROLLER_GROUP, consumer }
    }

    /// The controller `consumer`, reading the states of every run in `runs` at once.
    pub fn controllers(runs: &'a [String], consumer: &'a str) -> Self {
        Self { runs: Runs::Many(runs), ..Self::controller("", consumer) }
    }

    /// The streams it reads, one a run.
    pub fn streams(&self) -> Vec<String> {
        self.runs.iter().map(|run| stream_key(run, self.topic)).collect()
    }

    /// The run itself, reading its commands.
    pub fn trainer(run: &'a str) -> Self {
        Self { runs: Runs::One(run), topic: Topic::Commands, group: TRAINER_GROUP, consumer: TRAINER_GROUP }
    }
}

/// A message bus: per-run streams, consumer groups, acknowledgements, and the reclaiming of
/// messages a consumer read and never acknowledged.
pub trait Bus: Send {
    /// Publishes `message`; returns its id.
    fn publish(&mut self, message: Outgoing<'_>) -> Result<String, BusError>;

    /// The next message of the reader's streams not yet delivered to its group, waiting at most
    /// `wait`. Unreadable messages go to the dead-letter stream on the way.
    fn receive(&mut self, reader: Reader<'_>, wait: Duration) -> Result<Option<Delivery>, BusError>;

    /// Marks `delivery` as handled: it is never delivered to its group again.
    fn ack(&mut self, delivery: &Delivery) -> Result<(), BusError>;

    /// Hands the reader the messages of its group that another consumer read at least `idle`
    /// ago and never acknowledged (it died, or hangs).
    fn reclaim(&mut self, reader: Reader<'_>, idle: Duration) -> Result<Vec<Delivery>, BusError>;

    /// Moves `delivery`, readable but unusable (its payload is not what its reader expects),
    /// to the dead-letter stream with `reason`, and acknowledges it.
    fn dead_letter(&mut self, delivery: &Delivery, reason: &str) -> Result<(), BusError>;

    /// The runs that have a state stream on this bus, sorted: what a controller serving every
    /// run reads.
    fn runs(&mut self) -> Result<Vec<String>, BusError>;

    /// Creates `run`'s state stream and its controllers' group, if missing, so that
    /// [`runs`](Bus::runs) lists the run before its first state.
    fn announce(&mut self, run: &str) -> Result<(), BusError>;
}
