//! The controller's tests, one binary: the heuristic on scripted states, and the neural policy.

mod decisions;
mod fixtures;
mod neural;
