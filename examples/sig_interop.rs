//! Interop driver for `tests/interop/run.sh`: `sign` prints signed requests as JSON lines for an
//! independent RFC 9421 implementation to verify; `verify` reads such lines from stdin and checks
//! each with Waggle's verifier (exit 1 if any fails).
//!
//! Line shape: `{"name", "purpose": "api"|"callback", "method", "url", "headers": [[name, value]…],
//! "body_b64", "key_id", "key"}`. `key` is the tenant key string (its UTF-8 bytes are the HMAC key).
//!
//! Standard Webhooks (`tests/interop/standard_webhooks.py`): `webhooks` prints deliveries signed by
//! Waggle; `webhooks-verify` reads deliveries signed by the reference library and checks each with
//! Waggle's verifier. Line shape: `{"name", "expect": "ok"|"fail", "payload", "headers":
//! {"webhook-id", "webhook-timestamp", "webhook-signature"}, "secrets": [whsec_…]}`; every listed
//! secret must verify an `ok` line on its own and none may verify a `fail` line.

use std::io::{BufRead as _, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use serde::{Deserialize, Serialize};
use waggle::headers;
use waggle::signing::webhooks::{self as wh, ReceivedHeaders, WebhookSecret};
use waggle::signing::{
    Message, Purpose, SigningKey, VerifyPolicy, api_components, callback_required, content_digest_value,
    random_nonce, sign_request, verify_content_digest, verify_request,
};

const KEY_ID: &str = "interop-key";
const TENANT_KEY: &str = "wgl-interop-tenant-key-8d1e";

#[derive(Serialize, Deserialize)]
struct Line {
    name: String,
    purpose: String,
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body_b64: String,
    key_id: String,
    key: String,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn sign_one(
    name: &str,
    purpose: Purpose,
    method: &str,
    url: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> Line {
    let method: Method = method.parse().expect("method");
    let uri: Uri = url.parse().expect("url");
    let mut map = HeaderMap::new();
    for (k, v) in extra {
        map.insert(
            HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    map.insert(headers::CONTENT_DIGEST, HeaderValue::from_str(&content_digest_value(body)).expect("digest"));
    let covered = match purpose {
        Purpose::Api => api_components(),
        Purpose::Callback | Purpose::KeyAnnounce => callback_required(&map),
    };
    let key = SigningKey::from_tenant_key(KEY_ID, TENANT_KEY);
    let nonce = random_nonce(&mut rand::rng());
    let signed =
        sign_request(&key, purpose, &Message::from_uri(&method, &uri, &map), &covered, now(), &nonce)
            .expect("sign");
    signed.apply(&mut map).expect("apply");
    Line {
        name: name.to_owned(),
        purpose: match purpose {
            Purpose::Api => "api",
            Purpose::Callback => "callback",
            Purpose::KeyAnnounce => "key-announce",
        }
        .to_owned(),
        method: method.to_string(),
        url: url.to_owned(),
        headers: map
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().expect("ascii").to_owned()))
            .collect(),
        body_b64: STANDARD.encode(body),
        key_id: KEY_ID.to_owned(),
        key: TENANT_KEY.to_owned(),
    }
}

fn sign_all() {
    let user = [("x-waggle-user", "alice"), ("x-waggle-instance", "oc7h2k9x1q")];
    let json = [("content-type", "application/json"), user[0], user[1]];
    let propfind = [
        ("x-http-method-override", "PROPFIND"),
        ("x-waggle-target", "/remote.php/dav/files/alice/Photos%20%C3%A9t%C3%A9/"),
        ("x-waggle-user", "alice"),
        ("content-type", "application/xml; charset=utf-8"),
        ("depth", "1"),
    ];
    let lines = [
        sign_one(
            "api-get-reserved-utf8-query",
            Purpose::Api,
            "GET",
            "https://saas.example.com/api/v1/search?q=a%2Bb%26c%3Dd&name=R%C3%A9sum%C3%A9&empty=&flag",
            &user,
            b"",
        ),
        sign_one(
            "api-post-json",
            Purpose::Api,
            "POST",
            "https://SaaS.Example.com:443/api/v1/notes",
            &json,
            "{\"t\":\"h\u{e9}\"}".as_bytes(),
        ),
        sign_one(
            "api-empty-system",
            Purpose::Api,
            "POST",
            "https://saas.example.com:8443/api/v1/sync",
            &[("x-waggle-user", ""), ("x-waggle-instance", "oc7h2k9x1q")],
            b"",
        ),
        sign_one(
            "api-put",
            Purpose::Api,
            "PUT",
            "http://127.0.0.1:8080/api/v1/items/7?v=2",
            &json,
            b"[1,2,3]",
        ),
        sign_one(
            "callback-propfind-override",
            Purpose::Callback,
            "POST",
            "https://cloud.example.com/index.php/apps/app_api/proxy/waggle/nc/remote.php/dav/files/alice/",
            &propfind,
            b"<?xml version=\"1.0\"?><d:propfind xmlns:d=\"DAV:\"><d:prop><d:getetag/></d:prop></d:propfind>",
        ),
        sign_one(
            "callback-get-empty",
            Purpose::Callback,
            "GET",
            "https://cloud.example.com/index.php/apps/app_api/proxy/waggle/nc/ocs/v2.php/cloud/users/alice",
            &[("x-waggle-target", "/ocs/v2.php/cloud/users/alice?format=json"), ("x-waggle-user", "alice")],
            b"",
        ),
    ];
    let mut out = std::io::stdout().lock();
    for line in lines {
        writeln!(out, "{}", serde_json::to_string(&line).expect("json")).expect("stdout");
    }
}

fn verify_one(line: &Line) -> Result<String, String> {
    let method: Method = line.method.parse().map_err(|e| format!("method: {e}"))?;
    let uri: Uri = line.url.parse().map_err(|e| format!("url: {e}"))?;
    let mut map = HeaderMap::new();
    for (k, v) in &line.headers {
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|e| format!("header name: {e}"))?;
        map.append(name, HeaderValue::from_str(v).map_err(|e| format!("header value: {e}"))?);
    }
    let body = STANDARD.decode(&line.body_b64).map_err(|e| format!("body: {e}"))?;
    let policy = match line.purpose.as_str() {
        "api" => VerifyPolicy::api(now()),
        "callback" => VerifyPolicy::callback(now(), &map),
        other => return Err(format!("unknown purpose {other}")),
    };
    let message = Message::from_uri(&method, &uri, &map);
    let lookup = |id: &str| (id == line.key_id).then_some(line.key.as_bytes());
    let verified = verify_request(&message, lookup, &policy).map_err(|e| e.code().to_owned())?;
    let digest = map.get(headers::CONTENT_DIGEST).and_then(|v| v.to_str().ok()).ok_or("no content-digest")?;
    verify_content_digest(digest, &body).map_err(|e| e.code().to_owned())?;
    Ok(format!("keyid={} nonce={} covered={}", verified.keyid, verified.nonce, verified.covered.len()))
}

fn verify_all() -> bool {
    let mut all_ok = true;
    let mut count = 0;
    for raw in std::io::stdin().lock().lines() {
        let raw = raw.expect("stdin");
        if raw.trim().is_empty() {
            continue;
        }
        count += 1;
        let result = serde_json::from_str::<Line>(&raw).map_err(|e| format!("json: {e}")).and_then(|l| {
            let name = l.name.clone();
            verify_one(&l).map(|ok| (name.clone(), ok)).map_err(|e| format!("{name}: {e}"))
        });
        match result {
            Ok((name, detail)) => println!("OK   {name} {detail}"),
            Err(e) => {
                all_ok = false;
                println!("FAIL {e}");
            }
        }
    }
    all_ok && count > 0
}

#[derive(Serialize, Deserialize)]
struct WebhookLine {
    name: String,
    expect: String,
    payload: String,
    headers: std::collections::BTreeMap<String, String>,
    secrets: Vec<String>,
}

fn webhook_line(
    name: &str,
    expect: &str,
    msg_id: &str,
    timestamp: u64,
    payload: &str,
    signers: &[WebhookSecret],
    verifiers: &[WebhookSecret],
) -> WebhookLine {
    let signed = wh::headers(signers, msg_id, timestamp, payload.as_bytes());
    WebhookLine {
        name: name.to_owned(),
        expect: expect.to_owned(),
        payload: payload.to_owned(),
        headers: signed.pairs().into_iter().map(|(k, v)| (k.as_str().to_owned(), v.to_owned())).collect(),
        secrets: verifiers.iter().map(WebhookSecret::to_whsec).collect(),
    }
}

fn webhooks_sign_all() {
    let now = now();
    let new = WebhookSecret::from_tenant_key("wgl-interop-events-key-new-0123456789");
    let old = WebhookSecret::from_whsec("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").expect("whsec");
    let foreign = WebhookSecret::new(*b"someone-else's-events-key-bytes!");
    let body = concat!(
        r#"{"type":"note.created","timestamp":"2024-05-01T12:00:00Z","#,
        "\"data\":{\"id\":\"42\",\"t\":\"h\u{e9} \u{1f41d}\"}}"
    );
    let one = std::slice::from_ref(&new);
    let olds = std::slice::from_ref(&old);
    let both = [new.clone(), old.clone()];
    let mut tampered = webhook_line("rs-tampered", "fail", "msg_rs_tampered", now, body, one, one);
    tampered.payload = body.replace("42", "43");
    let lines = [
        webhook_line("rs-single", "ok", "msg_rs_single", now, body, one, one),
        webhook_line("rs-rotation", "ok", "msg_rs_rotation", now, body, &both, &both),
        webhook_line("rs-old-key-only", "ok", "msg_rs_old", now, body, olds, olds),
        webhook_line("rs-empty-payload", "ok", "evt_01HXYZ-empty", now, "", one, one),
        webhook_line("rs-edge-past", "ok", "msg_rs_past", now - 240, body, one, one),
        webhook_line("rs-edge-future", "ok", "msg_rs_future", now + 240, body, one, one),
        webhook_line("rs-expired", "fail", "msg_rs_expired", now - 400, body, one, one),
        webhook_line("rs-far-future", "fail", "msg_rs_far_future", now + 400, body, one, one),
        webhook_line("rs-foreign-key", "fail", "msg_rs_foreign", now, body, &[foreign], &both),
        tampered,
    ];
    let mut out = std::io::stdout().lock();
    for line in lines {
        writeln!(out, "{}", serde_json::to_string(&line).expect("json")).expect("stdout");
    }
}

fn webhooks_verify_one(line: &WebhookLine) -> Result<String, String> {
    let get = |name: &str| line.headers.get(name).map(String::as_str).ok_or(format!("missing {name}"));
    let received = ReceivedHeaders {
        id: get(wh::WEBHOOK_ID.as_str())?,
        timestamp: get(wh::WEBHOOK_TIMESTAMP.as_str())?,
        signature: get(wh::WEBHOOK_SIGNATURE.as_str())?,
    };
    let mut outcomes = Vec::new();
    for serialised in &line.secrets {
        let secret = WebhookSecret::from_whsec(serialised).map_err(|e| e.code().to_owned())?;
        let result =
            wh::verify(&[secret], &received, line.payload.as_bytes(), now(), wh::DEFAULT_TOLERANCE_SECS);
        outcomes.push(result.map_or_else(|e| e.code(), |()| "ok"));
    }
    let good = match line.expect.as_str() {
        "ok" => outcomes.iter().all(|o| *o == "ok"),
        "fail" => outcomes.iter().all(|o| *o != "ok"),
        other => return Err(format!("unknown expectation {other}")),
    };
    let detail = format!("expect={} got={outcomes:?}", line.expect);
    if good && !outcomes.is_empty() { Ok(detail) } else { Err(detail) }
}

fn webhooks_verify_all() -> bool {
    let mut all_ok = true;
    let mut count = 0;
    for raw in std::io::stdin().lock().lines() {
        let raw = raw.expect("stdin");
        if raw.trim().is_empty() {
            continue;
        }
        count += 1;
        match serde_json::from_str::<WebhookLine>(&raw) {
            Ok(line) => match webhooks_verify_one(&line) {
                Ok(detail) => println!("OK   {} {detail}", line.name),
                Err(e) => {
                    all_ok = false;
                    println!("FAIL {} {e}", line.name);
                }
            },
            Err(e) => {
                all_ok = false;
                println!("FAIL json: {e}");
            }
        }
    }
    all_ok && count > 0
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("sign") => sign_all(),
        Some("verify") => {
            if !verify_all() {
                std::process::exit(1);
            }
        }
        Some("webhooks") => webhooks_sign_all(),
        Some("webhooks-verify") => {
            if !webhooks_verify_all() {
                std::process::exit(1);
            }
        }
        _ => {
            eprintln!("usage: sig_interop sign | verify | webhooks | webhooks-verify < lines.jsonl");
            std::process::exit(2);
        }
    }
}
