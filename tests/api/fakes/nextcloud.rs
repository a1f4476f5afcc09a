//! The fake Nextcloud 31: what the real one answers before any route (the guard), the login page whose
//! session cookie is named after the instance id, anonymous capabilities without an instance id,
//! AppAPI's status endpoint and user list, own-record and user lookups, a mutable user/group
//! directory served paged over OCS, and webhook_listeners (refusing user and group events).
//!
//! Faithful to Nextcloud 31.0.6 + AppAPI 5.0.2 as `tests/real_nextcloud` observes it: a behaviour the
//! real suite shows and this fake contradicts is a bug in the fake.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Fake, Recorded, ocs_fail, ocs_ok};
use crate::harness::{SECRET, appapi_token};

/// Where AppAPI's ExApp status (init progress) is reported.
pub(crate) const STATUS: &str = "/ocs/v1.php/apps/app_api/ex-app/status";
/// AppAPI's list of every uid (answered in system context).
pub(crate) const USERS: &str = "/ocs/v1.php/apps/app_api/api/v1/users";
/// The acting user's own record.
pub(crate) const OWN_RECORD: &str = "/ocs/v2.php/cloud/user";
/// The webhook_listeners OCS API.
pub(crate) const WEBHOOKS: &str = "/ocs/v2.php/apps/webhook_listeners/api/v1/webhooks";
/// The instance id: the name of the session cookie the login page sets.
pub(crate) const INSTANCE_ID: &str = "octestinstance";

/// The uid a request acts as (`AUTHORIZATION-APP-API = base64(uid:secret)`); `None` without the header.
pub(crate) fn acting_user(r: &Recorded) -> Option<String> {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD.decode(r.header("authorization-app-api")?).ok()?;
    let text = String::from_utf8(raw).ok()?;
    text.split_once(':').map(|(uid, _)| uid.to_owned())
}

/// An OCS failure envelope with its own HTTP status, as Nextcloud 31 sends it.
pub(crate) fn ocs_failure(status: StatusCode, statuscode: u16, message: &str) -> Response {
    let body = json!({ "ocs": { "meta": { "status": "failure", "statuscode": statuscode, "message": message }, "data": [] } });
    (status, axum::Json(body)).into_response()
}

/// What Nextcloud 31.0.6 answers before any route (`../shared/reference/appapi.md` §5, and the real
/// suite): an OCS call without `OCS-APIRequest` is 412; an AppAPI call without `EX-APP-VERSION` is
/// 401/997; the provisioning API (`cloud/user`, `cloud/users…`, `cloud/groups…`) refuses the system
/// context (empty uid) with HTTP 401 and OCS 997 "Current user is not logged in".
fn guard(r: &Recorded) -> Option<Response> {
    let path = r.path();
    let ocs = path.starts_with("/ocs/v1.php/") || path.starts_with("/ocs/v2.php/");
    if ocs && !r.header("ocs-apirequest").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        let body = axum::Json(json!({"message": "CSRF check failed"}));
        return Some((StatusCode::PRECONDITION_FAILED, body).into_response());
    }
    let user = acting_user(r);
    if user.is_some() && r.header("ex-app-version").is_none_or(str::is_empty) {
        return Some(ocs_failure(StatusCode::UNAUTHORIZED, 997, "Current user is not logged in"));
    }
    let provisioning = ["/ocs/v1.php/cloud/", "/ocs/v2.php/cloud/"].iter().any(|p| {
        path.strip_prefix(p).is_some_and(|rest| rest.starts_with("user") || rest.starts_with("groups"))
    });
    if provisioning && user.as_deref().unwrap_or("").is_empty() {
        return Some(ocs_failure(StatusCode::UNAUTHORIZED, 997, "Current user is not logged in"));
    }
    None
}

