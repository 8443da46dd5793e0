//! A neural controller's policy folder, as `train --controller neural` and `controller serve`
//! load one: first byte even, the input is `manifest.json` beside the shipped weights; odd, the
//! input is `weights.safetensors` and the shipped manifest names its true hash, so the tensor
//! reader runs on it. A policy that loads must decide without panicking.
#![no_main]
use libfuzzer_sys::fuzz_target;
use morphogen::checkpoint::sha256_hex;
use morphogen::controller::NeuralPolicy;

const MANIFEST: &str = include_str!("../../policies/grow.policy/manifest.json");
const WEIGHTS: &[u8] = include_bytes!("../../policies/grow.policy/weights.safetensors");

fuzz_target!(|bytes: &[u8]| {
    let Some((&mode, input)) = bytes.split_first() else { return };
    let dir = morphogen_fuzz::scratch("policy");
    let (manifest, weights) = if mode % 2 == 0 {
        (input.to_vec(), WEIGHTS)
    } else {
        let mut manifest: serde_json::Value = serde_json::from_str(MANIFEST).expect("the shipped manifest is JSON");
        manifest["weights_sha256"] = sha256_hex(input).into();
        (manifest.to_string().into_bytes(), input)
    };
    std::fs::write(dir.join("manifest.json"), manifest).unwrap();
    std::fs::write(dir.join("weights.safetensors"), weights).unwrap();
    if let Ok(policy) = NeuralPolicy::load(&dir) {
        let _ = policy.manifest();
    }
});
