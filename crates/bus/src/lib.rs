//! The message bus (the design's Oona): how a training run and a controller running as its own
//! process talk. The run publishes its state on a per-run stream; controllers read it through a
//! consumer group and publish their decisions on the run's command stream; each side
//! acknowledges what it has applied.
//!
//! - [`Bus`] is the one interface; [`RedisBus`] implements it on Redis Streams, [`InProcessBus`]
//!   in memory for runs that need no server.
//! - Every message is an [`Envelope`]: schema version, run, step, a unique id, and the id of the
//!   message it answers.
//! - A payload over [`BusOptions::claim_check_bytes`] travels as a claim check: stored once as a
//!   blob under a key with a time to live, the message carrying its key, size and SHA-256, which
//!   the reader verifies.
//! - A message that cannot be read (not an envelope, another schema version) moves to the
//!   dead-letter stream with the reason, and is acknowledged where it was.
//! - A message read and never acknowledged stays pending; [`Bus::reclaim`] hands messages idle
//!   for longer than a timeout to another consumer.
#![warn(missing_docs)]

mod bus;
mod envelope;
mod error;
mod memory;
mod names;
mod redis_bus;
mod status;

pub use bus::{Bus, BusOptions, Delivery, Outgoing, Reader, Runs, Topic, CONTROLLER_GROUP, TRAINER_GROUP};
pub use envelope::{Body, ClaimCheck, Envelope, BUS_SCHEMA_VERSION};
pub use error::BusError;
pub use memory::{DeadLetter, InProcessBus};
pub use names::{redacted, run_of_state_stream, stream_key, DEAD_LETTER_STREAM};
pub use redis_bus::RedisBus;
pub use status::{BusStatus, GroupStatus, StreamStatus};
