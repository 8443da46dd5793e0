//! Which EVALUATING seeds the evaluation gate's measurement removes at once.

use morphogen_contracts::{LayerState, SeedAddress, Stage};
use serde::{Deserialize, Serialize};

/// How EVALUATING seeds are ablated to measure what they contribute (`[trainer] ablation`).
///
/// One seed of a layer that grew many is easily made up for by its neighbours: removed alone it
/// changes the validation loss by less than the noise, even when the group helps. Removing a
/// layer's EVALUATING seeds together measures what they add as a whole, and costs one pass a
/// layer instead of one a seed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ablation {
    /// Every seed on its own: one validation pass a seed.
    #[default]
    Seed,
    /// A layer's EVALUATING seeds together: one pass a layer; each seed carries the group's
    /// numbers, so the gate keeps or culls them together.
    Layer,
}

impl Ablation {
    /// `evaluating` (in layer order) split into the groups measured together.
    pub fn groups(self, evaluating: Vec<SeedAddress>) -> Vec<Vec<SeedAddress>> {
        match self {
            Ablation::Seed => evaluating.into_iter().map(|seed| vec![seed]).collect(),
            Ablation::Layer => {
                let mut groups: Vec<Vec<SeedAddress>> = Vec::new();
                for seed in evaluating {
                    match groups.last_mut() {
                        Some(group) if group[0].layer == seed.layer => group.push(seed),
                        _ => groups.push(vec![seed]),
                    }
                }
                groups
            }
        }
    }

    /// Validation passes that measure the EVALUATING seeds of `layers` (before any cap).
    pub fn passes(self, layers: &[LayerState]) -> usize {
        let evaluating = layers
            .iter()
            .flat_map(|l| {
                l.seeds
                    .iter()
                    .filter(|s| s.stage == Stage::Evaluating)
                    .map(|s| SeedAddress { layer: l.layer.clone(), seed: s.seed })
            })
            .collect();
        self.groups(evaluating).len()
    }
}

#[cfg(test)]
mod tests {
    use super::Ablation;
    use morphogen_contracts::SeedAddress;

    fn at(layer: &str, seed: usize) -> SeedAddress {
        SeedAddress { layer: layer.into(), seed }
    }

    #[test]
    fn layer_ablation_groups_a_layers_seeds_and_seed_ablation_none() {
        let evaluating = vec![at("a", 0), at("a", 2), at("b", 1), at("c", 0), at("c", 3)];
        let sizes = |ablation: Ablation| ablation.groups(evaluating.clone()).iter().map(Vec::len).collect::<Vec<_>>();
        assert_eq!(sizes(Ablation::Layer), [2, 1, 2]);
        assert_eq!(sizes(Ablation::Seed), [1; 5]);
        assert_eq!(Ablation::Layer.groups(evaluating.clone())[2], [at("c", 0), at("c", 3)]);
        assert!(Ablation::Layer.groups(Vec::new()).is_empty());
    }
}
