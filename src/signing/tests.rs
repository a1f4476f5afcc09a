//! Worked vectors for `docs/PROTOCOL.md`. The doc quotes these exact strings; this test keeps
//! code and doc from drifting. Regenerate with
//! `cargo test --lib signing::tests::print_vectors -- --ignored --nocapture`.

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

use super::*;
use crate::headers;

/// Tenant key of the vectors (its UTF-8 bytes are the HMAC key).
const TENANT_KEY: &str = "wgl-test-tenant-key-3f9a1c";
const KEY_ID: &str = "k2026a";
const CREATED: u64 = 1_767_225_600;

struct Vector {
    name: &'static str,
    purpose: Purpose,
    method: Method,
    url: &'static str,
    headers: Vec<(HeaderName, String)>,
    body: &'static [u8],
    nonce: &'static str,
}

const PROPFIND_BODY: &[u8] =
    b"<?xml version=\"1.0\"?><d:propfind xmlns:d=\"DAV:\"><d:prop><d:getetag/></d:prop></d:propfind>";

fn vectors() -> Vec<Vector> {
    vec![
        Vector {
            name: "api-get-query",
            purpose: Purpose::Api,
            method: Method::GET,
            url: "https://saas.example.com/api/v1/files?path=%2FDocuments%2FR%C3%A9sum%C3%A9.pdf&limit=10",
            headers: vec![
                (headers::X_WAGGLE_USER, "alice".to_owned()),
                (headers::X_WAGGLE_INSTANCE, "oc7h2k9x1q".to_owned()),
            ],
            body: b"",
            nonce: "r3Jm0xS1bq6oQ9y2Tz4wPA",
        },
        Vector {
            name: "api-post-json",
            purpose: Purpose::Api,
            method: Method::POST,
            url: "https://SaaS.Example.com:443/api/v1/notes",
            headers: vec![
                (http::header::CONTENT_TYPE, "application/json".to_owned()),
                (headers::X_WAGGLE_USER, "alice".to_owned()),
                (headers::X_WAGGLE_INSTANCE, "oc7h2k9x1q".to_owned()),
            ],
            body: b"{\"title\":\"Hello\",\"tags\":[\"a\",\"b\"]}",
            nonce: "Hk2v9Qp7ZsW1mN4cX8bT0g",
        },
        Vector {
            name: "api-empty-system",
            purpose: Purpose::Api,
            method: Method::POST,
            url: "https://saas.example.com:8443/api/v1/sync",
            headers: vec![
                (headers::X_WAGGLE_USER, String::new()),
                (headers::X_WAGGLE_INSTANCE, "oc7h2k9x1q".to_owned()),
            ],
            body: b"",
            nonce: "b7Yq1Lr9Dk3Vx0Nw5Ps2Fe",
        },
        Vector {
            name: "callback-propfind",
            purpose: Purpose::Callback,
            method: Method::POST,
            url: "https://cloud.example.com/index.php/apps/app_api/proxy/waggle/nc/remote.php/dav/files/alice/",
            headers: vec![
                (headers::X_HTTP_METHOD_OVERRIDE, "PROPFIND".to_owned()),
                (headers::X_WAGGLE_TARGET, "/remote.php/dav/files/alice/".to_owned()),
                (headers::X_WAGGLE_USER, "alice".to_owned()),
                (http::header::CONTENT_TYPE, "application/xml; charset=utf-8".to_owned()),
                (HeaderName::from_static("depth"), "1".to_owned()),
            ],
            body: PROPFIND_BODY,
            nonce: "Zq8Xw3Ve6Rt1Yu4Io7Pa0S",
        },
    ]
}

struct Output {
    content_digest: String,
    signed: SignatureHeaders,
}

