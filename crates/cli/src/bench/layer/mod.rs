//! `morphogen bench layer`: times SeededLinear(hidden -> hidden) against its host layer and the
//! per-seed reference loop over a grid of shapes.
//!
//! The flags ([`args`]) resolve into a [`plan`]; [`measure`] times every case with a [`timer`]
//! into [`results`], printed as a [`table`] and written as JSON if asked.

pub mod args;
mod measure;
pub mod plan;
mod results;
mod table;
mod timer;

use super::json_file::JsonFile;
use crate::backend::{self, OnBackend};
use crate::error::CliError;
use args::LayerArgs;
use morphogen::burn::tensor::backend::AutodiffBackend;
use plan::Plan;
use results::Results;

/// `morphogen bench layer`: measures the grid, prints the table, writes the JSON if asked.
pub fn run(args: &LayerArgs) -> Result<(), CliError> {
    let mut json = JsonFile::create(args.json.as_deref())?;
    let results = backend::run_on(args.backend, "bench-layer", &args.plan())?;
    print!("{}", results.table());
    if let Some(file) = &mut json {
        file.write(&results)?;
        eprintln!("wrote {}", file.path().display());
    }
    Ok(())
}

impl OnBackend for &Plan {
    type Output = Results;

    /// Measures every case, with autodiff on top for the forward+backward timings.
    fn run<B: AutodiffBackend>(self, device: &B::Device) -> Result<Results, CliError> {
        measure::run::<B>(device, self)
    }
}
