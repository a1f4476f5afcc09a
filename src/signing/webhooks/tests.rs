//! Standard Webhooks unit tests: the reference libraries' published vectors, round trips, key
//! rotation, tolerance edges, tampering, malformed headers, and a cross-check against the
//! `standardwebhooks` crate in both directions.

use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue};

use super::*;

const NOW: u64 = 1_700_000_000;
const ID: &str = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";
const BODY: &[u8] = br#"{"type":"note.created","timestamp":"2023-11-14T22:13:20Z","data":{"id":"42"}}"#;

/// standard-webhooks/standard-webhooks `libraries/rust/src/lib.rs`, `test_sign` (also the
/// `standardwebhooks` crate's own test).
const RUST_LIB_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const RUST_LIB_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
const RUST_LIB_TS: u64 = 1_649_367_553;
const RUST_LIB_BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
const RUST_LIB_SIG: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

/// standard-webhooks/standard-webhooks `libraries/javascript/src/webhook.test.ts`,
/// "sign function works".
const JS_LIB_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const JS_LIB_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const JS_LIB_TS: u64 = 1_614_265_330;
const JS_LIB_BODY: &[u8] = br#"{"test": 2432232314}"#;
const JS_LIB_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

fn new_secret() -> WebhookSecret {
    WebhookSecret::from_tenant_key("wgl-tenant-key-new-0123456789abcdef")
}

fn old_secret() -> WebhookSecret {
    WebhookSecret::from_tenant_key("wgl-tenant-key-old-fedcba9876543210")
}

fn received<'a>(id: &'a str, timestamp: &'a str, signature: &'a str) -> ReceivedHeaders<'a> {
    ReceivedHeaders { id, timestamp, signature }
}

fn check(secrets: &[WebhookSecret], h: &ReceivedHeaders<'_>, body: &[u8]) -> Result<(), WebhookError> {
    verify(secrets, h, body, NOW, DEFAULT_TOLERANCE_SECS)
}

#[test]
fn reference_vector_rust_library() {
    let secret = WebhookSecret::from_whsec(RUST_LIB_SECRET).unwrap();
    assert_eq!(sign(&secret, RUST_LIB_ID, RUST_LIB_TS, RUST_LIB_BODY), RUST_LIB_SIG);
    let h = received(RUST_LIB_ID, "1649367553", RUST_LIB_SIG);
    assert_eq!(verify(&[secret], &h, RUST_LIB_BODY, RUST_LIB_TS, DEFAULT_TOLERANCE_SECS), Ok(()));
}

#[test]
fn reference_vector_javascript_library() {
    let secret = WebhookSecret::from_whsec(JS_LIB_SECRET).unwrap();
    assert_eq!(sign(&secret, JS_LIB_ID, JS_LIB_TS, JS_LIB_BODY), JS_LIB_SIG);
    let h = received(JS_LIB_ID, "1614265330", JS_LIB_SIG);
    assert_eq!(verify(&[secret], &h, JS_LIB_BODY, JS_LIB_TS + 300, DEFAULT_TOLERANCE_SECS), Ok(()));
}

#[test]
fn reference_multi_signature_header_with_unknown_versions() {
    // Shape of the JavaScript library's "multi sig payload is valid" test: decoys and a `v2` entry
    // around the valid signature.
    let secret = WebhookSecret::from_whsec(JS_LIB_SECRET).unwrap();
    let decoy = "Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=";
    let header = format!("v1,{decoy} v2,{decoy} {JS_LIB_SIG} v1,{decoy}");
    let h = received(JS_LIB_ID, "1614265330", &header);
    assert_eq!(verify(&[secret], &h, JS_LIB_BODY, JS_LIB_TS, 0), Ok(()));
}