fn run(v: &Vector) -> Output {
    let uri: Uri = v.url.parse().expect("uri");
    let mut map = HeaderMap::new();
    for (name, value) in &v.headers {
        map.insert(name.clone(), HeaderValue::from_str(value).expect("value"));
    }
    let content_digest = content_digest_value(v.body);
    map.insert(headers::CONTENT_DIGEST, HeaderValue::from_str(&content_digest).expect("digest"));
    let covered = match v.purpose {
        Purpose::Api => api_components(),
        Purpose::Callback | Purpose::KeyAnnounce => callback_required(&map),
    };
    let key = SigningKey::from_tenant_key(KEY_ID, TENANT_KEY);
    let message = Message::from_uri(&v.method, &uri, &map);
    let signed = sign_request(&key, v.purpose, &message, &covered, CREATED, v.nonce).expect("sign");
    signed.apply(&mut map).expect("apply");
    let message = Message::from_uri(&v.method, &uri, &map);
    let policy = match v.purpose {
        Purpose::Api => VerifyPolicy::api(CREATED),
        Purpose::Callback | Purpose::KeyAnnounce => VerifyPolicy::callback(CREATED, &map),
    };
    let lookup = |id: &str| (id == KEY_ID).then_some(TENANT_KEY.as_bytes());
    verify_request(&message, lookup, &policy).expect("vector verifies");
    Output { content_digest, signed }
}

#[test]
#[ignore = "prints the vectors for docs/PROTOCOL.md"]
fn print_vectors() {
    for v in vectors() {
        let out = run(&v);
        println!("== {}\nContent-Digest: {}\n--- base\n{}\n---", v.name, out.content_digest, out.signed.base);
        println!("Signature-Input: {}\nSignature: {}\n", out.signed.signature_input, out.signed.signature);
    }
}

