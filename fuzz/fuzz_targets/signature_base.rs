//! Fuzzes the RFC 9421 canonicaliser: arbitrary message parts are signed and verified; signing may
//! refuse, but whatever it signs must verify, and nothing may panic. The key id and nonce come from
//! the input too, so the hand-written parameter serialisation (escapes included) must be exactly
//! what `sfv` re-serialises when the verifier checks the header's canonical form.
#![no_main]

use http::{HeaderMap, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;
use waggle::signing::{Message, Purpose, SigningKey, VerifyPolicy, api_components, sign_request, verify_request};

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|b| *b == 0xff);
    let mut next = || parts.next().unwrap_or(&[]);
    let (method, authority, path, query, user) = (next(), next(), next(), next(), next());
    let (keyid, nonce) = (next(), next());
    let (Ok(keyid), Ok(nonce)) = (std::str::from_utf8(keyid), std::str::from_utf8(nonce)) else { return };
    let Ok(method) = Method::from_bytes(method) else { return };
    let (Ok(authority), Ok(path), Ok(query)) =
        (std::str::from_utf8(authority), std::str::from_utf8(path), std::str::from_utf8(query))
    else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert("content-digest", HeaderValue::from_static("sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"));
    headers.insert("x-waggle-instance", HeaderValue::from_static("ocfuzz"));
    if let Ok(v) = HeaderValue::from_bytes(user) {
        headers.insert("x-waggle-user", v);
    }
    let message = Message { method: &method, scheme: "https", authority, path, query: Some(query), headers: &headers };
    let key = SigningKey::from_tenant_key(keyid, "fuzz-key");
    if let Ok(signed) = sign_request(&key, Purpose::Api, &message, &api_components(), 1_800_000_000, nonce)
    {
        let mut h = headers.clone();
        if signed.apply(&mut h).is_ok() {
            let m = Message { headers: &h, ..message };
            let ok = verify_request(&m, |_| Some(b"fuzz-key"), &VerifyPolicy::api(1_800_000_000));
            assert!(ok.is_ok(), "a signed message must verify: {ok:?}");
        }
    }
});
