//! Fuzz target: arbitrary `Signature-Input`, `Signature` and `Content-Digest` values plus an
//! arbitrary message go through the RFC 9421 parser and verifier; nothing may panic.
#![no_main]

use http::{HeaderMap, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;
use waggle::headers;
use waggle::signing::{Message, VerifyPolicy, parse_content_digest, parse_signature, verify_request};

fuzz_target!(|data: &[u8]| {
    // Split the input on 0xFF into: signature-input, signature, content-digest, path, query, user.
    let mut parts = data.split(|b| *b == 0xff);
    let mut next = || parts.next().unwrap_or(&[]);
    let (input, signature, digest, path, query, user) = (next(), next(), next(), next(), next(), next());

    if let Ok(s) = std::str::from_utf8(digest) {
        let _ = parse_content_digest(s);
    }

    let mut map = HeaderMap::new();
    for (name, value) in [
        (headers::SIGNATURE_INPUT, input),
        (headers::SIGNATURE, signature),
        (headers::CONTENT_DIGEST, digest),
        (headers::X_WAGGLE_USER, user),
        (headers::X_WAGGLE_INSTANCE, b"fuzz".as_slice()),
        (headers::X_WAGGLE_TARGET, path),
    ] {
        if let Ok(v) = HeaderValue::from_bytes(value) {
            map.append(name, v);
        }
    }
    let _ = parse_signature(&map);

    let path = String::from_utf8_lossy(path);
    let query = String::from_utf8_lossy(query);
    let method = Method::POST;
    let message = Message {
        method: &method,
        scheme: "https",
        authority: "saas.example.com:443",
        path: &path,
        query: (!query.is_empty()).then_some(&*query),
        headers: &map,
    };
    let lookup = |id: &str| (id == "k1").then_some(b"fuzz-key".as_slice());
    for now in [0, 1_700_000_000, u64::MAX] {
        let _ = verify_request(&message, lookup, &VerifyPolicy::api(now));
        let _ = verify_request(&message, lookup, &VerifyPolicy::callback(now, &map));
    }
});
