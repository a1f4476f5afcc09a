//! The embedded UI over a real socket: cache headers, ETags, precompressed negotiation, relative base
//! paths, what falls back to the page and what never does, and that the committed bundle was built
//! from the committed sources.

use reqwest::Method;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::harness::TestApp;

const WEB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/web");

/// The hashed entry module and stylesheet named by the committed `index.html`.
fn bundle_names() -> (String, String) {
    let html = std::fs::read_to_string(format!("{WEB}/dist/index.html")).unwrap();
    let pick = |ext: &str| {
        html.split('"')
            .find(|s| s.starts_with("./assets/") && s.ends_with(ext))
            .unwrap_or_else(|| panic!("index.html names no {ext}"))
            .trim_start_matches("./")
            .to_owned()
    };
    (pick(".js"), pick(".css"))
}

#[tokio::test]
async fn hashed_assets_are_immutable_for_a_year_and_documents_are_never_stored() {
    let app = TestApp::spawn().await;
    let (js, css) = bundle_names();
    for path in [&js, &css] {
        let r = app.request(Method::GET, &format!("/{path}"), "").send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["cache-control"], "public, max-age=31536000, immutable", "{path}");
        assert!(r.headers().contains_key("etag"));
    }
    let r = app.request(Method::GET, &format!("/{js}"), "").send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "text/javascript; charset=utf-8");

    // The stable names registered with AppAPI are revalidated, never cached blind.
    for path in ["/js/waggle-main.js", "/css/waggle-main.css", "/img/app.svg"] {
        let r = app.request(Method::GET, path, "").send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["cache-control"], "no-cache", "{path}");
    }
    let loader =
        app.request(Method::GET, "/js/waggle-main.js", "").send().await.unwrap().text().await.unwrap();
    assert!(loader.contains(&format!("\"{js}\"")), "the loader imports the current entry {js}");

    for path in ["/index.html", "/", "/status"] {
        let r = app.request(Method::GET, path, "alice").send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["cache-control"], "no-store", "{path}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"), "{path}");
        let csp = r.headers()["content-security-policy"].to_str().unwrap().to_owned();
        assert!(
            csp.contains(&format!("frame-ancestors 'self' {}", app.nc.url().trim_end_matches('/'))),
            "{csp}"
        );
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    }
}

#[tokio::test]
async fn etags_answer_if_none_match_with_304_for_the_same_representation_only() {
    let app = TestApp::spawn().await;
    let (js, _) = bundle_names();
    let get = |enc: Option<&'static str>, inm: Option<String>| {
        let mut r = app.request(Method::GET, &format!("/{js}"), "");
        if let Some(e) = enc {
            r = r.header("accept-encoding", e);
        }
        if let Some(tag) = inm {
            r = r.header("if-none-match", tag);
        }
        r.send()
    };
    let plain = get(None, None).await.unwrap();
    let plain_tag = plain.headers()["etag"].to_str().unwrap().to_owned();
    let gz = get(Some("gzip"), None).await.unwrap();
    let gz_tag = gz.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(plain_tag, gz_tag, "each representation has its own strong ETag");

    let r = get(Some("gzip"), Some(gz_tag.clone())).await.unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["etag"], gz_tag.as_str());
    assert_eq!(r.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert!(r.bytes().await.unwrap().is_empty());

    let r = get(Some("gzip"), Some(format!("W/{gz_tag}, \"other\""))).await.unwrap();
    assert_eq!(r.status(), 304, "weak comparison, lists");
    let r = get(None, Some(gz_tag)).await.unwrap();
    assert_eq!(r.status(), 200, "the gzip tag does not validate the identity representation");
    let r = get(None, Some("\"nope\"".to_owned())).await.unwrap();
    assert_eq!(r.status(), 200);

    // Documents revalidate too.
    let doc = app.request(Method::GET, "/index.html", "alice").send().await.unwrap();
    let tag = doc.headers()["etag"].to_str().unwrap().to_owned();
    let r =
        app.request(Method::GET, "/index.html", "alice").header("if-none-match", tag).send().await.unwrap();
    assert_eq!(r.status(), 304);
}

