//! The fake Nextcloud: AppAPI's status endpoint, the capabilities (instance id), user lookups, the
//! admin group, a mutable user/group directory served paged over OCS, and webhook_listeners.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::{Fake, Recorded, ocs_fail, ocs_ok};
use crate::harness::{SECRET, appapi_token};

/// Where AppAPI's ExApp status (init progress) is reported.
pub(crate) const STATUS: &str = "/ocs/v1.php/apps/app_api/ex-app/status";
/// The webhook_listeners OCS API.
pub(crate) const WEBHOOKS: &str = "/ocs/v2.php/apps/webhook_listeners/api/v1/webhooks";
/// The instance id the capabilities report.
pub(crate) const INSTANCE_ID: &str = "octestinstance";

/// A fake Nextcloud with the AppAPI status endpoint and user lookups scripted.
pub(crate) async fn nextcloud() -> Fake {
    let nc = Fake::start().await;
    nc.on(
        Method::GET,
        "/ocs/v2.php/cloud/capabilities",
        StatusCode::OK,
        ocs_ok(&json!({"version": {"major": 31}, "capabilities": {"theming": {"instanceid": INSTANCE_ID}}})),
    );
    nc.on(Method::PUT, STATUS, StatusCode::OK, ocs_ok(&json!([])));
    nc.on(
        Method::GET,
        "/ocs/v2.php/cloud/users/admin",
        StatusCode::OK,
        ocs_ok(&json!({"id":"admin","groups":["admin"]})),
    );
    nc.on(
        Method::GET,
        "/ocs/v2.php/cloud/users/alice",
        StatusCode::OK,
        ocs_ok(&json!({"id":"alice","groups":["staff"]})),
    );
    nc
}

/// A fake Nextcloud whose `admin` group holds `root` (no email) and `admin` (with an email).
pub(crate) async fn with_admins() -> Fake {
    let nc = nextcloud().await;
    nc.on(
        Method::GET,
        "/ocs/v2.php/cloud/groups/admin/users",
        StatusCode::OK,
        ocs_ok(&json!({"users": ["root", "admin"]})),
    );
    nc.on(
        Method::GET,
        "/ocs/v2.php/cloud/users/admin",
        StatusCode::OK,
        ocs_ok(&json!({"id": "admin", "email": "admin@example.com", "displayname": "The Admin", "groups": ["admin"]})),
    );
    nc.on(
        Method::GET,
        "/ocs/v2.php/cloud/users/root",
        StatusCode::OK,
        ocs_ok(&json!({"id": "root", "email": "", "groups": ["admin"]})),
    );
    nc
}

/// The init progress reports (and error reports) in `log`, as JSON bodies.
pub(crate) fn progress(log: &[Recorded]) -> Vec<Value> {
    log.iter().filter(|r| r.path() == STATUS).map(Recorded::json).collect()
}

/// One user: display name, email, enabled, groups.
pub(crate) type UserRow = (String, String, bool, Vec<String>);

/// Nextcloud's users and groups, as the tests change them.
#[derive(Clone, Default)]
pub(crate) struct Directory {
    pub(crate) users: BTreeMap<String, UserRow>,
    pub(crate) groups: BTreeSet<String>,
}

/// A shared, mutable directory.
pub(crate) type SharedDirectory = Arc<Mutex<Directory>>;

impl Directory {
    /// Adds or replaces a user.
    pub(crate) fn user(
        dir: &SharedDirectory,
        uid: &str,
        name: &str,
        email: &str,
        enabled: bool,
        groups: &[&str],
    ) {
        dir.lock().unwrap().users.insert(
            uid.into(),
            (name.into(), email.into(), enabled, groups.iter().map(|g| (*g).to_owned()).collect()),
        );
    }
}

fn query(uri: &str, key: &str) -> usize {
    uri.split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A fake Nextcloud serving an (initially empty) directory; see [`serve_directory`].
pub(crate) async fn with_directory() -> (Fake, SharedDirectory) {
    let nc = nextcloud().await;
    let dir = SharedDirectory::default();
    serve_directory(&nc, dir.clone());
    (nc, dir)
}

/// Serves `cloud/users/details` and `cloud/groups` from `dir`, paged, only to the admin.
pub(crate) fn serve_directory(nc: &Fake, dir: SharedDirectory) {
    let d = dir.clone();
    nc.on_async(Method::GET, "/ocs/v1.php/cloud/users/details", None, move |r: Recorded| {
        let dir = d.lock().unwrap().clone();
        async move {
            assert_eq!(r.header("authorization-app-api"), Some(appapi_token("admin", SECRET).as_str()), "read as the admin");
            let (limit, offset) = (query(&r.uri, "limit"), query(&r.uri, "offset"));
            let users: serde_json::Map<String, Value> = dir
                .users
                .iter()
                .skip(offset)
                .take(limit)
                .map(|(uid, (name, email, enabled, groups))| {
                    (uid.clone(), json!({"id": uid, "displayname": name, "email": email, "enabled": enabled, "groups": groups}))
                })
                .collect();
            (StatusCode::OK, axum::Json(ocs_ok(&json!({ "users": users })))).into_response()
        }
    });
    nc.on_async(Method::GET, "/ocs/v1.php/cloud/groups", None, move |r: Recorded| {
        let dir = dir.lock().unwrap().clone();
        async move {
            let (limit, offset) = (query(&r.uri, "limit"), query(&r.uri, "offset"));
            let groups: Vec<&String> = dir.groups.iter().skip(offset).take(limit).collect();
            (StatusCode::OK, axum::Json(ocs_ok(&json!({ "groups": groups })))).into_response()
        }
    });
}

/// Serves the single-user lookup `cloud/users/<uid>` (v1) from `dir`.
pub(crate) fn serve_user(nc: &Fake, dir: SharedDirectory, uid: &'static str) {
    nc.on_async(Method::GET, &format!("/ocs/v1.php/cloud/users/{uid}"), None, move |_| {
        let (name, email, enabled, groups) = dir.lock().unwrap().users[uid].clone();
        async move {
            let data =
                json!({"id": uid, "displayname": name, "email": email, "enabled": enabled, "groups": groups});
            (StatusCode::OK, axum::Json(ocs_ok(&data))).into_response()
        }
    });
}

/// webhook_listeners where only the `accepted` event class is webhook-compatible: registrations of
/// other classes answer 400, as Nextcloud 31 does for user/group events. Rows can be listed and
/// row 1 deleted.
pub(crate) fn serve_webhook_listeners(nc: &Fake, accepted: &'static str) {
    let rows: Arc<Mutex<Vec<Value>>> = Arc::default();
    let r = rows.clone();
    nc.on_async(Method::GET, WEBHOOKS, None, move |_| {
        let list = r.lock().unwrap().clone();
        async move { (StatusCode::OK, axum::Json(ocs_ok(&json!(list)))).into_response() }
    });
    nc.on_async(Method::POST, WEBHOOKS, None, move |req: Recorded| {
        let body = req.json();
        let is_accepted = body["event"] == accepted;
        if is_accepted {
            let mut rows = rows.lock().unwrap();
            let id = rows.len() + 1;
            rows.push(json!({"id": id, "event": body["event"], "uri": body["uri"]}));
        }
        async move {
            if is_accepted {
                (StatusCode::OK, axum::Json(ocs_ok(&json!({"id": 1, "event": accepted})))).into_response()
            } else {
                ocs_fail(400, "not an event class compatible with webhooks")
            }
        }
    });
    nc.on(Method::DELETE, &format!("{WEBHOOKS}/1"), StatusCode::OK, ocs_ok(&json!(true)));
}
