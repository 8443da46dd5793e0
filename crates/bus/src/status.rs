//! What `morphogen bus status` shows: every run's streams with their consumer groups (pending
//! messages, lag), and the dead letters.

use std::fmt;

/// One consumer group of a stream.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupStatus {
    /// The group's name.
    pub name: String,
    /// Consumers that have read from it.
    pub consumers: u64,
    /// Messages read and not yet acknowledged.
    pub pending: u64,
    /// Messages not yet read by the group (none when Redis cannot tell).
    pub lag: Option<u64>,
}

/// One stream of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamStatus {
    /// The stream's key (`morphogen:<run>:<topic>`).
    pub stream: String,
    /// Messages in it.
    pub length: u64,
    /// Its consumer groups.
    pub groups: Vec<GroupStatus>,
}

/// Every stream of the bus, sorted by key, and the dead letters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BusStatus {
    /// The runs' streams.
    pub streams: Vec<StreamStatus>,
    /// Messages in the dead-letter stream.
    pub dead_letters: u64,
}

impl fmt::Display for BusStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.streams.is_empty() {
            writeln!(f, "no run streams")?;
        } else {
            writeln!(
                f,
                "{:<48} {:>9}  {:<12} {:>9} {:>8} {:>6}",
                "stream", "messages", "group", "consumers", "pending", "lag"
            )?;
        }
        for stream in &self.streams {
            if stream.groups.is_empty() {
                writeln!(f, "{:<48} {:>9}  {:<12}", stream.stream, stream.length, "(no reader)")?;
            }
            for group in &stream.groups {
                let lag = group.lag.map_or("?".to_string(), |lag| lag.to_string());
                writeln!(
                    f,
                    "{:<48} {:>9}  {:<12} {:>9} {:>8} {:>6}",
                    stream.stream, stream.length, group.name, group.consumers, group.pending, lag
                )?;
            }
        }
        writeln!(f, "dead letters: {}", self.dead_letters)
    }
}
