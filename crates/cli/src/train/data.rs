//! The data a run trains and validates on: Fashion-MNIST images or the windows of a text
//! corpus, cut to the configured subsets.

use crate::error::CliError;
use morphogen::trainer::RunConfig;
use morphogen::trainer::{fashion_mnist, ImageClassification, NextCharacter, TaskData, TextCorpus};

/// The training and validation images of `config`, cut to its subsets.
pub fn image_data(config: &RunConfig) -> Result<TaskData<ImageClassification>, CliError> {
    let (train, valid) = fashion_mnist(&config.data_dir())?;
    let (train_n, valid_n) = subsets(config);
    Ok(train.take(train_n).with_validation(valid.take(valid_n)))
}

/// The training and validation windows of `config`'s text folder (the last
/// `valid_fraction` held out), cut to its subsets.
pub fn text_data(config: &RunConfig) -> Result<TaskData<NextCharacter>, CliError> {
    let corpus = TextCorpus::read(&config.data_dir())?;
    let context = config.model.context;
    let (train, valid) = corpus.split(context, config.run.valid_fraction)?;
    let (train_n, valid_n) = subsets(config);
    let task = NextCharacter { vocab: corpus.vocabulary.len(), context };
    Ok(TaskData::new(task, train.take(train_n), valid.take(valid_n)))
}

/// The training and validation subset sizes (0 in the config: everything).
fn subsets(config: &RunConfig) -> (usize, usize) {
    let all = |n: usize| if n == 0 { usize::MAX } else { n };
    (all(config.run.train_subset), all(config.run.valid_subset))
}