#[test]
fn whsec_round_trip_and_parsing() {
    let secret = WebhookSecret::from_whsec(RUST_LIB_SECRET).unwrap();
    assert_eq!(secret.as_bytes().len(), 24);
    assert_eq!(secret.to_whsec(), RUST_LIB_SECRET);
    let tenant = new_secret();
    assert_eq!(tenant.as_bytes(), b"wgl-tenant-key-new-0123456789abcdef");
    assert_eq!(WebhookSecret::from_whsec(&tenant.to_whsec()).unwrap(), tenant);
    // Padding optional: 32 bytes → 44 chars with one `=`.
    let padded = WebhookSecret::new([7u8; 32]).to_whsec();
    assert!(padded.ends_with('='));
    assert_eq!(WebhookSecret::from_whsec(padded.trim_end_matches('=')).unwrap().as_bytes(), &[7u8; 32]);

    assert_eq!(
        WebhookSecret::from_whsec("C2FVsBQIhrscChlQIMV+b5sSYspob7oD"),
        Err(SecretError::MissingPrefix)
    );
    assert_eq!(WebhookSecret::from_whsec("whsec_C2FV*BQI"), Err(SecretError::InvalidBase64));
    assert_eq!(
        WebhookSecret::from_whsec("whsec_C2FVsBQIhrscChlQIMV-b5sSYspob7oD"),
        Err(SecretError::InvalidBase64),
        "base64url alphabet is not the standard one"
    );
    assert_eq!(WebhookSecret::from_whsec("whsec_"), Err(SecretError::TooShort));
    assert_eq!(WebhookSecret::from_whsec("whsec_AAAAAAAA"), Err(SecretError::TooShort));
    assert_eq!(SecretError::TooShort.code(), "whsec_too_short");
}

#[test]
fn debug_never_prints_the_secret() {
    let secret = WebhookSecret::from_tenant_key("super-secret-tenant-key");
    let shown = format!("{secret:?}");
    assert!(!shown.contains("super-secret"), "{shown}");
    assert!(shown.contains("redacted"));
}

#[test]
fn sign_verify_round_trip() {
    let h = headers(&[new_secret()], ID, NOW, BODY);
    assert_eq!(h.id, ID);
    assert_eq!(h.timestamp, "1700000000");
    assert!(h.signature.starts_with("v1,"));
    assert_eq!(h.signature, sign(&new_secret(), ID, NOW, BODY));
    assert_eq!(check(&[new_secret()], &h.as_received(), BODY), Ok(()));
    // The empty payload is signable too.
    let empty = headers(&[new_secret()], ID, NOW, b"");
    assert_eq!(check(&[new_secret()], &empty.as_received(), b""), Ok(()));
}

#[test]
fn apply_and_read_back_from_header_map() {
    let h = headers(&[new_secret(), old_secret()], ID, NOW, BODY);
    let mut map = HeaderMap::new();
    map.insert(WEBHOOK_ID, HeaderValue::from_static("stale"));
    h.apply(&mut map).unwrap();
    assert_eq!(map.len(), 3);
    let back = ReceivedHeaders::from_map(&map).unwrap();
    assert_eq!(back, h.as_received());
    assert_eq!(check(&[old_secret()], &back, BODY), Ok(()));
    assert_eq!(h.pairs().map(|(n, _)| n), [WEBHOOK_ID, WEBHOOK_TIMESTAMP, WEBHOOK_SIGNATURE]);

    let bad = WebhookHeaders { id: "line\nbreak".to_owned(), ..h.clone() };
    let mut untouched = HeaderMap::new();
    assert!(bad.apply(&mut untouched).is_err());
    assert!(untouched.is_empty());
}

#[test]
fn from_map_requires_each_header_exactly_once() {
    let h = headers(&[new_secret()], ID, NOW, BODY);
    let mut map = HeaderMap::new();
    h.apply(&mut map).unwrap();
    for name in [WEBHOOK_ID, WEBHOOK_TIMESTAMP, WEBHOOK_SIGNATURE] {
        let mut missing = map.clone();
        missing.remove(&name);
        assert_eq!(ReceivedHeaders::from_map(&missing), Err(WebhookError::MissingHeader));
        let mut twice = map.clone();
        twice.append(name, HeaderValue::from_static("x"));
        assert_eq!(ReceivedHeaders::from_map(&twice), Err(WebhookError::DuplicateHeader));
    }
    let mut opaque = map.clone();
    opaque.insert(WEBHOOK_ID, HeaderValue::from_bytes(b"msg_\xe9").unwrap());
    assert_eq!(ReceivedHeaders::from_map(&opaque), Err(WebhookError::MalformedHeader));
}

