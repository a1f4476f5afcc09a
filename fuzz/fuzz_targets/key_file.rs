//! Fuzzes the stored tenant key file parser (a file on the persistent volume is outside input).
#![no_main]

use libfuzzer_sys::fuzz_target;
use waggle::keys::store::{file_key, open, seal};

fuzz_target!(|data: &[u8]| {
    let key = file_key(b"fuzz-secret", "waggle");
    if let Ok(doc) = open(data, &key, "waggle") {
        // Whatever opens must round-trip.
        let again = open(&seal(&doc, &key, "waggle"), &key, "waggle").expect("round trip");
        assert_eq!(again, doc);
    }
});
