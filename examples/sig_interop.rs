//! Interop driver for `tests/interop/run.sh`: `sign` prints signed requests as JSON lines for an
//! independent RFC 9421 implementation to verify; `verify` reads such lines from stdin and checks
//! each with Waggle's verifier (exit 1 if any fails).
//!
//! Line shape: `{"name", "purpose": "api"|"callback", "method", "url", "headers": [[name, value]…],
//! "body_b64", "key_id", "key"}`. `key` is the tenant key string (its UTF-8 bytes are the HMAC key).

use std::io::{BufRead as _, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use serde::{Deserialize, Serialize};
use waggle::headers;
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

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("sign") => sign_all(),
        Some("verify") => {
            if !verify_all() {
                std::process::exit(1);
            }
        }
        _ => {
            eprintln!("usage: sig_interop sign | verify < lines.jsonl");
            std::process::exit(2);
        }
    }
}
