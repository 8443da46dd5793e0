//! Fashion-MNIST's training images file, beside three intact files (`fuzz/fixtures/`: three 2x2
//! images and their labels). An input starting with 0 is an IDX file the target compresses (to
//! reach the IDX reader), any other is the gzip file itself (to reach the decompression).
#![no_main]
use flate2::write::GzEncoder;
use libfuzzer_sys::fuzz_target;
use std::io::Write;

const IMAGES: &[u8] = include_bytes!("../fixtures/images-idx3-ubyte.gz");
const LABELS: &[u8] = include_bytes!("../fixtures/labels-idx1-ubyte.gz");

fuzz_target!(|input: &[u8]| {
    let Some((&mode, file)) = input.split_first() else { return };
    let images = if mode == 0 {
        let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(file).unwrap();
        encoder.finish().unwrap()
    } else {
        file.to_vec()
    };
    let dir = morphogen_fuzz::scratch("idx");
    std::fs::write(dir.join("train-images-idx3-ubyte.gz"), images).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte.gz"), LABELS).unwrap();
    std::fs::write(dir.join("t10k-images-idx3-ubyte.gz"), IMAGES).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte.gz"), LABELS).unwrap();
    let _ = morphogen::trainer::fashion_mnist(&dir);
});