/// (name, content-digest, signature base, Signature-Input, Signature) exactly as in PROTOCOL.md.
const EXPECTED: &[(&str, &str, &str, &str, &str)] = &[
    (
        "api-get-query",
        "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:",
        "\"@method\": GET\n\"@authority\": saas.example.com\n\"@path\": /api/v1/files\n\"@query\": ?path=%2FDocuments%2FR%C3%A9sum%C3%A9.pdf&limit=10\n\"content-digest\": sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:\n\"x-waggle-user\": alice\n\"x-waggle-instance\": oc7h2k9x1q\n\"@signature-params\": (\"@method\" \"@authority\" \"@path\" \"@query\" \"content-digest\" \"x-waggle-user\" \"x-waggle-instance\");created=1767225600;expires=1767225900;nonce=\"r3Jm0xS1bq6oQ9y2Tz4wPA\";keyid=\"k2026a\";alg=\"hmac-sha256\";tag=\"waggle-api\"",
        "sig1=(\"@method\" \"@authority\" \"@path\" \"@query\" \"content-digest\" \"x-waggle-user\" \"x-waggle-instance\");created=1767225600;expires=1767225900;nonce=\"r3Jm0xS1bq6oQ9y2Tz4wPA\";keyid=\"k2026a\";alg=\"hmac-sha256\";tag=\"waggle-api\"",
        "sig1=:GCsmhUIQ9zrlo+kxmv6YCJoTG30V961W99yQTQrJ5HY=:",
    ),
    (
        "api-post-json",
        "sha-256=:x6s4L+efvAFx9vYx+q90O4B3EkmXKjuiF/NDcAL+2co=:",
        "\"@method\": POST\n\"@authority\": saas.example.com\n\"@path\": /api/v1/notes\n\"@query\": ?\n\"content-digest\": sha-256=:x6s4L+efvAFx9vYx+q90O4B3EkmXKjuiF/NDcAL+2co=:\n\"x-waggle-user\": alice\n\"x-waggle-instance\": oc7h2k9x1q\n\"@signature-params\": (\"@method\" \"@authority\" \"@path\" \"@query\" \"content-digest\" \"x-waggle-user\" \"x-waggle-instance\");created=1767225600;expires=1767225900;nonce=\"Hk2v9Qp7ZsW1mN4cX8bT0g\";keyid=\"k2026a\";alg=\"hmac-sha256\";tag=\"waggle-api\"",
        "sig1=(\"@method\" \"@authority\" \"@path\" \"@query\" \"content-digest\" \"x-waggle-user\" \"x-waggle-instance\");created=1767225600;expires=1767225900;nonce=\"Hk2v9Qp7ZsW1mN4cX8bT0g\";keyid=\"k2026a\";alg=\"hmac-sha256\";tag=\"waggle-api\"",
        "sig1=:f6fFmZX29LPKzv2U8Fp6oSr3DmR562EfzlEY/1lo27s=:",
    ),
    (
        "api-empty-system",
        "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:",
        "\"@method\": POST\n\"@authority\": saas.example.com:8443\n\"@path\": /api/v1/sync\n\"@query\": ?\n\"content-digest\": sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:\n\"x-waggle-user\": \n\"x-waggle-instance\": oc7h2k9x1q\n\"@signature-params\": (\"@method\" \"@authority\" \"@path\" \"@query\" \"content-digest\" \"x-waggle-user\" \"x-waggle-instance\");created=1767225600;expires=1767225900;nonce=\"b7Yq1Lr9Dk3Vx0Nw5Ps2Fe\";keyid=\"k2026a\";alg=\"hmac-sha256\";tag=\"waggle-api\"",
        "sig1=(\"@method\" \"@authority\" \"@path\" \"@query\" \"content-digest\" \"x-waggle-user\" \"x-waggle-instance\");created=1767225600;expires=1767225900;nonce=\"b7Yq1Lr9Dk3Vx0Nw5Ps2Fe\";keyid=\"k2026a\";alg=\"hmac-sha256\";tag=\"waggle-api\"",
        "sig1=:aKGy3SjH446ITAf10YZIXwx6q20oPo6SuI8Cy6F/6aU=:",
    ),
    (
        "callback-propfind",
        "sha-256=:xXAzvTd1wdUllFbMBz4U5y2cnj+g3nhuRxScwQuwNQo=:",
        "\"@method\": POST\n\"x-http-method-override\": PROPFIND\n\"x-waggle-target\": /remote.php/dav/files/alice/\n\"x-waggle-user\": alice\n\"content-digest\": sha-256=:xXAzvTd1wdUllFbMBz4U5y2cnj+g3nhuRxScwQuwNQo=:\n\"content-type\": application/xml; charset=utf-8\n\"@signature-params\": (\"@method\" \"x-http-method-override\" \"x-waggle-target\" \"x-waggle-user\" \"content-digest\" \"content-type\");created=1767225600;expires=1767225900;nonce=\"Zq8Xw3Ve6Rt1Yu4Io7Pa0S\";keyid=\"k2026a\";alg=\"hmac-sha256\";tag=\"waggle-nc\"",
        "sig1=(\"@method\" \"x-http-method-override\" \"x-waggle-target\" \"x-waggle-user\" \"content-digest\" \"content-type\");created=1767225600;expires=1767225900;nonce=\"Zq8Xw3Ve6Rt1Yu4Io7Pa0S\";keyid=\"k2026a\";alg=\"hmac-sha256\";tag=\"waggle-nc\"",
        "sig1=:V439Yy3X0PrUL8wFVO///pvLhlTE2tF/245ZGmOpEv4=:",
    ),
];

#[test]
fn vectors_match_protocol_document() {
    let vectors = vectors();
    assert_eq!(vectors.len(), EXPECTED.len());
    for (v, (name, digest, base, input, sig)) in vectors.iter().zip(EXPECTED) {
        let out = run(v);
        assert_eq!(v.name, *name);
        assert_eq!(out.content_digest, *digest, "{name}");
        assert_eq!(out.signed.base, *base, "{name}");
        assert_eq!(out.signed.signature_input, *input, "{name}");
        assert_eq!(out.signed.signature, *sig, "{name}");
    }
}

#[test]
fn empty_body_digest_constant_is_documented_value() {
    assert_eq!(EMPTY_BODY_DIGEST, "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:");
}
