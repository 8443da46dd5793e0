//! A data set resident on the training device: uploaded once as one batch, every training and
//! validation batch gathered from it there, so no step waits for the host to build and upload
//! its batch.

use crate::Task;
use burn::data::dataset::Dataset;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::ops::Range;

/// The examples of a data set as one batch on a device (see the module docs).
#[derive(Clone, Debug)]
pub struct DeviceData<B: Backend, T: Task> {
    all: T::Batch<B>,
    len: usize,
    device: B::Device,
}

/// How [`DeviceData::batches`] walks its examples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batching {
    /// Examples per batch (the last batch may be smaller).
    pub size: usize,
    /// Shuffle with this seed (`None`: in order).
    pub shuffle: Option<u64>,
    /// Only the first this many examples (before shuffling).
    pub limit: usize,
    /// Only this part of every batch (`None`: all of it).
    pub shard: Option<Shard>,
}

/// Part `index` of `count` near-equal parts of every batch: a data-parallel replica's share of
/// each global batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// Which part, `0..count`.
    pub index: usize,
    /// Parts every batch is cut into.
    pub count: usize,
}

impl Shard {
    /// The examples of a batch of `size` this part takes: consecutive parts, the first
    /// `size % count` parts taking one example more.
    pub fn range(&self, size: usize) -> Range<usize> {
        let count = self.count.max(1);
        let (base, extra) = (size / count, size % count);
        let start = self.index * base + self.index.min(extra);
        start..start + base + usize::from(self.index < extra)
    }
}

impl Batching {
    /// Every example, in order, `size` at a time.
    pub fn in_order(size: usize) -> Self {
        Self { size, shuffle: None, limit: usize::MAX, shard: None }
    }

    /// Every example, in the random order `seed` gives, `size` at a time.
    pub fn shuffled(size: usize, seed: u64) -> Self {
        Self { size, shuffle: Some(seed), limit: usize::MAX, shard: None }
    }

    /// Only the first `limit` examples.
    pub fn first(self, limit: usize) -> Self {
        Self { limit, ..self }
    }

    /// Only `shard`'s part of every batch. A batch smaller than `shard.count` is skipped, so
    /// that every part of every batch taken has at least one example (all parts skip the same
    /// batches).
    pub fn sharded(self, shard: Shard) -> Self {
        Self { shard: Some(shard), ..self }
    }
}

