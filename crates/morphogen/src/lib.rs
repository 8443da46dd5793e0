//! morphogen: a Rust engine for *morphogenetic training*. A network carries thousands of
//! *logical seeds* per layer; each can germinate a small blueprint, train it in isolation, graft
//! it in and fossilize it, or be culled, all while the host model trains.
//!
//! This crate re-exports the whole public API, so depending on `morphogen` alone is enough:
//!
//! ```
//! use morphogen::burn::backend::{Autodiff, NdArray};
//! use morphogen::burn::tensor::Tensor;
//! use morphogen::{SeededLinearConfig, Stage};
//!
//! type B = Autodiff<NdArray>;
//! let device = Default::default();
//! let mut fc1 = SeededLinearConfig::new(784, 256).with_num_seeds(64).init::<B>(&device);
//! let y = fc1.forward(Tensor::<B, 2>::zeros([8, 784], &device));
//! assert_eq!(y.dims(), [8, 256]);
//! fc1.request_germination(3, "residual_mlp", "fixed_ramp")?;
//! fc1.advance(3, Stage::Training)?;
//! assert_eq!(fc1.seed(3)?.stage, Stage::Training);
//! # Ok::<(), morphogen::MorphogenError>(())
//! ```
#![warn(missing_docs)]

/// Checkpoints: save, verify, resume, roll back, and exchange weights with PyTorch.
pub use morphogen_checkpoint as checkpoint;
pub use morphogen_engine::*;

/// The growth controller (Tamiyo).
pub use morphogen_controller as controller;
/// The trainer (Tolaria), data sets and preset models.
pub use morphogen_trainer as trainer;
