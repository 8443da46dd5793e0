//! `morphogen info`: the version and the backends of this build, and where GPU runs keep their
//! compiled kernels.

use crate::backend::{kernel_cache_dir, BackendKind};

/// The text of `morphogen info`.
pub fn info() -> String {
    let mut text = format!("morphogen {}\nbackends in this build:\n", env!("CARGO_PKG_VERSION"));
    for kind in BackendKind::ALL {
        let line = if kind.is_built() {
            format!("  {:<12} {}\n", kind.name(), kind.description())
        } else {
            format!("  ({} not built: rebuild with `--features {}`)\n", kind.name(), kind.feature())
        };
        text.push_str(&line);
    }
    text.push_str(&format!(
        "GPU kernel cache (compiled kernels, autotune results, a folder per preset, `<preset>-bf16` for mixed precision; set MORPHOGEN_KERNEL_CACHE to move it): {}\n",
        kernel_cache_dir().display()
    ));
    text
}
