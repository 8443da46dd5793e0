//! The host models `morphogen train` grows, one preset a file, and their settings.

mod cnn;
mod config;
mod mlp;
mod resnet;
mod resnet_widening;
mod transformer;
mod transformer_widening;

pub use cnn::Cnn;
pub use config::{ModelConfig, ModelKind, TaskKind};
pub use mlp::Mlp;
pub use resnet::{Projection, ResNet, ResidualBlock};
pub use transformer::{FeedForward, Transformer, TransformerBlock};
