//! A checkpoint whose `tensors.safetensors` is the input. The manifest is the intact one with
//! the file's length and SHA-256 set to the input's, so the input reaches the safetensors reader,
//! the header checks and the restore rather than stopping at the checksum.
#![no_main]
use libfuzzer_sys::fuzz_target;
use morphogen::checkpoint::sha256_hex;

fuzz_target!(|tensors: &[u8]| {
    let (manifest, _) = morphogen_fuzz::checkpoint_files();
    let mut manifest: serde_json::Value = serde_json::from_slice(manifest).unwrap();
    manifest["tensor_file"]["bytes"] = tensors.len().into();
    manifest["tensor_file"]["sha256"] = sha256_hex(tensors).into();
    morphogen_fuzz::read_and_restore(&serde_json::to_vec(&manifest).unwrap(), tensors);
});
