//! `morphogen info`: the version and the backends of this build.

use crate::backend::BackendKind;

/// The text of `morphogen info`.
pub fn info() -> String {
    let mut text = format!("morphogen {}\nbackends in this build:\n", env!("CARGO_PKG_VERSION"));
    for kind in BackendKind::ALL {
        let line = if kind.is_built() {
            format!("  {:<8} {}\n", kind.name(), kind.description())
        } else {
            format!("  ({} not built: rebuild with `--features {}`)\n", kind.name(), kind.name())
        };
        text.push_str(&line);
    }
    text
}