impl<B: Backend, T: Task> DeviceData<B, T> {
    /// Uploads every example of `data` to `device` as one batch ([`Task::batch`]).
    pub fn upload(task: &T, data: &dyn Dataset<T::Item>, device: &B::Device) -> Self {
        let items: Vec<T::Item> = (0..data.len()).filter_map(|i| data.get(i)).collect();
        let len = items.len();
        Self { all: task.batch(items, device), len, device: device.clone() }
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The batches `batching` asks for, each gathered on the device ([`Task::select`]). The order
    /// (one index tensor) is uploaded once per call.
    pub fn batches<'a>(&'a self, task: &'a T, batching: Batching) -> impl Iterator<Item = T::Batch<B>> + 'a {
        self.some_batches(task, batching, 0..usize::MAX)
    }

    /// Only the batches numbered `range` (from 0) of those `batching` asks for.
    pub fn some_batches<'a>(
        &'a self,
        task: &'a T,
        batching: Batching,
        range: Range<usize>,
    ) -> impl Iterator<Item = T::Batch<B>> + 'a {
        self.sized_batches(task, batching, range).map(|(batch, _)| batch)
    }

    /// [`Self::some_batches`], each batch with the number of examples of the whole batch it is
    /// a shard of (its own number without a shard).
    pub fn sized_batches<'a>(
        &'a self,
        task: &'a T,
        batching: Batching,
        range: Range<usize>,
    ) -> impl Iterator<Item = (T::Batch<B>, usize)> + 'a {
        let n = batching.limit.min(self.len);
        let size = batching.size.max(1);
        let order = self.order(n, batching.shuffle);
        let first = range.start.saturating_mul(size).min(n);
        let whole = Shard { index: 0, count: 1 };
        let shard = batching.shard.unwrap_or(whole);
        (first..n).step_by(size).take(range.len()).filter_map(move |start| {
            let len = size.min(n - start);
            let part = shard.range(len);
            (len >= shard.count).then(|| {
                let indices = order.clone().narrow(0, start + part.start, part.len());
                (task.select(&self.all, indices), len)
            })
        })
    }

    /// The indices `0..n`, shuffled by `seed` when there is one.
    fn order(&self, n: usize, shuffle: Option<u64>) -> Tensor<B, 1, Int> {
        let mut order: Vec<i64> = (0..n as i64).collect();
        if let Some(seed) = shuffle {
            order.shuffle(&mut StdRng::seed_from_u64(seed));
        }
        Tensor::from_data(TensorData::new(order, [n]), &self.device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ImageClassification, ImageSet};
    use burn::backend::NdArray;
    use proptest::prelude::*;

    /// `n` one-pixel images whose pixel and label are the image's index.
    fn numbered(n: usize) -> (ImageClassification, ImageSet) {
        let set = ImageSet {
            images: (0..n).map(|i| i as f32).collect(),
            labels: (0..n).map(|i| (i % 256) as u8).collect(),
            shape: [1, 1, 1],
            classes: 256,
        };
        (set.classification(), set)
    }

    /// The example indices of each batch, read off the pixels.
    fn walk(n: usize, batching: Batching) -> Vec<Vec<usize>> {
        let (task, set) = numbered(n);
        let data = DeviceData::<NdArray, _>::upload(&task, &set, &Default::default());
        data.batches(&task, batching)
            .map(|batch| {
                let pixels = batch.images.into_data().to_vec::<f32>().unwrap();
                let labels = batch.labels.into_data().convert::<i64>().to_vec::<i64>().unwrap();
                assert!(
                    pixels.iter().zip(&labels).all(|(p, &l)| (*p as i64) % 256 == l),
                    "pixels and labels stay paired"
                );
                pixels.into_iter().map(|p| p as usize).collect()
            })
            .collect()
    }

    proptest! {
        #[test]
        fn in_order_batches_cover_the_first_examples_in_order(n in 1usize..300, size in 1usize..64, limit in 1usize..400) {
            let batches = walk(n, Batching::in_order(size).first(limit));
            let seen: Vec<usize> = batches.concat();
            prop_assert_eq!(seen, (0..n.min(limit)).collect::<Vec<_>>());
            prop_assert!(batches.iter().rev().skip(1).all(|b| b.len() == size), "only the last batch may be short");
        }

        #[test]
        fn a_shuffle_is_a_permutation_fixed_by_its_seed(n in 2usize..300, size in 1usize..64, seed in any::<u64>()) {
            let batches = walk(n, Batching::shuffled(size, seed));
            let mut seen: Vec<usize> = batches.concat();
            prop_assert_eq!(walk(n, Batching::shuffled(size, seed)).concat(), seen.clone(), "same seed, same order");
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..n).collect::<Vec<_>>());
        }
    }

    proptest! {
        #[test]
        fn the_shards_of_a_batch_together_are_the_batch(n in 1usize..200, size in 1usize..40, count in 1usize..5) {
            let whole = walk(n, Batching::in_order(size));
            let parts: Vec<_> = (0..count).map(|index| walk(n, Batching::in_order(size).sharded(Shard { index, count }))).collect();
            let kept: Vec<&Vec<usize>> = whole.iter().filter(|batch| batch.len() >= count).collect();
            for (b, batch) in kept.iter().enumerate() {
                let joined: Vec<usize> = parts.iter().flat_map(|part| part[b].clone()).collect();
                prop_assert_eq!(&joined, *batch);
                let sizes: Vec<usize> = parts.iter().map(|part| part[b].len()).collect();
                prop_assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1, "near-equal parts");
            }
            prop_assert!(parts.iter().all(|part| part.len() == kept.len()), "every part skips the same batches");
        }
    }

    #[test]
    fn different_seeds_give_different_orders() {
        assert_ne!(walk(100, Batching::shuffled(10, 1)).concat(), walk(100, Batching::shuffled(10, 2)).concat());
    }
}
