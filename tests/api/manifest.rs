//! `appinfo/info.xml` versus the router, through ports of AppAPI's three route matchers, and the
//! registration JSON printed in the docs versus the manifest. The manifest and the code cannot drift.

use axum::http::Method;
use regex::RegexBuilder;

use crate::harness::TestApp;

#[derive(Debug, Clone, PartialEq)]
struct Route {
    url: String,
    verbs: String,
    level: u8,
}

fn manifest() -> (roxmltree::Document<'static>, Vec<Route>) {
    let text: &'static str = Box::leak(
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/appinfo/info.xml"))
            .unwrap()
            .into_boxed_str(),
    );
    let doc = roxmltree::Document::parse(text).unwrap();
    let routes = doc
        .descendants()
        .filter(|n| n.has_tag_name("route"))
        .map(|r| {
            let child = |name: &str| {
                r.children()
                    .find(|c| c.has_tag_name(name))
                    .and_then(|c| c.text())
                    .unwrap_or("")
                    .trim()
                    .to_owned()
            };
            assert!(
                r.children().all(|c| !c.has_tag_name("bruteforce_protection")),
                "no route carries bruteforce_protection"
            );
            let level = match child("access_level").as_str() {
                "PUBLIC" | "0" => 0,
                "USER" | "1" => 1,
                "ADMIN" | "2" => 2,
                other => panic!("bad access level {other}"),
            };
            Route { url: child("url"), verbs: child("verb"), level }
        })
        .collect();
    (doc, routes)
}

/// AppAPI 5.0.2 (NC 31): `/<url>/i`, unanchored, on the path without its leading slash, verb by
/// substring; a route whose access check fails falls through, so we return every match in order.
fn match_aa502<'a>(routes: &'a [Route], method: &str, path: &str) -> Option<&'a Route> {
    let bare = path.trim_start_matches('/');
    routes.iter().find(|r| {
        let re = RegexBuilder::new(&r.url).case_insensitive(true).build().unwrap();
        re.is_match(bare) && r.verbs.to_uppercase().contains(method)
    })
}

/// AppAPI main and backports: `~^(?:<url>)~i` on `/<path>`, first path+verb match decides.
fn match_aa_main<'a>(routes: &'a [Route], method: &str, path: &str) -> Option<&'a Route> {
    routes.iter().find(|r| {
        let re = RegexBuilder::new(&format!("^(?:{})", r.url)).case_insensitive(true).build().unwrap();
        re.is_match(path) && r.verbs.to_uppercase().contains(method)
    })
}

/// HaRP: Python `re.match` (anchored at the start, case-sensitive) on `/<path>`; verbs ignored.
fn match_harp<'a>(routes: &'a [Route], path: &str) -> Option<&'a Route> {
    routes.iter().find(|r| RegexBuilder::new(&format!("^(?:{})", r.url)).build().unwrap().is_match(path))
}

/// What the router serves, with the access level each path needs.
const SERVED: &[(&str, &str, u8)] = &[
    ("GET", "/", 1),
    ("GET", "/index.html", 1),
    ("GET", "/me", 1),
    ("GET", "/status", 1),
    ("GET", "/settings/policy", 1),
    ("GET", "/img/app.svg", 0),
    ("GET", "/js/missing.js", 0),
    ("GET", "/css/x.css", 0),
    ("GET", "/assets/x.js", 0),
    ("GET", "/admin/status", 2),
    ("GET", "/api/v1/things", 1),
    ("POST", "/api/v1/things", 1),
    ("PUT", "/api/x", 1),
    ("DELETE", "/api/x", 1),
    ("GET", "/auth/session", 1),
    ("POST", "/auth/login", 1),
    ("GET", "/nc/ocs/v2.php/cloud/user", 0),
    ("POST", "/nc/remote.php/dav/files/alice/", 0),
    ("PUT", "/nc/remote.php/dav/files/alice/x", 0),
    ("DELETE", "/nc/remote.php/dav/files/alice/x", 0),
    ("POST", "/saas/keys/announce", 0),
    ("GET", "/admin/tenant-key", 2),
    ("POST", "/admin/tenant-key/rotate", 2),
    ("POST", "/admin/tenant-key/bootstrap", 2),
];

/// Called by AppAPI directly: must never be reachable through the proxy.
const LIFECYCLE: &[(&str, &str)] = &[("GET", "/heartbeat"), ("POST", "/init"), ("PUT", "/enabled")];

#[test]
fn every_served_path_is_declared_with_its_access_level_under_every_matcher() {
    let (_doc, routes) = manifest();
    for (method, path, level) in SERVED {
        for (name, found) in [
            ("AppAPI 5.0.2", match_aa502(&routes, method, path)),
            ("AppAPI main", match_aa_main(&routes, method, path)),
            ("HaRP", match_harp(&routes, path)),
        ] {
            let route = found.unwrap_or_else(|| panic!("{name}: {method} {path} matches no route"));
            assert_eq!(route.level, *level, "{name}: {method} {path} matched {route:?}");
        }
    }
    for (method, path) in LIFECYCLE {
        assert!(match_aa502(&routes, method, path).is_none(), "{path} must not be declared");
        assert!(match_aa_main(&routes, method, path).is_none(), "{path} must not be declared");
        assert!(match_harp(&routes, path).is_none(), "{path} must not be declared");
    }
}

