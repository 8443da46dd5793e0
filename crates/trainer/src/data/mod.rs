//! The examples tasks train on, as Burn data sets: images in memory (with the Fashion-MNIST
//! reader) and windows of a text corpus (with the reader of a folder of `.txt` files).

mod fashion_mnist;
mod images;
mod text;

pub use fashion_mnist::{fashion_mnist, FASHION_MNIST_DIR};
pub use images::ImageSet;
pub use text::{TextCorpus, TextWindows, Vocabulary, SHAKESPEARE_DIR};
