//! Fuzzes configuration loading from an environment map: `KEY=VALUE` lines, arbitrary bytes.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut vars = HashMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            // A config file path from fuzz input would read the real filesystem; keep it out.
            if k != "WAGGLE_CONFIG" {
                vars.insert(k.to_owned(), v.to_owned());
            }
        }
    }
    match waggle::Settings::load_from(&vars) {
        Ok(settings) => {
            assert!(settings.nextcloud.url.as_str().ends_with('/'));
        }
        Err(e) => {
            // The message names a variable and never echoes a secret value.
            assert!(!e.variable.is_empty());
            if let Some(secret) = vars.get("APP_SECRET").filter(|s| s.len() > 8) {
                assert!(!e.to_string().contains(secret.as_str()));
            }
        }
    }
});
