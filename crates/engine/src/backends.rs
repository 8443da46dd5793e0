//! The CubeCL backends morphogen's kernels run on, and where CubeCL keeps what it compiles and
//! autotunes between runs.

#[cfg(feature = "cuda")]
/// Burn's CUDA backend without operation fusion: the form on which morphogen's own kernels run
/// (under Burn's `fusion` feature, `burn::backend::Cuda` is `Fusion<CubeCuda>`, and the seeded
/// layers take the tensor path there).
pub type CubeCuda<F = f32> = burn_cubecl::CubeBackend<cubecl::cuda::CudaRuntime, F, i32, u8>;

/// Makes CubeCL keep compiled kernels (CUDA's PTX) and autotune results in `dir`, so a second
/// run starts without compiling or autotuning again. A `cubecl.toml` (or `burn.toml` section)
/// found from the current directory up, or `CUBECL_*` variables, still win where they name a
/// cache. Call it before the first tensor is made on a CubeCL backend: CubeCL reads its
/// configuration once, and this returns `false` (changing nothing) when that already happened.
pub fn persist_kernel_caches(dir: &std::path::Path) -> bool {
    use cubecl::config::cache::CacheConfig;
    use cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};
    let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
    if config.compilation.cache.is_none() {
        config.compilation.cache = Some(CacheConfig::File(dir.to_path_buf()));
    }
    if matches!(config.autotune.cache, CacheConfig::Target) {
        config.autotune.cache = CacheConfig::File(dir.to_path_buf());
    }
    // `RuntimeConfig::set` would panic once the configuration was read: look at the slot first.
    let mut slot = CubeClRuntimeConfig::storage().lock();
    if slot.is_some() {
        return false;
    }
    *slot = Some(std::sync::Arc::new(config));
    true
}