#[test]
fn rotation_signs_with_every_secret_newest_first() {
    let header = signature_header(&[new_secret(), old_secret()], ID, NOW, BODY);
    let entries: Vec<&str> = header.split(' ').collect();
    assert_eq!(entries, [sign(&new_secret(), ID, NOW, BODY), sign(&old_secret(), ID, NOW, BODY)]);
    let h = received(ID, "1700000000", &header);
    // A receiver holding only the old, only the new, or both secrets accepts.
    assert_eq!(check(&[old_secret()], &h, BODY), Ok(()));
    assert_eq!(check(&[new_secret()], &h, BODY), Ok(()));
    assert_eq!(check(&[new_secret(), old_secret()], &h, BODY), Ok(()));
    // A receiver that has already rotated to a third key refuses.
    let third = WebhookSecret::from_tenant_key("wgl-tenant-key-third");
    assert_eq!(check(std::slice::from_ref(&third), &h, BODY), Err(WebhookError::Mismatch));
    // A sender still on the old key is accepted by a receiver holding [new, old].
    let old_only = headers(&[old_secret()], ID, NOW, BODY);
    assert_eq!(check(&[new_secret(), old_secret()], &old_only.as_received(), BODY), Ok(()));
    assert_eq!(check(&[new_secret(), third], &old_only.as_received(), BODY), Err(WebhookError::Mismatch));
    assert_eq!(signature_header(&[], ID, NOW, BODY), "");
}

#[test]
fn tolerance_edges() {
    let secrets = [new_secret()];
    let at = |ts: u64| headers(&secrets, ID, ts, BODY);
    for ts in [NOW - 300, NOW - 299, NOW, NOW + 299, NOW + 300] {
        assert_eq!(
            check(&secrets, &at(ts).as_received(), BODY),
            Ok(()),
            "ts offset {}",
            ts as i64 - NOW as i64
        );
    }
    assert_eq!(check(&secrets, &at(NOW - 301).as_received(), BODY), Err(WebhookError::TooOld));
    assert_eq!(check(&secrets, &at(NOW + 301).as_received(), BODY), Err(WebhookError::InFuture));
    assert_eq!(check(&secrets, &at(0).as_received(), BODY), Err(WebhookError::TooOld));
    assert_eq!(check(&secrets, &at(u64::MAX).as_received(), BODY), Err(WebhookError::InFuture));
    // A custom tolerance; zero means the exact second only.
    assert_eq!(verify(&secrets, &at(NOW - 30).as_received(), BODY, NOW, 30), Ok(()));
    assert_eq!(verify(&secrets, &at(NOW - 31).as_received(), BODY, NOW, 30), Err(WebhookError::TooOld));
    assert_eq!(verify(&secrets, &at(NOW).as_received(), BODY, NOW, 0), Ok(()));
    assert_eq!(verify(&secrets, &at(NOW + 1).as_received(), BODY, NOW, 0), Err(WebhookError::InFuture));
    // `now` near the ends of u64 does not overflow.
    assert_eq!(verify(&secrets, &at(3).as_received(), BODY, 0, 300), Ok(()));
    assert_eq!(verify(&secrets, &at(u64::MAX).as_received(), BODY, u64::MAX, 300), Ok(()));
}

#[test]
fn tampering_is_refused() {
    let secrets = [new_secret()];
    let h = headers(&secrets, ID, NOW, BODY);
    let sig = h.signature.as_str();
    let mut body = BODY.to_vec();
    body[10] ^= 1;
    assert_eq!(check(&secrets, &received(ID, "1700000000", sig), &body), Err(WebhookError::Mismatch));
    assert_eq!(check(&secrets, &received(ID, "1700000000", sig), b""), Err(WebhookError::Mismatch));
    let mut longer = BODY.to_vec();
    longer.push(b'\n');
    assert_eq!(check(&secrets, &received(ID, "1700000000", sig), &longer), Err(WebhookError::Mismatch));
    assert_eq!(
        check(&secrets, &received("msg_2KWPBgLlAfxdpx2AI54pPJ85f4X", "1700000000", sig), BODY),
        Err(WebhookError::Mismatch)
    );
    assert_eq!(check(&secrets, &received(ID, "1700000001", sig), BODY), Err(WebhookError::Mismatch));
    // Flip one bit of the MAC.
    let mut raw = STANDARD.decode(&sig[3..]).unwrap();
    raw[0] ^= 0x80;
    let flipped = format!("v1,{}", STANDARD.encode(raw));
    assert_eq!(check(&secrets, &received(ID, "1700000000", &flipped), BODY), Err(WebhookError::Mismatch));
    // Wrong secret, and no secret.
    assert_eq!(check(&[old_secret()], &h.as_received(), BODY), Err(WebhookError::Mismatch));
    assert_eq!(check(&[], &h.as_received(), BODY), Err(WebhookError::NoSecret));
}

