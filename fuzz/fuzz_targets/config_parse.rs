//! Fuzzes the config parser: any file must load or be refused with an error that names where
//! (a line, or a field), never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam::config::{Config, ConfigError};

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    match Config::parse(text, "fuzz.toml") {
        Ok(_) => {}
        Err(ConfigError::Field { field, .. }) => assert!(!field.is_empty()),
        Err(e) => assert!(e.to_string().starts_with("fuzz.toml"), "{e}"),
    }
});
