//! `morphogen bench growth`: does growing help? The same host of any preset trained for the
//! same epochs on its task (1) static, (2) growing with morphogen, (3) static but
//! [`enlarged`] to the parameter count (2) ended with, (4) static at full size (a multiple of
//! the host's parameters), and, if asked, (2) with random sites; several seeds each; the task's score
//! (accuracy, or perplexity) as mean and spread, growth counts, wall time and training FLOPs
//! (counted by a [`meter`]), and the lifecycle's costs.
//!
//! The [`variants`] are trained and summed up in a [`table`], and written as JSON if asked.

mod enlarged;
mod meter;
mod table;
mod variants;

use super::json_file::JsonFile;
use crate::backend::{self, OnBackend};
use crate::error::CliError;
use crate::train::args::TrainArgs;
use crate::train::config;
use crate::train::kernel_set;
use clap::Args;
use morphogen::burn::tensor::backend::AutodiffBackend;
use morphogen::trainer::RunConfig;
use std::path::PathBuf;
use variants::{Comparison, Plan, Variant};

/// Flags of `morphogen bench growth`: the training flags of `morphogen train`, plus repeats.
#[derive(Args, Debug)]
pub struct GrowthArgs {
    /// The run to compare (same flags and config file as `morphogen train`: any preset, task
    /// and backend; boxed to keep `BenchTarget`'s variants of similar size).
    #[command(flatten)]
    pub run: Box<TrainArgs>,
    /// Seeds (repeats) per variant: 1, 2, 3, ... or, with `--seed S`, S, S + 1, ... (seeds
    /// other runs were not chosen on).
    #[arg(long, default_value_t = 3)]
    pub repeats: u64,
    /// The variants to run (`enlarged` needs `growing`), run and listed in this order:
    /// static, growing, random-sites, neural (needs --policy), enlarged, full.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "static,growing,enlarged,full")]
    pub variants: Vec<Variant>,
    /// The full host's trainable parameters, as a multiple of the host's.
    #[arg(long, default_value_t = 4.0)]
    pub full_ratio: f64,
    /// Also write every run as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
}

/// `morphogen bench growth`: runs every variant, prints the tables, writes the JSON if asked.
pub fn run(args: &GrowthArgs) -> Result<(), CliError> {
    let mut variants = args.variants.clone();
    variants.sort();
    variants.dedup();
    let plan = Plan {
        variants,
        repeats: args.repeats,
        first_seed: args.run.seed.unwrap_or(1),
        full_ratio: args.full_ratio,
        policy: args.run.policy.clone(),
    };
    plan.validate()?;
    let mut json = JsonFile::create(args.json.as_deref())?;
    let base = config::resolve(&args.run)?;
    let comparison = backend::run_on(args.run.backend, &kernel_set(&base), Variants { base: &base, plan: &plan })?;
    print!("{}", table::table(&comparison));
    if let Some(file) = &mut json {
        file.write(&comparison)?;
    }
    Ok(())
}

/// The variants of one resolved run, as planned.
struct Variants<'a> {
    base: &'a RunConfig,
    plan: &'a Plan,
}

impl OnBackend for Variants<'_> {
    type Output = Comparison;

    /// Trains every variant `repeats` times.
    fn run<B: AutodiffBackend>(self, device: &B::Device) -> Result<Comparison, CliError> {
        variants::run::<B>(device, self.base, self.plan)
    }
}
