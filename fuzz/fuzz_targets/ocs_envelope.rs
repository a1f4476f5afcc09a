//! Fuzzes the OCS envelope parser (answers from Nextcloud).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let status = u16::from(data.first().copied().unwrap_or(0)) + 100;
    let _ = waggle::nextcloud::parse_ocs(status, data);
});
