//! The `morphogen` binary end to end, one module per command family; one test binary, so Burn
//! is linked once.

mod bus;
mod common;
mod dashboard;
mod flags;
mod info_and_bench;
mod kill;
mod load;
mod metrics;
mod nodes;
mod policy;
mod tracing;
mod train;
