//! The trainer's integration tests, one binary: the growth loop end to end, and the automatic
//! rollback rules, both on real Fashion-MNIST (Debian's `dataset-fashion-mnist`).

mod common;
mod growth_loop;
mod rollback_rules;
