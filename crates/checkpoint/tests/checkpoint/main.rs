//! The checkpoint crate's integration tests, one binary (each test binary links Burn: one costs
//! less CI time than seven). The v1 fixture lives in `tests/fixtures`.

mod batchnorm;
mod common;
mod crash;
mod integrity;
mod nested;
mod pytorch;
mod resume;
mod roundtrip;
mod schema;
mod soak;
mod store;
