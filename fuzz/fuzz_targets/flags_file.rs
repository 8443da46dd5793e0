//! A feature-flag file (`morphogen flags`, `morphogen train --flags`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &[u8]| {
    let dir = morphogen_fuzz::scratch("flags");
    let path = dir.join("flags.toml");
    std::fs::write(&path, text).unwrap();
    if let Ok(Some(flags)) = morphogen_flags::Flags::read(&path) {
        // What parses writes back to a file that parses to the same flags.
        assert_eq!(morphogen_flags::Flags::parse(&flags.to_toml()).unwrap(), flags);
    }
});
