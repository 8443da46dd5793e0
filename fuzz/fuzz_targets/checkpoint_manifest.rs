//! A checkpoint whose `manifest.json` is the input, beside an intact tensor file: read,
//! verified and restored into a model.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|manifest: &[u8]| {
    let (_, tensors) = morphogen_fuzz::checkpoint_files();
    morphogen_fuzz::read_and_restore(manifest, tensors);
});
