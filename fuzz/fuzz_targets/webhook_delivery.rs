//! Fuzzes the webhook_listeners delivery payload handling (bytes from Nextcloud, or a forger).
#![no_main]

use libfuzzer_sys::fuzz_target;
use waggle::events::ingest::affected_user;

fuzz_target!(|data: &[u8]| {
    let value: serde_json::Value = serde_json::from_slice(data).unwrap_or(serde_json::Value::Null);
    if let Some(uid) = affected_user(&value) {
        assert!(!uid.is_empty() && uid.len() <= 64 && !uid.contains(':'));
        assert!(!uid.chars().any(char::is_control));
    }
});
