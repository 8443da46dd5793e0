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
    let count: usize = dims.iter().product();
    if bytes.len() != header + count {
        return Err(bad(format!("expected {count} values after the header, found {}", bytes.len() - header)));
    }
    Ok((dims, bytes.split_off(header)))
}
