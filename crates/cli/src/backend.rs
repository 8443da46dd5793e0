//! The backends a build can run on, and the one place a command is instantiated for each.

use crate::error::CliError;
use clap::ValueEnum;
use morphogen::burn::backend::{Autodiff, NdArray};
use morphogen::burn::tensor::backend::AutodiffBackend;

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

/// Work generic over the backend: a command implements it once, and [`run_on`] instantiates
/// it for the backend named on the command line.
pub trait OnBackend {
    /// What the work returns.
    type Output;

    /// Does the work on backend `B` (with autodiff) on `device`.
    fn run<B: AutodiffBackend>(self, device: &B::Device) -> Result<Self::Output, CliError>;
}

/// Runs `task` on `kind` with autodiff on top, on the backend's default device; a backend this
/// binary lacks is an error.
pub fn run_on<T: OnBackend>(kind: BackendKind, task: T) -> Result<T::Output, CliError> {
    match kind {
        BackendKind::Ndarray => task.run::<Autodiff<NdArray<f32>>>(&Default::default()),
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => task.run::<Autodiff<morphogen::burn::backend::Cuda<f32>>>(&Default::default()),
        #[allow(unreachable_patterns)] // unreachable when every backend is built
        missing => Err(CliError::BackendNotBuilt(missing.name())),
    }
}
