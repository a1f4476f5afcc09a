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

/// The variables `info.xml` declares: (name, description), and whether a `<default>` is present.
fn declared_variables() -> Vec<(String, String, bool)> {
    let (doc, _) = manifest();
    doc.descendants()
        .filter(|n| n.has_tag_name("variable"))
        .map(|v| {
            let child = |tag: &str| {
                v.children()
                    .find(|c| c.has_tag_name(tag))
                    .and_then(|c| c.text())
                    .unwrap_or("")
                    .trim()
                    .to_owned()
            };
            let has_default = v.children().any(|c| c.has_tag_name("default"));
            (child("name"), child("description"), has_default)
        })
        .collect()
}

/// A valid, non-default value for each declared variable. Keys must equal the declared set.
const DECLARED_TEST_VALUES: &[(&str, &str)] = &[
    ("WAGGLE_SERVICE_URL", "https://saas.example.com/"),
    ("WAGGLE_PAIRING_CODE", "pair-123"),
    ("WAGGLE_TENANT_KEY", "dGVuYW50LWtleQ"),
    ("WAGGLE_TENANT_KEY_ID", "tk-7"),
    ("WAGGLE_NC_PUBLIC_URL", "https://cloud.example.com/"),
    ("WAGGLE_EVENTS_URL", "https://events.example.com/in/"),
    ("WAGGLE_SYNC_INTERVAL", "77"),
    ("WAGGLE_SYNC__ADMIN_UID", "root2"),
    ("WAGGLE_CALLBACK__READ_ONLY", "true"),
    ("WAGGLE_CALLBACK__APPS", "deck,forms"),
    ("WAGGLE_CALLBACK__EXTRA_ALLOW", "/ocs/v2.php/apps/deck/"),
    ("WAGGLE_CALLBACK__DENY", "/remote.php/dav/files/"),
    ("WAGGLE_CALLBACK__SERVICE_PATHS", "/ocs/v2.php/cloud/capabilities"),
    ("WAGGLE_CALLBACK__DESTRUCTIVE_PER_MINUTE", "9"),
    ("WAGGLE_CALLBACK__BODY_CAP_BYTES", "1234"),
    ("WAGGLE_PROXY__API_BODY_CAP_BYTES", "4321"),
    ("WAGGLE_PROXY__PHP_PROXY_RESPONSE_CAP_BYTES", "5555"),
    ("WAGGLE_PROXY__WS_MAX_MESSAGE_BYTES", "999"),
    ("WAGGLE_PROXY__HEADER_TIMEOUT_SECS", "11"),
    ("WAGGLE_PROXY__IDLE_TIMEOUT_SECS", "12"),
    ("WAGGLE_NEXTCLOUD__TIMEOUT_SECS", "13"),
    ("WAGGLE_LOG_FORMAT", "pretty"),
    ("RUST_LOG", "debug"),
];

