//! The metrics crate's integration tests, one binary: the exporter's values and HTTP endpoint,
//! and a real Prometheus server scraping it.

mod common;
mod metrics;
mod prometheus;
