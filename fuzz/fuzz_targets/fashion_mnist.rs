//! Fashion-MNIST's training images file, beside three intact files. An input starting with 0
//! is an IDX file the target compresses (to reach the IDX reader), any other is the gzip file
//! itself (to reach the decompression).
#![no_main]
use flate2::write::GzEncoder;
use libfuzzer_sys::fuzz_target;
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

fuzz_target!(|input: &[u8]| {
    let Some((&mode, file)) = input.split_first() else { return };
    let dir = morphogen_fuzz::scratch("idx");
    let images = if mode == 0 { gzip(file) } else { file.to_vec() };
    std::fs::write(dir.join("train-images-idx3-ubyte.gz"), images).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte.gz"), gzip(&idx(&[3], &[1, 2, 3]))).unwrap();
    std::fs::write(dir.join("t10k-images-idx3-ubyte.gz"), gzip(&idx(&[3, 2, 2], &[7; 12]))).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte.gz"), gzip(&idx(&[3], &[1, 2, 3]))).unwrap();
    let _ = morphogen::trainer::fashion_mnist(&dir);
});
