//! The trainer's integration tests, one binary: the growth loop end to end, decisions over the
//! message bus, and the automatic rollback rules, on real Fashion-MNIST (Debian's
//! `dataset-fashion-mnist`), and the ResNet and transformer presets grown on images and on Shakespeare's works (`scripts/get-shakespeare.sh`), and the transformer
//! widened mid-run.

mod bus;
mod common;
mod data_parallel;
mod growth_loop;
mod presets;
mod rollback_rules;
mod widening;
