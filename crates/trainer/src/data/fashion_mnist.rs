//! The Fashion-MNIST reader: IDX files, gzip-compressed, as Debian's `dataset-fashion-mnist`
//! ships them.

use crate::{ImageSet, TrainError};
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where Debian's `dataset-fashion-mnist` package puts the files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Reads Fashion-MNIST's training (60,000) and test (10,000) sets from `dir`.
pub fn fashion_mnist(dir: &Path) -> Result<(ImageSet, ImageSet), TrainError> {
    let read = |images: &str, labels: &str| -> Result<ImageSet, TrainError> {
        let images_file = dir.join(images);
        let (dims, pixels) = read_idx(&images_file, 3)?;
        let (label_dims, labels) = read_idx(&dir.join(labels), 1)?;
        if dims[0] != label_dims[0] {
            return Err(TrainError::Data {
                path: images_file,
                problem: format!("{} images but {} labels", dims[0], label_dims[0]),
            });
        }
        Ok(ImageSet {
            images: pixels.into_iter().map(|p| p as f32 / 255.0).collect(),
            labels,
            shape: [1, dims[1], dims[2]],
            classes: 10,
        })
    };
    if !dir.join("train-images-idx3-ubyte.gz").exists() {
        return Err(TrainError::MissingData {
            dir: dir.to_path_buf(),
            dataset: "Fashion-MNIST",
            how: "install Debian's package with `apt-get install dataset-fashion-mnist`, or pass --data DIR \
                  with train-images-idx3-ubyte.gz and the three other IDX files",
        });
    }
    Ok((
        read("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")?,
        read("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")?,
    ))
}

/// Reads a gzip-compressed IDX file of unsigned bytes with `rank` dimensions.
fn read_idx(path: &Path, rank: usize) -> Result<(Vec<usize>, Vec<u8>), TrainError> {
    let bad = |problem: String| TrainError::Data { path: PathBuf::from(path), problem };
    let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let mut bytes = Vec::new();
    GzDecoder::new(file).read_to_end(&mut bytes).map_err(|e| bad(format!("not a readable gzip file: {e}")))?;
    let header = 4 + 4 * rank;
    if bytes.len() < header || bytes[..3] != [0, 0, 0x08] || bytes[3] as usize != rank {
        return Err(bad(format!("not an IDX file of unsigned bytes with {rank} dimensions")));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize)
        .collect();
    if dims.contains(&0) {
        return Err(bad(format!("a dimension is 0 ({dims:?}): the file holds no data")));
    }
    let count = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    let Some(count) = count.filter(|&n| n <= bytes.len()) else {
        return Err(bad(format!("dimensions {dims:?} promise more values than the file's {} bytes", bytes.len())));
    };
    if bytes.len() != header + count {
        return Err(bad(format!("expected {count} values after the header, found {}", bytes.len() - header)));
    }
    Ok((dims, bytes.split_off(header)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use proptest::prelude::*;
    use std::io::Write;

    /// An IDX file of unsigned bytes: the header for `dims`, then `values`.
    fn idx(dims: &[u32], values: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
        bytes.extend(dims.iter().flat_map(|d| d.to_be_bytes()));
        bytes.extend_from_slice(values);
        bytes
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    /// A folder with the four files: three 2x2 images in each set, with `train_images` as the
    /// training images' file.
    fn folder(case: u64, train_images: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("morphogen-idx-{}-{case}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let images = gzip(&idx(&[3, 2, 2], &[7; 12]));
        let labels = gzip(&idx(&[3], &[1, 2, 3]));
        std::fs::write(dir.join("train-images-idx3-ubyte.gz"), train_images).unwrap();
        std::fs::write(dir.join("train-labels-idx1-ubyte.gz"), &labels).unwrap();
        std::fs::write(dir.join("t10k-images-idx3-ubyte.gz"), &images).unwrap();
        std::fs::write(dir.join("t10k-labels-idx1-ubyte.gz"), &labels).unwrap();
        dir
    }

    #[test]
    fn a_valid_folder_reads() {
        let dir = folder(0, &gzip(&idx(&[3, 2, 2], &[255; 12])));
        let (train, valid) = fashion_mnist(&dir).unwrap();
        assert_eq!((train.shape, train.images[0], valid.labels.clone()), ([1, 2, 2], 1.0, vec![1, 2, 3]));
        std::fs::remove_dir_all(dir).ok();
    }

    proptest! {
        /// Damaged files, before or after compression, give a typed error naming the file, never a
        /// panic (the header's dimensions can promise anything).
        #[test]
        fn damaged_files_are_errors_never_panics(
            dims in prop::collection::vec(any::<u32>(), 3),
            values in prop::collection::vec(any::<u8>(), 0..40),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            compressed in any::<bool>(),
            case in any::<u64>(),
        ) {
            let mut file = idx(&dims, &values);
            if compressed {
                file = gzip(&file);
            }
            for (at, byte) in &flips {
                if !file.is_empty() {
                    let i = at.index(file.len());
                    file[i] ^= byte;
                }
            }
            let file = if compressed { file } else { gzip(&file) };
            let dir = folder(case, &file);
            if let Err(error) = fashion_mnist(&dir) {
                prop_assert!(error.to_string().contains("train-images-idx3-ubyte.gz"), "{}", error);
            }
            std::fs::remove_dir_all(dir).ok();
        }
    }
}
