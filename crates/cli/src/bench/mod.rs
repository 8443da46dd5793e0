//! `morphogen bench`: the benchmarks, each measured in this run and printed as a table.
//!
//! [`layer`] times one seeded layer against its host layer and the per-seed reference loop;
//! [`growth`] compares training static, growing and statically enlarged; [`bus`] times the
//! decision round trip over a Redis server. Each can also write its rows to a [`json_file`].

pub mod bus;
pub mod growth;
mod json_file;
pub mod layer;