/// A fake Nextcloud 31 (see the module docs); `admin` is in `admin`, `alice` in `staff`.
pub(crate) async fn nextcloud() -> Fake {
    let nc = Fake::start_guarded(guard).await;
    nc.on_async(Method::GET, "/index.php/login", None, |_| async {
        let mut r = (StatusCode::OK, "<html><head data-requesttoken=\"t\"></head></html>").into_response();
        for cookie in [
            "oc_sessionPassphrase=p4ss; path=/; HttpOnly; SameSite=Lax".to_owned(),
            "nc_sameSiteCookielax=true; path=/; httponly;expires=Fri, 31-Dec-2100 23:59:59 GMT; SameSite=lax"
                .to_owned(),
            format!("{INSTANCE_ID}=s3ss10n; path=/; HttpOnly; SameSite=Lax"),
        ] {
            r.headers_mut().append(axum::http::header::SET_COOKIE, cookie.parse().unwrap());
        }
        r
    });
    nc.on(
        Method::GET,
        "/ocs/v2.php/cloud/capabilities",
        StatusCode::OK,
        ocs_ok(&json!({"version": {"major": 31}, "capabilities": {"app_api": {"version": "5.0.2"}}})),
    );
    nc.on(Method::PUT, STATUS, StatusCode::OK, ocs_ok(&json!([])));
    nc.on(Method::GET, USERS, StatusCode::OK, ocs_ok(&json!(["admin", "alice"])));
    nc.on_async(Method::GET, OWN_RECORD, None, |r: Recorded| async move {
        let record = match acting_user(&r).as_deref() {
            Some("admin") => json!({"id":"admin","displayname":"admin","email":null,"enabled":true,"groups":["admin"]}),
            Some("alice") => {
                json!({"id":"alice","displayname":"Alice","email":"alice@example.com","enabled":true,"groups":["staff"]})
            }
            _ => return ocs_failure(StatusCode::UNAUTHORIZED, 997, "Current user is not logged in"),
        };
        (StatusCode::OK, axum::Json(ocs_ok(&record))).into_response()
    });
    // webhook_listeners 1.2.0: no listener yet; user and group events are refused with 400 (none
    // implements IWebhookCompatibleEvent on Nextcloud 31), file events are accepted.
    nc.on(Method::GET, WEBHOOKS, StatusCode::OK, ocs_ok(&json!([])));
    nc.on_async(Method::POST, WEBHOOKS, None, |r: Recorded| async move {
        let event = r.json()["event"].as_str().unwrap_or("").trim_start_matches('\\').to_owned();
        if event.starts_with("OCP\\User\\Events\\") || event.starts_with("OCP\\Group\\Events\\") {
            let message = format!("{event} is not an event class compatible with webhooks");
            return ocs_failure(StatusCode::BAD_REQUEST, 400, &message);
        }
        let row =
            json!({"id": 1, "appId": "waggle", "httpMethod": "POST", "uri": r.json()["uri"], "event": event});
        (StatusCode::OK, axum::Json(ocs_ok(&row))).into_response()
    });
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

/// A fake Nextcloud whose administrator is not called `admin`: AppAPI's user list holds `zed`, `ada`
/// and `root`, and only `root` (with an email) is in `admin`. The provisioning API refuses the system
/// context, so the admin can only be found through each user's own record.
pub(crate) async fn with_admins() -> Fake {
    let nc = nextcloud().await;
    nc.on(Method::GET, USERS, StatusCode::OK, ocs_ok(&json!(["zed", "ada", "root"])));
    nc.on_async(Method::GET, OWN_RECORD, None, |r: Recorded| async move {
        let me = acting_user(&r).unwrap_or_default();
        let groups = if me == "root" { json!(["admin"]) } else { json!(["staff"]) };
        let email = format!("{me}@example.com");
        let record =
            json!({"id": me, "email": email, "displayname": "The Admin", "enabled": true, "groups": groups});
        (StatusCode::OK, axum::Json(ocs_ok(&record))).into_response()
    });
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

/// webhook_listeners on a server newer than Nextcloud 31, where the `accepted` event class is
/// webhook-compatible: registrations of other classes answer 400, as Nextcloud 31 answers for every
/// user/group event. Rows can be listed and row 1 deleted.
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
