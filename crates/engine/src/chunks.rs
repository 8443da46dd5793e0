//! How a layer's output features are split into seeds.
//!
//! `features` split into `seeds` contiguous chunks whose sizes differ by at most one: the first
//! `features % seeds` chunks hold one feature more. That makes the chunks two *uniform groups*,
//! so per-seed reductions are a reshape and a sum per group, never a loop over seeds.

use morphogen_contracts::MorphogenError;
use std::ops::Range;

/// The chunk layout of one seeded layer, computed once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkMap {
    features: usize,
    seeds: usize,
}

/// A run of consecutive seeds whose chunks all have the same size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UniformGroup {
    /// First feature of the group.
    pub first_feature: usize,
    /// Number of seeds in the group.
    pub seeds: usize,
    /// Features per seed in the group.
    pub chunk: usize,
}

impl ChunkMap {
    /// Splits `features` among `seeds`; needs `1 <= seeds <= features`.
    pub fn new(layer: &str, features: usize, seeds: usize) -> Result<Self, MorphogenError> {
        if seeds == 0 || seeds > features {
            return Err(MorphogenError::InvalidConfig {
                component: format!("seeded layer '{layer}'"),
                problem: format!("num_seeds = {seeds} with {features} output features"),
                hint: format!("use 1 <= num_seeds <= {features} (one seed per feature at most)"),
            });
        }
        Ok(Self { features, seeds })
    }

    /// Output features (channels) covered.
    pub fn features(&self) -> usize {
        self.features
    }

    /// Number of seeds.
    pub fn seeds(&self) -> usize {
        self.seeds
    }

    /// Features of the narrow chunks (wide ones hold one more).
    pub(crate) fn base(&self) -> usize {
        self.features / self.seeds
    }

    /// Chunks one feature wider than `base`: the first ones.
    pub(crate) fn big_chunks(&self) -> usize {
        self.features % self.seeds
    }

    /// The largest chunk size: the padded width every blueprint of the layer works on.
    pub fn width(&self) -> usize {
        self.base() + usize::from(self.big_chunks() > 0)
    }

    /// The features owned by `seed` (caller checks `seed < seeds`).
    pub fn range(&self, seed: usize) -> Range<usize> {
        let (base, big) = (self.base(), self.big_chunks());
        // The kernels' `cube::chunk_start` computes the same on the device.
        let start = seed * base + seed.min(big);
        let len = if seed < big { base + 1 } else { base };
        start..start + len
    }

    /// The (at most two) uniform groups, in seed order.
    pub(crate) fn groups(&self) -> Vec<UniformGroup> {
        let (base, big) = (self.base(), self.big_chunks());
        let mut groups = Vec::with_capacity(2);
        if big > 0 {
            groups.push(UniformGroup { first_feature: 0, seeds: big, chunk: base + 1 });
        }
        if self.seeds > big {
            groups.push(UniformGroup { first_feature: big * (base + 1), seeds: self.seeds - big, chunk: base });
        }
        groups
    }

    /// Feature index of each of the `width()` padded positions of `seed`'s chunk, and whether the
    /// position is real. Padding repeats the chunk's first feature; callers mask it out.
    pub fn padded_positions(&self, seed: usize) -> impl Iterator<Item = (usize, bool)> {
        let range = self.range(seed);
        (0..self.width()).map(move |j| {
            let real = j < range.len();
            (if real { range.start + j } else { range.start }, real)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn chunks_tile_features_and_differ_by_at_most_one(features in 1usize..300, seeds_frac in 0.0f64..1.0) {
            let seeds = 1 + ((features - 1) as f64 * seeds_frac) as usize;
            let map = ChunkMap::new("l", features, seeds).unwrap();
            let mut next = 0;
            for s in 0..seeds {
                let r = map.range(s);
                prop_assert_eq!(r.start, next);
                prop_assert!(r.len() == map.width() || r.len() + 1 == map.width());
                next = r.end;
            }
            prop_assert_eq!(next, features);
            let covered: usize = map.groups().iter().map(|g| g.seeds * g.chunk).sum();
            prop_assert_eq!(covered, features);
        }
    }

    #[test]
    fn more_seeds_than_features_is_a_config_error() {
        let err = ChunkMap::new("fc", 4, 5).unwrap_err();
        assert!(err.to_string().contains("num_seeds = 5"));
        assert!(ChunkMap::new("fc", 4, 0).is_err());
        assert_eq!(ChunkMap::new("fc", 4, 4).unwrap().width(), 1);
    }
}
