//! Fuzzes the `/nc` header checks: `X-HTTP-Method-Override` and `X-Waggle-User`.
#![no_main]

use http::{HeaderMap, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;
use waggle::auth::signature::{CALLBACK_VERBS, callback_method, valid_user};

fuzz_target!(|data: &[u8]| {
    let (wire, value) = data.split_first().map_or((0, &[][..]), |(w, v)| (*w, v));
    if let Ok(user) = std::str::from_utf8(value)
        && valid_user(user)
    {
        assert!(!user.contains(':') && !user.chars().any(char::is_control));
    }
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(value) {
        headers.insert("x-http-method-override", v);
    }
    let wire = if wire % 2 == 0 { Method::POST } else { Method::GET };
    if let Ok(method) = callback_method(&wire, &headers) {
        assert!(CALLBACK_VERBS.contains(&method.as_str()));
    }
});
