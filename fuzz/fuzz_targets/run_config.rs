//! The TOML config of a run (`morphogen train --config`): parsed, then validated.
#![no_main]
use libfuzzer_sys::fuzz_target;
use morphogen::trainer::RunConfig;

fuzz_target!(|text: &str| {
    if let Ok(config) = RunConfig::from_toml(text) {
        let _ = config.validate();
    }
});
