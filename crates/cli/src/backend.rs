//! The backends a build can run on, and the one place a command is instantiated for each.

use crate::error::CliError;
use clap::ValueEnum;
use morphogen::burn::backend::{Autodiff, NdArray};
use morphogen::burn::tensor::backend::Device as _;
use morphogen::burn::tensor::backend::{AutodiffBackend, Backend, DeviceId, DeviceOps};

/// A backend named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// CPU, `burn::backend::NdArray<f32>`: always built.
    Ndarray,
    /// NVIDIA GPU, Burn's CUDA backend without operation fusion, where morphogen's own kernels
    /// run (`morphogen::CubeCuda<f32>`): built with `--features cuda`.
    Cuda,
    /// NVIDIA GPU with Burn's operation fusion (`burn::backend::Cuda<f32>` built with Burn's
    /// `fusion` feature); the seeded layers take the tensor path: built with `--features fusion`.
    CudaFusion,
}

impl BackendKind {
    /// Every backend the command knows, built or not.
    pub const ALL: [BackendKind; 3] = [BackendKind::Ndarray, BackendKind::Cuda, BackendKind::CudaFusion];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Ndarray => "ndarray",
            BackendKind::Cuda => "cuda",
            BackendKind::CudaFusion => "cuda-fusion",
        }
    }

    /// What the backend runs on, and its Burn type.
    pub fn description(self) -> &'static str {
        match self {
            BackendKind::Ndarray => "CPU (burn::backend::NdArray<f32>)",
            BackendKind::Cuda => "NVIDIA GPU (Burn's CUDA backend, morphogen's kernels, no fusion)",
            BackendKind::CudaFusion => "NVIDIA GPU (Burn's CUDA backend with operation fusion)",
        }
    }

    /// The cargo feature that builds the backend in.
    pub fn feature(self) -> &'static str {
        match self {
            BackendKind::Ndarray => "ndarray",
            BackendKind::Cuda => "cuda",
            BackendKind::CudaFusion => "fusion",
        }
    }

    /// Whether this binary contains the backend.
    pub fn is_built(self) -> bool {
        match self {
            BackendKind::Ndarray => true,
            BackendKind::Cuda => cfg!(feature = "cuda"),
            BackendKind::CudaFusion => cfg!(feature = "fusion"),
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
/// binary lacks is an error. On a GPU, CubeCL's compiled kernels and autotune results are kept
/// for the next run in the folder `kernels` of [`kernel_cache_dir`]: one folder per kernel set
/// (a preset, a benchmark), because CubeCL reads a whole cache at start-up. With one cache shared
/// by every preset (228 MB) a transformer's warm start-up took 4.4 to 5.4 s; with its own (23 MB),
/// 1.1 to 1.3 s (H200, `docs/benchmarks.md`).
#[cfg_attr(not(feature = "cuda"), allow(unused_variables))]
pub fn run_on<T: OnBackend>(kind: BackendKind, kernels: &str, task: T) -> Result<T::Output, CliError> {
    #[cfg(feature = "cuda")]
    if kind != BackendKind::Ndarray {
        let dir = kernel_cache_dir().join(kernels);
        if !dir.exists() {
            eprintln!(
                "note: first GPU run with the kernel cache {}: CubeCL compiles and autotunes its kernels \
                 now (minutes on a large model); later runs read them from there",
                dir.display()
            );
        }
        report_faulty_kernels(&dir, "before this run");
        morphogen::persist_kernel_caches(&dir);
        let output = run_task(kind, task);
        report_faulty_kernels(&dir, "during this run: its results may be wrong; run it again");
        return output;
    }
    run_task(kind, task)
}

fn run_task<T: OnBackend>(kind: BackendKind, task: T) -> Result<T::Output, CliError> {
    match kind {
        BackendKind::Ndarray => task.run::<Autodiff<NdArray<f32>>>(&Default::default()),
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => task.run::<Autodiff<morphogen::CubeCuda<f32>>>(&Default::default()),
        #[cfg(feature = "fusion")]
        BackendKind::CudaFusion => task.run::<Autodiff<morphogen::burn::backend::Cuda<f32>>>(&Default::default()),
        #[allow(unreachable_patterns)] // unreachable when every backend is built
        missing => Err(CliError::BackendNotBuilt { backend: missing.name(), feature: missing.feature() }),
    }
}

/// Moves the kernel cache's autotune choices off kernels known to compute wrong results (ADR
/// 0024) and says which it moved and `when` they had been chosen; a cache it cannot fix is a
/// warning, not a failed run.
#[cfg(feature = "cuda")]
fn report_faulty_kernels(dir: &std::path::Path, when: &str) {
    match morphogen::avoid_faulty_kernels(dir) {
        Ok(swaps) => {
            for swap in swaps {
                eprintln!(
                    "warning: autotune had chosen {} for the shapes {} {when}; it computes wrong results \
                     there (ADR 0024), so the kernel cache now runs {} instead ({})",
                    swap.faulty,
                    swap.shapes,
                    swap.chosen,
                    swap.file.display()
                );
            }
        }
        Err(err) => eprintln!(
            "warning: could not check the kernel cache {} for faulty kernels (ADR 0024): {err}",
            dir.display()
        ),
    }
}

/// The devices of backend `B` numbered `indices` (by `B::device_count`, from 0); none for an
/// empty list.
pub fn devices<B: Backend>(indices: &[usize]) -> Result<Vec<B::Device>, CliError> {
    let kind = B::Device::default().id().type_id;
    let count = B::device_count(kind);
    let device = |&index: &usize| match u16::try_from(index) {
        Ok(id) if index < count => Ok(B::Device::from_id(DeviceId::new(kind, id))),
        _ => Err(CliError::NoSuchDevice { index, count }),
    };
    indices.iter().map(device).collect()
}

/// Where GPU runs keep CubeCL's compiled kernels and autotune results, a folder per kernel set
/// inside it (`mlp`, `transformer`, `bench-layer`, ...): `$MORPHOGEN_KERNEL_CACHE`,
/// else `morphogen/kernels` in the user's cache directory (`~/.cache` on Linux), else
/// `.morphogen-kernels` in the current directory.
pub fn kernel_cache_dir() -> std::path::PathBuf {
    std::env::var_os("MORPHOGEN_KERNEL_CACHE").map(Into::into).unwrap_or_else(|| {
        dirs::cache_dir().map_or_else(|| ".morphogen-kernels".into(), |dir| dir.join("morphogen").join("kernels"))
    })
}
