//! The tasks that ship: image classification and next-character language modelling.

mod classification;
mod language;

pub use classification::{ImageBatch, ImageClassification, ImageItem};
pub use language::{NextCharacter, TextBatch, TextItem};