#[tokio::test]
async fn precompressed_files_are_chosen_by_accept_encoding() {
    let app = TestApp::spawn().await;
    let (js, css) = bundle_names();
    for path in [&js, &css, &"css/waggle-main.css".to_owned()] {
        let on_disk = |suffix: &str| std::fs::read(format!("{WEB}/dist/{path}{suffix}")).unwrap();
        for (accept, encoding, suffix) in [
            ("gzip, deflate, br, zstd", Some("br"), ".br"),
            ("br;q=0.5, gzip", Some("gzip"), ".gz"),
            ("gzip;q=0, br;q=0", None, ""),
            ("identity", None, ""),
            ("*;q=0", None, ""),
        ] {
            let r = app
                .request(Method::GET, &format!("/{path}"), "")
                .header("accept-encoding", accept)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(
                r.headers().get("content-encoding").map(|v| v.to_str().unwrap()),
                encoding,
                "{path} {accept}"
            );
            assert_eq!(r.headers()["vary"], "Accept-Encoding");
            let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
            assert!(
                ct.starts_with(if path.ends_with(".js") { "text/javascript" } else { "text/css" }),
                "{ct}"
            );
            assert_eq!(r.bytes().await.unwrap().as_ref(), on_disk(suffix).as_slice(), "{path} {accept}");
        }
    }
    // A precompressed file is never addressable on its own.
    let r = app.request(Method::GET, &format!("/{js}.br"), "").send().await.unwrap();
    assert_eq!(r.status(), 404);
    // Small files have no variants and no Vary.
    let r =
        app.request(Method::GET, "/img/app.svg", "").header("accept-encoding", "br").send().await.unwrap();
    assert!(r.headers().get("content-encoding").is_none());
}

#[tokio::test]
async fn client_routes_land_on_the_document_and_nothing_else_falls_back() {
    let app = TestApp::spawn().await;
    for (path, target) in [
        ("/", "index.html#/"),
        ("/me", "index.html#/me"),
        ("/status", "index.html#/status"),
        ("/settings/policy", "../index.html#/settings/policy"),
    ] {
        let r = app.request(Method::GET, path, "alice").send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let body = r.text().await.unwrap();
        assert!(body.contains(&format!("url={target}\"")), "{path}: {body}");
        assert!(!body.contains("<script"), "landing pages carry no script");
    }
    // Never the page: other API prefixes, missing assets, anything else.
    for path in [
        "/waggle/nope",
        "/assets/missing.js",
        "/js/nope.js",
        "/img/",
        "/nope",
        "/index.htm",
        "/status.html",
        "/me.js",
    ] {
        let r = app.request(Method::GET, path, "alice").send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{path}");
    }
    // /api, /auth and /nc belong to their proxies, which answer with their own errors, never HTML.
    for path in ["/api/x", "/auth/x", "/nc/ocs/v2.php/cloud/user"] {
        let r = app.request(Method::GET, path, "alice").send().await.unwrap();
        let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        assert!(!ct.starts_with("text/html"), "{path} answered {} {ct}", r.status());
    }
}

#[tokio::test]
async fn the_document_uses_relative_urls_and_no_inline_script() {
    let app = TestApp::spawn().await;
    let html = app.request(Method::GET, "/index.html", "alice").send().await.unwrap().text().await.unwrap();
    let refs: Vec<&str> = html
        .split(['"', '\''])
        .filter(|s| s.contains("assets/") || s.ends_with(".svg") || s.ends_with(".css"))
        .collect();
    assert!(refs.len() >= 3, "{refs:?}");
    for r in &refs {
        assert!(r.starts_with("./"), "{r} must be relative, so every proxy prefix works");
        let status = app.request(Method::GET, &r[1..], "").send().await.unwrap().status();
        assert_eq!(status, 200, "{r}");
    }
    // Every <script> has a src: the PHP proxy nonces script tags, and Nextcloud's CSP blocks the rest.
    for tag in html.split("<script").skip(1) {
        let open = &tag[..tag.find('>').unwrap()];
        assert!(open.contains("src="), "inline script: <script{open}>");
    }
    assert!(!html.contains(" on"), "no inline event handlers");
}

/// The rule of `web/build/digest.ts`, recomputed: sorted paths under the inputs, SHA-256 over
/// `<path>\n<len>\n<bytes>` each.
fn source_digest() -> String {
    const INPUTS: &[&str] = &[
        "build",
        "index.html",
        "package-lock.json",
        "package.json",
        "public",
        "src",
        "tsconfig.json",
        "vite.config.ts",
    ];
    fn files(root: &std::path::Path, rel: &str, out: &mut Vec<String>) {
        let path = root.join(rel);
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                files(root, &format!("{rel}/{name}"), out);
            }
        } else {
            out.push(rel.to_owned());
        }
    }
    let root = std::path::Path::new(WEB);
    let mut all = Vec::new();
    for input in INPUTS {
        files(root, input, &mut all);
    }
    all.sort();
    let mut hash = Sha256::new();
    for rel in all {
        let data = std::fs::read(root.join(&rel)).unwrap();
        hash.update(format!("{rel}\n{}\n", data.len()));
        hash.update(&data);
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_committed_bundle_matches_its_sources() {
    let recorded = std::fs::read_to_string(format!("{WEB}/dist/.source-digest")).unwrap();
    assert_eq!(
        recorded.trim(),
        source_digest(),
        "web/dist was built from other sources than the ones in web/: run `npm --prefix web ci && npm --prefix web run build` and commit web/dist"
    );
}
