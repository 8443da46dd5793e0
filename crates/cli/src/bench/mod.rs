//! `morphogen bench`: the benchmarks, each measured in this run and printed as a table.
//!
//! [`layer`] times one seeded layer against its host layer and the per-seed reference loop;
//! [`growth`] compares training static, growing and statically enlarged. Both can also write
//! their rows to a [`json_file`].

pub mod growth;
mod json_file;
pub mod layer;
