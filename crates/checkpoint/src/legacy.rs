//! Names written before schema v3, when a seeded layer's seed core was its field `seeds`
//! (`model.fc1.seeds.state.alpha`); since v3 it is `core` (`model.fc1.core.state.alpha`).
//! Older checkpoints are read under the new names, so they restore into today's models.

use crate::manifest::Manifest;
use crate::tensor::TensorMap;

/// The first schema whose seed cores are named `core`.
const CORE_SCHEMA: u32 = 3;

/// Whether a checkpoint of this schema names seed cores the old way.
pub(crate) fn names_seed_cores_old(schema_version: u32) -> bool {
    schema_version < CORE_SCHEMA
}

/// `name` with an old seed-core segment renamed: `.seeds.` before `state`, `banks`, `loss_ema`
/// or `drift_reference` (every tensor a seed core owns), or a seed-core path ending in `seeds`.
pub(crate) fn renamed(name: &str) -> String {
    const OWNED: [&str; 4] = ["state", "banks", "loss_ema", "drift_reference"];
    let parts: Vec<&str> = name.split('.').collect();
    let renamed: Vec<&str> = parts
        .iter()
        .enumerate()
        .map(|(i, &part)| {
            let owner = parts.get(i + 1).is_none_or(|next| OWNED.contains(next));
            if part == "seeds" && owner {
                "core"
            } else {
                part
            }
        })
        .collect();
    renamed.join(".")
}

/// Renames the manifest's tensors and seeded-layer paths (see [`renamed`]).
pub(crate) fn rename_manifest(manifest: &mut Manifest) {
    manifest.tensors.iter_mut().for_each(|t| t.name = renamed(&t.name));
    manifest.seeded_layers.iter_mut().for_each(|l| l.path = renamed(&l.path));
    if let Some(optimizer) = &mut manifest.optimizer {
        optimizer.tensor = renamed(&optimizer.tensor);
    }
}

/// Renames the tensor file's tensors (see [`renamed`]).
pub(crate) fn rename_tensors(tensors: TensorMap) -> TensorMap {
    tensors.into_iter().map(|(name, tensor)| (renamed(&name), tensor)).collect()
}

#[cfg(test)]
mod tests {
    use super::renamed;

    #[test]
    fn only_seed_core_segments_are_renamed() {
        assert_eq!(renamed("model.fc1.seeds.state.alpha"), "model.fc1.core.state.alpha");
        assert_eq!(renamed("model.fc1.seeds.banks.0.pages.1.params.2"), "model.fc1.core.banks.0.pages.1.params.2");
        assert_eq!(renamed("graft.fc1.seeds.loss_ema.0"), "graft.fc1.core.loss_ema.0");
        assert_eq!(renamed("graft.block.fc1.seeds.drift_reference"), "graft.block.fc1.core.drift_reference");
        assert_eq!(renamed("fc1.seeds"), "fc1.core");
        assert_eq!(renamed("model.seeds.host.weight"), "model.seeds.host.weight", "a layer named seeds stays");
        assert_eq!(renamed("model.seeds.seeds.state.stage"), "model.seeds.core.state.stage");
        assert_eq!(renamed("optimizer"), "optimizer");
    }
}
