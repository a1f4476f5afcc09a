//! Fuzzes the OCS user-details and group-list parsers used by reconciliation (answers from Nextcloud).
#![no_main]

use libfuzzer_sys::fuzz_target;
use waggle::events::directory::{parse_groups, parse_user_details};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    if let Ok(users) = parse_user_details(&value) {
        for u in users {
            assert!(!u.uid.is_empty() && !u.uid.chars().any(char::is_control));
        }
    }
    if let Ok(groups) = parse_groups(&value) {
        assert!(groups.iter().all(|g| !g.is_empty()));
    }
});