#[test]
fn id_with_dot_cannot_shift_bytes_between_fields() {
    // "x" + ".1" + ".2.{…}" and "x.1" + ".2" + ".{…}" have the same signed content, so ids with `.`
    // are refused before any MAC is computed.
    let secrets = [new_secret()];
    let sig = sign(&new_secret(), "x", 1, b"2.{}");
    assert_eq!(sig, sign(&new_secret(), "x.1", 2, b"{}"));
    assert_eq!(verify(&secrets, &received("x.1", "2", &sig), b"{}", 2, 300), Err(WebhookError::MalformedId));
    assert_eq!(verify(&secrets, &received("x", "1", &sig), b"2.{}", 2, 300), Ok(()));
}

#[test]
fn malformed_ids_and_timestamps() {
    let secrets = [new_secret()];
    let sig = sign(&new_secret(), ID, NOW, BODY);
    let long = "m".repeat(MAX_ID_LEN + 1);
    for id in ["", "msg 1", "msg.1", "msg\u{e9}", "\t", long.as_str()] {
        assert!(!is_valid_msg_id(id));
        assert_eq!(
            check(&secrets, &received(id, "1700000000", &sig), BODY),
            Err(WebhookError::MalformedId),
            "{id:?}"
        );
    }
    assert!(is_valid_msg_id(&"m".repeat(MAX_ID_LEN)));
    assert!(is_valid_msg_id("evt_01HF-x:y/z"));
    for ts in [
        "",
        "+1700000000",
        "-1",
        "01700000000",
        "1700000000.0",
        "1.7e9",
        " 1700000000",
        "0x65",
        "99999999999999999999",
    ] {
        assert_eq!(
            check(&secrets, &received(ID, ts, &sig), BODY),
            Err(WebhookError::MalformedTimestamp),
            "{ts:?}"
        );
    }
    // `0` itself is canonical (and too old here).
    assert_eq!(check(&secrets, &received(ID, "0", &sig), BODY), Err(WebhookError::TooOld));
}

#[test]
fn malformed_signature_entries() {
    let secrets = [new_secret()];
    let good = sign(&new_secret(), ID, NOW, BODY);
    let mac = &good[3..];
    let short = STANDARD.encode([0u8; 31]);
    let unpadded = mac.trim_end_matches('=');
    let cases = [
        String::new(),
        "v1".to_owned(),
        "v1,".to_owned(),
        format!("v1{mac}"),
        format!(",{mac}"),
        format!("V1,{mac}"),
        format!("v1,{short}"),
        format!("v1,{unpadded}"),
        format!("v1,{}", &mac[..8]),
        "v1,dawfeoifkpqwoekfpqoekf".to_owned(),
        format!("v1,{}", mac.replace('+', "-").replace('/', "_")),
        format!("{good}  {good}"),
        format!(" {good}"),
        format!("{good} "),
        format!("{good},{mac}"),
        format!("{good} v1a"),
        format!("{good}\t"),
    ];
    for header in &cases {
        let result = check(&secrets, &received(ID, "1700000000", header), BODY);
        // A base64url MAC without `-`/`_` is identical to the standard one; only assert refusal
        // for the values that actually differ.
        if header.as_str() == good.as_str() {
            continue;
        }
        assert_eq!(result, Err(WebhookError::MalformedSignature), "{header:?}");
    }
    let too_long = vec![good.as_str(); MAX_SIGNATURE_HEADER_LEN / good.len() + 1].join(" ");
    assert_eq!(
        check(&secrets, &received(ID, "1700000000", &too_long), BODY),
        Err(WebhookError::SignatureTooLong)
    );
}

