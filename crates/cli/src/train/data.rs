//! The images a run trains and validates on.

use super::config::RunConfig;
use crate::error::CliError;
use morphogen::trainer::{fashion_mnist, Dataset};

/// The training and validation sets of `config`, cut to its subsets.
pub fn load_data(config: &RunConfig) -> Result<(Dataset, Dataset), CliError> {
    let (train, valid) = fashion_mnist(&config.run.data)?;
    let subset = |n: usize| if n == 0 { usize::MAX } else { n };
    Ok((train.take(subset(config.run.train_subset)), valid.take(subset(config.run.valid_subset))))
}
