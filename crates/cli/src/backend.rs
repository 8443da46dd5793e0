//! The backends a build can run on, and the one place each command is instantiated for each.

use crate::bench::{self, Plan};
use crate::error::CliError;
use crate::report::Report;
use clap::ValueEnum;
use morphogen::burn::backend::{Autodiff, NdArray};

/// A backend named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// CPU, `burn::backend::NdArray<f32>`: always built.
    Ndarray,
    /// NVIDIA GPU, `burn::backend::Cuda<f32>`: built with `--features cuda`.
    Cuda,
}

impl BackendKind {
    /// Every backend the command knows, built or not.
    pub const ALL: [BackendKind; 2] = [BackendKind::Ndarray, BackendKind::Cuda];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Ndarray => "ndarray",
            BackendKind::Cuda => "cuda",
        }
    }

    /// What the backend runs on, and its Burn type.
    pub fn description(self) -> &'static str {
        match self {
            BackendKind::Ndarray => "CPU (burn::backend::NdArray<f32>)",
            BackendKind::Cuda => "NVIDIA GPU (burn::backend::Cuda<f32>)",
        }
    }

    /// Whether this binary contains the backend.
    pub fn is_built(self) -> bool {
        match self {
            BackendKind::Ndarray => true,
            BackendKind::Cuda => cfg!(feature = "cuda"),
        }
    }
}

/// Runs the layer benchmark on `kind`, with autodiff on top for the forward+backward timings;
/// a backend this binary lacks is an error.
pub fn run_layer_bench(kind: BackendKind, plan: &Plan) -> Result<Report, CliError> {
    match kind {
        BackendKind::Ndarray => bench::run::<Autodiff<NdArray<f32>>>(&Default::default(), plan),
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => bench::run::<Autodiff<morphogen::burn::backend::Cuda<f32>>>(&Default::default(), plan),
        #[allow(unreachable_patterns)] // unreachable when every backend is built
        missing => Err(CliError::BackendNotBuilt(missing.name())),
    }
}

/// Runs `morphogen train` on `kind` (with autodiff); a backend this binary lacks is an error.
pub fn run_training(
    kind: BackendKind,
    config: &crate::train::RunConfig,
    output: crate::train::Output,
) -> Result<(), CliError> {
    match kind {
        BackendKind::Ndarray => crate::train::run::<Autodiff<NdArray<f32>>>(config, output),
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => crate::train::run::<Autodiff<morphogen::burn::backend::Cuda<f32>>>(config, output),
        #[allow(unreachable_patterns)] // unreachable when every backend is built
        missing => Err(CliError::BackendNotBuilt(missing.name())),
    }
}

/// Runs `morphogen bench growth` on `kind`; a backend this binary lacks is an error.
pub fn run_growth(kind: BackendKind, args: &crate::growth::GrowthArgs) -> Result<Vec<crate::growth::RunRow>, CliError> {
    match kind {
        BackendKind::Ndarray => crate::growth::run::<Autodiff<NdArray<f32>>>(args),
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => crate::growth::run::<Autodiff<morphogen::burn::backend::Cuda<f32>>>(args),
        #[allow(unreachable_patterns)] // unreachable when every backend is built
        missing => Err(CliError::BackendNotBuilt(missing.name())),
    }
}