#[test]
fn unknown_versions_are_ignored() {
    let secrets = [new_secret()];
    let good = sign(&new_secret(), ID, NOW, BODY);
    let ed = "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==";
    let header = format!("{ed} {good} v2,anything-goes");
    assert_eq!(check(&secrets, &received(ID, "1700000000", &header), BODY), Ok(()));
    assert_eq!(check(&secrets, &received(ID, "1700000000", ed), BODY), Err(WebhookError::NoV1Signature));
    let header = format!("{ed} v2,{}", &good[3..]);
    assert_eq!(check(&secrets, &received(ID, "1700000000", &header), BODY), Err(WebhookError::NoV1Signature));
}

#[test]
fn error_codes_are_stable_and_distinct() {
    let all = [
        WebhookError::MissingHeader,
        WebhookError::DuplicateHeader,
        WebhookError::MalformedHeader,
        WebhookError::MalformedId,
        WebhookError::MalformedTimestamp,
        WebhookError::TooOld,
        WebhookError::InFuture,
        WebhookError::SignatureTooLong,
        WebhookError::MalformedSignature,
        WebhookError::NoV1Signature,
        WebhookError::NoSecret,
        WebhookError::Mismatch,
    ];
    let codes: Vec<&str> = all.iter().map(WebhookError::code).collect();
    for (i, code) in codes.iter().enumerate() {
        assert!(code.starts_with("wh_"));
        assert!(!codes[..i].contains(code), "duplicate {code}");
    }
    assert_eq!(WebhookError::Mismatch.code(), "wh_mismatch");
    assert_eq!(WebhookError::TooOld.code(), "wh_too_old");
}

// --- Cross-check with the `standardwebhooks` crate (reference implementation) -------------------

fn wall_clock() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn crate_signs_same_as_ours() {
    let theirs = standardwebhooks::Webhook::new(RUST_LIB_SECRET).unwrap();
    let ours = WebhookSecret::from_whsec(RUST_LIB_SECRET).unwrap();
    for (id, ts, body) in [
        (RUST_LIB_ID, RUST_LIB_TS, RUST_LIB_BODY),
        (ID, NOW, BODY),
        (ID, 0, b"".as_slice()),
        ("evt_unicode", NOW, "{\"t\":\"h\u{e9} \u{1f41d}\"}".as_bytes()),
    ] {
        let ts_i64 = i64::try_from(ts).unwrap();
        assert_eq!(sign(&ours, id, ts, body), theirs.sign(id, ts_i64, body).unwrap(), "{id}");
    }
}

#[test]
fn crate_verifies_ours_including_rotation() {
    let now = wall_clock();
    let (new, old) = (new_secret(), old_secret());
    let h = headers(&[new.clone(), old.clone()], ID, now, BODY);
    let mut map = HeaderMap::new();
    h.apply(&mut map).unwrap();
    for secret in [&new, &old] {
        let theirs = standardwebhooks::Webhook::new(&secret.to_whsec()).unwrap();
        theirs.verify(BODY, &map).unwrap();
        assert!(theirs.verify(b"{}", &map).is_err(), "tampered body must fail in the reference crate");
    }
    let stranger = standardwebhooks::Webhook::from_bytes(b"someone-else's-key-bytes".to_vec()).unwrap();
    assert!(stranger.verify(BODY, &map).is_err());
}

#[test]
fn we_verify_crate_signatures() {
    let now = wall_clock();
    let theirs = standardwebhooks::Webhook::new(JS_LIB_SECRET).unwrap();
    let ts = i64::try_from(now).unwrap();
    let sig = theirs.sign(ID, ts, BODY).unwrap();
    let header = format!("v1a,{} {sig}", &sig[3..]);
    let ours = WebhookSecret::from_whsec(JS_LIB_SECRET).unwrap();
    let timestamp = now.to_string();
    assert_eq!(
        verify(std::slice::from_ref(&ours), &received(ID, &timestamp, &header), BODY, now, 300),
        Ok(())
    );
    assert_eq!(
        verify(&[ours], &received(ID, &timestamp, &header), b"{}", now, 300),
        Err(WebhookError::Mismatch)
    );
}
