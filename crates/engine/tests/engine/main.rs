//! The engine's integration tests, one binary (each test binary links Burn: one costs less CI
//! time than nine). Kernel suites compile only with the `wgpu` or `cuda` feature.

mod active_kernels;
mod attention;
mod common;
mod derive;
mod faulty_kernels;
mod grafting;
mod kernels;
mod layers;
mod lifecycle;
mod model;
mod parity;
mod precision;
mod telemetry;
