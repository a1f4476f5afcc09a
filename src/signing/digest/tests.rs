//! Unit tests for RFC 9530 `Content-Digest` handling.

use super::*;

#[test]
fn empty_body_digest_is_sha256_of_nothing() {
    assert_eq!(content_digest_value(b""), EMPTY_BODY_DIGEST);
    assert_eq!(ContentDigest::new().finish(), EMPTY_BODY_DIGEST);
}

#[test]
fn streamed_digest_equals_one_shot() {
    let body = b"{\"hello\":\"world\"}";
    let mut streamed = ContentDigest::new();
    for chunk in body.chunks(3) {
        streamed.update(chunk);
    }
    assert_eq!(streamed.len(), body.len() as u64);
    assert_eq!(streamed.finish(), content_digest_value(body));
}

#[test]
fn known_vector_from_rfc9530() {
    // RFC 9530 §2 example: {"hello": "world"} followed by a newline.
    assert_eq!(
        content_digest_value(b"{\"hello\": \"world\"}\n"),
        "sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:"
    );
}

#[test]
fn parse_round_trips_and_tolerates_other_algorithms() {
    let value = content_digest_value(b"abc");
    let parsed = parse_content_digest(&value).expect("valid");
    assert_eq!(format_sha256(&parsed), value);
    let with_other = format!("sha-512=:{}:, {value}", "A".repeat(86) + "==");
    assert_eq!(parse_content_digest(&with_other), Ok(parsed));
}

#[test]
fn parse_rejects_bad_values() {
    let good = content_digest_value(b"abc");
    let b64 = good.trim_start_matches("sha-256=:").trim_end_matches(':').to_owned();
    let cases: Vec<(String, DigestError)> = vec![
        (String::new(), DigestError::MissingSha256),
        ("sha-512=:AAAA:".to_owned(), DigestError::MissingSha256),
        (format!("{good}, {good}"), DigestError::Malformed),
        (format!("sha-256={b64}"), DigestError::Malformed),
        ("sha-256=:AAAA:".to_owned(), DigestError::BadSha256),
        (
            format!("sha-256=:{}:", base64::engine::general_purpose::STANDARD.encode([0u8; 33])),
            DigestError::BadSha256,
        ),
        (format!("sha-256=\"{b64}\""), DigestError::BadSha256),
        (format!("{good};x=1"), DigestError::BadSha256),
        (format!("sha-256=:{}:", b64.replace('+', "-").replace('/', "_")), DigestError::Malformed),
        ("sha-256=:".to_owned(), DigestError::Malformed),
        ("x".repeat(MAX_CONTENT_DIGEST_LEN + 1), DigestError::TooLong),
    ];
    for (value, want) in cases {
        assert_eq!(parse_content_digest(&value), Err(want), "{value}");
    }
}

#[test]
fn verify_detects_tampering() {
    let value = content_digest_value(b"payload");
    assert_eq!(verify_content_digest(&value, b"payload"), Ok(()));
    assert_eq!(verify_content_digest(&value, b"payloaD"), Err(DigestError::Mismatch));
    assert_eq!(verify_content_digest(&value, b""), Err(DigestError::Mismatch));
    assert_eq!(verify_content_digest(EMPTY_BODY_DIGEST, b""), Ok(()));
}
