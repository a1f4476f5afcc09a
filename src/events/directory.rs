//! Nextcloud's user directory as reconciliation reads it: OCS paging of groups and users (with
//! details) as an administrator, single-user lookups for the webhook fast path, and the pure parsers
//! of those answers (fuzzed: `fuzz/fuzz_targets/ocs_directory.rs`).
//!
//! Listing users with details needs an administrator: `WAGGLE_SYNC__ADMIN_UID`, else one found
//! through AppAPI's user list and the users' own records (`nextcloud::admins`: Nextcloud 31 refuses
//! system-context provisioning calls), remembered in the store ([`Directory::admin`]).

use std::collections::BTreeSet;

use http::Method;
use serde::Serialize;
use serde_json::{Value, json};

use crate::nextcloud::admins::{AdminError, Admins};
use crate::nextcloud::{NcClient, NcError, encode_segment};

/// Users or groups per OCS page.
pub(crate) const PAGE: usize = 500;

/// Why the directory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// A call to Nextcloud failed.
    #[error("cannot read users and groups from Nextcloud: {0}")]
    Nextcloud(#[source] NcError),
    /// An answer does not have the expected shape.
    #[error("{0}")]
    Shape(&'static str),
    /// No administrator to read as.
    #[error(transparent)]
    Admin(#[from] AdminError),
}

/// Nextcloud's directory, read through OCS.
#[derive(Debug, Clone)]
pub(crate) struct Directory {
    nc: NcClient,
    admins: Admins,
}

impl Directory {
    /// Reads through `nc`, as the administrator `admins` finds.
    pub(crate) fn new(nc: NcClient, admins: Admins) -> Self {
        Self { nc, admins }
    }

    /// The account reconciliation reads as: `WAGGLE_SYNC__ADMIN_UID` (checked), else an
    /// administrator found through AppAPI's user list (`nextcloud::admins`).
    pub(crate) async fn admin(&self) -> Result<String, DirectoryError> {
        Ok(self.admins.resolve().await?.uid)
    }

    /// One page of group ids, from `offset`.
    pub(crate) async fn groups(&self, admin: &str, offset: usize) -> Result<Vec<String>, DirectoryError> {
        let path = format!("/ocs/v1.php/cloud/groups?limit={PAGE}&offset={offset}");
        let data: Value =
            self.nc.ocs(Method::GET, &path, admin, None).await.map_err(DirectoryError::Nextcloud)?;
        parse_groups(&data)
    }

    /// One page of users with details, from `offset`.
    pub(crate) async fn users(&self, admin: &str, offset: usize) -> Result<Vec<UserRecord>, DirectoryError> {
        let path = format!("/ocs/v1.php/cloud/users/details?limit={PAGE}&offset={offset}");
        let data: Value =
            self.nc.ocs(Method::GET, &path, admin, None).await.map_err(DirectoryError::Nextcloud)?;
        parse_user_details(&data)
    }

    /// One user (as a page of at most one record), or `None` when Nextcloud no longer knows it.
    pub(crate) async fn user(
        &self,
        admin: &str,
        uid: &str,
    ) -> Result<Option<Vec<UserRecord>>, DirectoryError> {
        let path = format!("/ocs/v1.php/cloud/users/{}", encode_segment(uid));
        let data: Value = match self.nc.ocs(Method::GET, &path, admin, None).await {
            Ok(v) => v,
            Err(NcError::Ocs { statuscode: 404 | 998, .. } | NcError::Status { status: 404 }) => {
                return Ok(None);
            }
            Err(e) => return Err(DirectoryError::Nextcloud(e)),
        };
        parse_user_details(&json!({ "users": { uid: data } })).map(Some)
    }
}

/// One user as Nextcloud reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserRecord {
    /// User id.
    pub uid: String,
    /// Display name.
    pub display_name: String,
    /// Email, if set.
    pub email: Option<String>,
    /// Whether the account is enabled.
    pub enabled: bool,
    /// Group ids.
    pub groups: BTreeSet<String>,
}

/// Parses the `data` of `GET /ocs/v*/cloud/users/details` (`{"users": {uid: {…}}}`; an empty page
/// may be `[]`). Entries that are not objects (Nextcloud leaves failed lookups as `[]`) are skipped.
/// Pure; fuzzed.
pub fn parse_user_details(data: &Value) -> Result<Vec<UserRecord>, DirectoryError> {
    let users = match data.get("users") {
        Some(Value::Object(map)) => map,
        Some(Value::Array(a)) if a.is_empty() => return Ok(vec![]),
        _ => return Err(DirectoryError::Shape("the users/details answer has no `users` object")),
    };
    let mut out = Vec::with_capacity(users.len());
    for (key, u) in users {
        let Some(obj) = u.as_object() else { continue };
        let uid = obj.get("id").and_then(Value::as_str).unwrap_or(key).to_owned();
        if uid.is_empty() || uid.len() > 64 || uid.chars().any(char::is_control) {
            continue;
        }
        let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_owned);
        let enabled = crate::nextcloud::ocs_bool(obj.get("enabled"));
        let groups = obj
            .get("groups")
            .and_then(Value::as_array)
            .map(|g| g.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        out.push(UserRecord {
            display_name: text("displayname").or_else(|| text("display-name")).unwrap_or_else(|| uid.clone()),
            email: text("email").filter(|e| !e.is_empty()),
            uid,
            enabled,
            groups,
        });
    }
    Ok(out)
}

/// Parses the `data` of `GET /ocs/v*/cloud/groups` (`{"groups": [gid, …]}`). Pure; fuzzed.
pub fn parse_groups(data: &Value) -> Result<Vec<String>, DirectoryError> {
    let groups = data
        .get("groups")
        .and_then(Value::as_array)
        .ok_or(DirectoryError::Shape("the groups answer has no `groups` list"))?;
    Ok(groups
        .iter()
        .filter_map(Value::as_str)
        .filter(|g| !g.is_empty() && g.len() <= 256)
        .map(str::to_owned)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_details_are_parsed_leniently_but_safely() {
        let data = json!({"users": {
            "alice": {"id": "alice", "displayname": "Alice", "email": "a@x", "enabled": true, "groups": ["staff", "admin"]},
            "bob": {"id": "bob", "displayname": "Bob", "email": "", "enabled": "0", "groups": []},
            "ghost": [],
            "evil\n": {"id": "evil\n"}
        }});
        let users = parse_user_details(&data).unwrap();
        assert_eq!(users.len(), 2);
        let alice = users.iter().find(|u| u.uid == "alice").unwrap();
        assert_eq!(
            (alice.display_name.as_str(), alice.email.as_deref(), alice.enabled),
            ("Alice", Some("a@x"), true)
        );
        assert_eq!(alice.groups.iter().map(String::as_str).collect::<Vec<_>>(), ["admin", "staff"]);
        let bob = users.iter().find(|u| u.uid == "bob").unwrap();
        assert_eq!((bob.email.as_deref(), bob.enabled), (None, false));
        assert_eq!(parse_user_details(&json!({"users": []})).unwrap(), vec![]);
        assert!(parse_user_details(&json!({"nope": 1})).is_err());
        assert_eq!(parse_groups(&json!({"groups": ["a", "", 3, "b"]})).unwrap(), ["a", "b"]);
    }
}