/// AppAPI hands a Docker/HaRP-deployed Waggle only the declared variables: each one must be a knob
/// Waggle really reads (setting it changes the loaded settings), and the ones an admin needs are there.
#[test]
fn every_declared_variable_is_a_knob_waggle_reads() {
    let declared: std::collections::BTreeSet<String> =
        declared_variables().into_iter().map(|v| v.0).collect();
    let table: std::collections::BTreeSet<String> =
        DECLARED_TEST_VALUES.iter().map(|(k, _)| (*k).to_owned()).collect();
    assert_eq!(declared, table, "each declared variable needs a test value here");
    for needed in [
        "WAGGLE_SERVICE_URL",
        "WAGGLE_PAIRING_CODE",
        "WAGGLE_SYNC_INTERVAL",
        "WAGGLE_CALLBACK__READ_ONLY",
        "WAGGLE_CALLBACK__APPS",
        "WAGGLE_CALLBACK__EXTRA_ALLOW",
        "WAGGLE_CALLBACK__DENY",
        "WAGGLE_CALLBACK__BODY_CAP_BYTES",
        "WAGGLE_PROXY__API_BODY_CAP_BYTES",
        "WAGGLE_PROXY__WS_MAX_MESSAGE_BYTES",
    ] {
        assert!(declared.contains(needed), "{needed} must be settable under AppAPI");
    }
    let base: std::collections::HashMap<String, String> = [
        ("APP_SECRET", "s"),
        ("NEXTCLOUD_URL", "http://nc.local/"),
        ("APP_PERSISTENT_STORAGE", "/tmp/waggle-manifest-test"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let loaded = |vars: &std::collections::HashMap<String, String>| {
        format!("{:?}", waggle::Settings::load_from(vars).unwrap_or_else(|e| panic!("{vars:?}: {e}")))
    };
    let before = loaded(&base);
    for (var, value) in DECLARED_TEST_VALUES {
        if *var == "RUST_LOG" {
            // Read by the log filter from the process environment, not by the settings.
            continue;
        }
        let mut vars = base.clone();
        vars.insert((*var).to_owned(), (*value).to_owned());
        // The tenant key comes as a pair.
        for (a, b) in
            [("WAGGLE_TENANT_KEY", "WAGGLE_TENANT_KEY_ID"), ("WAGGLE_TENANT_KEY_ID", "WAGGLE_TENANT_KEY")]
        {
            if *var == a {
                let other = DECLARED_TEST_VALUES.iter().find(|(k, _)| *k == b).unwrap().1;
                vars.insert(b.to_owned(), other.to_owned());
            }
        }
        assert_ne!(loaded(&vars), before, "{var} changes nothing Waggle loads");
    }
}

/// No `<default>` element (AppAPI would store it at install and replay it on every update, freezing
/// it); each description names the default that applies, and numbers and switches match
/// `config/defaults.toml`.
#[test]
fn declared_variables_name_their_defaults_without_freezing_them() {
    let defaults = config::Config::builder()
        .add_source(config::File::from_str(
            &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/defaults.toml")).unwrap(),
            config::FileFormat::Toml,
        ))
        .build()
        .unwrap();
    for (name, description, has_default) in declared_variables() {
        assert!(!has_default, "{name}: no <default> element");
        let Some(stated) = description.split("Default: ").nth(1) else {
            assert!(
                name == "WAGGLE_SERVICE_URL" && description.contains("no default"),
                "{name}: {description}"
            );
            continue;
        };
        let key = name.trim_start_matches("WAGGLE_").to_lowercase().replace("__", ".");
        if let Ok(value) = defaults.get_string(&key) {
            let plain = !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric());
            if plain {
                let first = stated.split([' ', '.']).next().unwrap();
                assert_eq!(first, value, "{name}: the description's default is not config/defaults.toml's");
            }
        }
    }
}

/// README.md's table says which setting is set where; its `--env` column must be the manifest's list.
#[test]
fn the_readme_table_of_where_settings_are_set_matches_the_manifest() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme.split("### Which setting is set where").nth(1).expect("the README has the table");
    let mut yes = std::collections::BTreeSet::new();
    let mut no = std::collections::BTreeSet::new();
    for row in section.lines().take_while(|l| !l.starts_with("## ")).filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split(" | ").collect();
        let names: Vec<String> = cells[0]
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|n| !n.contains('*') && !n.contains('.'))
            .map(str::to_owned)
            .collect();
        match cells[3].trim() {
            "yes" => yes.extend(names),
            "no" => no.extend(names),
            other => panic!("`--env` column must be yes or no: {other} in {row}"),
        }
    }
    let declared: std::collections::BTreeSet<String> =
        declared_variables().into_iter().map(|v| v.0).collect();
    assert_eq!(yes, declared, "README rows marked yes vs info.xml");
    assert!(no.is_disjoint(&declared), "declared but marked no: {:?}", no.intersection(&declared));
    assert!(no.contains("WAGGLE_SERVER__SHUTDOWN_GRACE_SECS") && no.contains("APP_SECRET"), "{no:?}");

    // Every variable Waggle reads has a row: by name, or through a `PREFIX*` pattern of the last row.
    let table = section.split("\n## ").next().unwrap();
    let patterns: Vec<&str> =
        table.split('`').skip(1).step_by(2).filter_map(|n| n.strip_suffix('*')).collect();
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/config.rs")).unwrap();
    for read in source.split('"').skip(1).step_by(2).filter(|s| {
        ["WAGGLE_", "APP_", "HP_", "AA_", "NEXTCLOUD_"].iter().any(|p| s.starts_with(p))
            && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            && !s.ends_with('_')
    }) {
        let named = yes.contains(read) || no.contains(read);
        let covered = patterns.iter().any(|p| read.starts_with(p));
        assert!(named || covered, "{read} is read by Waggle but missing from README's table");
    }
}
