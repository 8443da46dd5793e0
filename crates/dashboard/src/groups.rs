//! Layers grouped by block: a model of hundreds of seeded layers (a 12-block transformer has
//! about 72) is shown block by block, each group the layers that share a parent path.

use crate::LatticeLayer;
use serde::{Deserialize, Serialize};

/// Layers that share a parent path, in model order: `blocks.3` holds `blocks.3.fc1` and
/// `blocks.3.fc2`, `blocks.3.attn` holds `blocks.3.attn.query`; top-level layers (`fc1`) share
/// the group named `""`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerGroup {
    /// The parent path (`""` for top-level layers).
    pub name: String,
    /// Indices of its layers in [`RunView::layers`](crate::RunView::layers), in order.
    pub layers: Vec<usize>,
    /// Seeds per stage over its layers, by stage code.
    pub counts: [usize; 11],
}

/// The group a layer belongs to: its path up to the last segment (`""` for a top-level layer).
pub fn group_of(layer: &str) -> &str {
    layer.rsplit_once('.').map_or("", |(parent, _)| parent)
}

/// The groups of `layers`, in the order their first layer appears.
pub fn layer_groups(layers: &[LatticeLayer]) -> Vec<LayerGroup> {
    let mut groups: Vec<LayerGroup> = Vec::new();
    for (index, layer) in layers.iter().enumerate() {
        let name = group_of(&layer.columns.layer);
        let group = match groups.iter().position(|g| g.name == name) {
            Some(at) => &mut groups[at],
            None => {
                groups.push(LayerGroup { name: name.to_string(), layers: Vec::new(), counts: [0; 11] });
                groups.last_mut().expect("just pushed")
            }
        };
        group.layers.push(index);
        group.counts.iter_mut().zip(layer.counts).for_each(|(total, n)| *total += n);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LayerColumns;

    fn layer(name: &str, counts: [usize; 11]) -> LatticeLayer {
        LatticeLayer {
            columns: LayerColumns { layer: name.into(), ..Default::default() },
            measured_epoch: Some(1),
            counts,
        }
    }

    #[test]
    fn layers_group_by_parent_path_in_order() {
        let mut one = [0; 11];
        one[2] = 1;
        let layers = [
            layer("blocks.0.fc1", [3; 11]),
            layer("blocks.0.fc2", one),
            layer("blocks.1.fc1", one),
            layer("blocks.1.attn.query", one),
            layer("head", one),
            layer("blocks.1.fc2", one),
        ];
        let groups = layer_groups(&layers);
        let shape: Vec<(&str, &[usize])> = groups.iter().map(|g| (g.name.as_str(), g.layers.as_slice())).collect();
        assert_eq!(shape, [("blocks.0", &[0, 1][..]), ("blocks.1", &[2, 5]), ("blocks.1.attn", &[3]), ("", &[4])]);
        assert_eq!(groups[0].counts[2], 4);
        assert_eq!(groups[0].counts[0], 3);
        assert_eq!(groups[1].counts.iter().sum::<usize>(), 2);
    }

    #[test]
    fn top_level_layers_share_one_group() {
        assert_eq!(group_of("fc1"), "");
        assert_eq!(group_of("blocks.11.mlp.fc1"), "blocks.11.mlp");
        let groups = layer_groups(&[layer("fc1", [0; 11]), layer("fc2", [0; 11])]);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].layers, [0, 1]);
    }
}