#[test]
fn every_client_route_of_the_spa_is_declared_as_a_user_page() {
    let (_doc, routes) = manifest();
    for route in waggle::spa::CLIENT_ROUTES {
        for path in [format!("/{route}"), format!("/{route}/deeper")] {
            for found in [
                match_aa502(&routes, "GET", &path),
                match_aa_main(&routes, "GET", &path),
                match_harp(&routes, &path),
            ] {
                assert_eq!(found.map(|r| r.level), Some(1), "{path}");
            }
        }
    }
    // Files never match the page route: a missing asset stays a 404 from the right route.
    for path in ["/status.js", "/me/x.css"] {
        assert!(match_aa_main(&routes, "GET", path).is_none_or(|r| r.level == 0), "{path}");
    }
}

#[test]
fn every_declared_route_is_exercised() {
    let (_doc, routes) = manifest();
    for route in &routes {
        let used = SERVED.iter().any(|(m, p, _)| match_aa_main(&routes, m, p) == Some(route));
        assert!(used, "route {route:?} has no served path in the table");
    }
}

#[tokio::test]
async fn the_router_enforces_what_the_manifest_declares() {
    let app = TestApp::spawn().await;
    for (method, path, level) in SERVED {
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let anonymous = app.client.request(m.clone(), app.url(path)).send().await.unwrap();
        assert_eq!(anonymous.status(), 401, "{path} needs the AppAPI secret");
        let system = app.request(m.clone(), path, "").send().await.unwrap();
        let status = system.status().as_u16();
        let code = system.json::<serde_json::Value>().await.unwrap_or_default()["error"]["code"].clone();
        if *level == 0 {
            // The AppAPI layer admits it; the handler may still refuse for its own reasons (e.g. /nc
            // without the SaaS's signature).
            assert!(
                !["unauthorized", "user_required", "admin_required"].contains(&code.as_str().unwrap_or("")),
                "{path} is PUBLIC: {status} {code}"
            );
        } else {
            assert_eq!(status, 401, "{path} needs a user");
        }
        let user = app.request(m.clone(), path, "alice").send().await.unwrap();
        let user_status = user.status().as_u16();
        let code = user.json::<serde_json::Value>().await.unwrap_or_default()["error"]["code"].clone();
        match level {
            2 => assert_eq!(user_status, 403, "{path} needs an admin"),
            _ => assert!(
                !["unauthorized", "user_required", "admin_required"].contains(&code.as_str().unwrap_or("")),
                "{path} admits users"
            ),
        }
        let admin = app.request(m, path, "admin").send().await.unwrap();
        assert_ne!(admin.status().as_u16(), 405, "{path}: method routed");
        let code = admin.json::<serde_json::Value>().await.unwrap_or_default()["error"]["code"].clone();
        assert!(
            !["unauthorized", "user_required", "admin_required"].contains(&code.as_str().unwrap_or("")),
            "{path} admits admins"
        );
    }
}

#[test]
fn manifest_metadata_is_complete() {
    let (doc, _) = manifest();
    let text = |tag: &str| {
        doc.descendants().find(|n| n.has_tag_name(tag)).and_then(|n| n.text()).unwrap_or("").trim().to_owned()
    };
    assert_eq!(text("id"), "waggle");
    assert_eq!(text("licence"), "AGPL-3.0-or-later");
    assert_eq!(text("version"), env!("CARGO_PKG_VERSION"), "info.xml version follows Cargo.toml");
    assert_eq!(text("image-tag"), env!("CARGO_PKG_VERSION"), "image tag follows the version");
    let nc = doc.descendants().find(|n| n.has_tag_name("nextcloud")).unwrap();
    assert_eq!((nc.attribute("min-version"), nc.attribute("max-version")), (Some("31"), Some("35")));
    let declared: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("variable"))
        .filter_map(|v| {
            v.children().find(|c| c.has_tag_name("name")).and_then(|c| c.text()).map(str::to_owned)
        })
        .collect();
    for var in
        ["WAGGLE_SERVICE_URL", "WAGGLE_TENANT_KEY", "WAGGLE_TENANT_KEY_ID", "WAGGLE_LOG_FORMAT", "RUST_LOG"]
    {
        assert!(declared.iter().any(|d| d == var), "{var} is declared");
    }
}

/// The registration JSON printed in README.md and docs/DEPLOY.md works as printed: it parses, uses
/// integer access levels and declares exactly the manifest's routes in the same order.
#[test]
fn printed_registration_json_matches_the_manifest() {
    let (_doc, routes) = manifest();
    for doc in ["README.md", "docs/DEPLOY.md"] {
        let text = std::fs::read_to_string(format!("{}/{doc}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let start =
            text.find("cat > waggle.json <<'EOF'\n").unwrap_or_else(|| panic!("{doc} prints the JSON")) + 26;
        let end = start + text[start..].find("\nEOF").unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&text[start..end]).unwrap_or_else(|e| panic!("{doc}: {e}"));
        assert_eq!(json["id"], "waggle", "{doc}");
        assert_eq!(json["version"], env!("CARGO_PKG_VERSION"), "{doc}");
        let printed: Vec<Route> = json["routes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| Route {
                url: r["url"].as_str().unwrap().to_owned(),
                verbs: r["verb"].as_str().unwrap().to_owned(),
                level: u8::try_from(r["access_level"].as_u64().expect("access_level is an integer")).unwrap(),
            })
            .collect();
        assert_eq!(printed, routes, "{doc}");
    }
}
