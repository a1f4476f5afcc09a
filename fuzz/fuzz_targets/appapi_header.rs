//! Fuzzes decoding and checking of `AUTHORIZATION-APP-API` / `EX-APP-ID` (outside input on every request).
#![no_main]

use libfuzzer_sys::fuzz_target;
use waggle::auth::appapi::{CredentialCheck, decode_authorization};

fuzz_target!(|data: &[u8]| {
    if let Ok((user, _secret)) = decode_authorization(data) {
        assert!(!user.contains(':'), "the user part ends at the first colon");
        assert!(!user.chars().any(char::is_control));
    }
    let (auth, app_id) = data.split_at(data.len() / 2);
    let mut headers = http::HeaderMap::new();
    if let Ok(v) = http::HeaderValue::from_bytes(auth) {
        headers.insert("authorization-app-api", v);
    }
    if let Ok(v) = http::HeaderValue::from_bytes(app_id) {
        headers.insert("ex-app-id", v);
    }
    let check = CredentialCheck::new("waggle", b"fuzz-secret");
    if let Ok(caller) = check.verify(&headers) {
        // Only the real secret and app id may pass.
        assert_eq!(headers["ex-app-id"].as_bytes(), b"waggle");
        let _ = caller;
    }
});
