//! Finding an administrator to act as, without one being configured.
//!
//! Nextcloud 31's provisioning API refuses system-context calls (HTTP 401, OCS 997 "Current user is
//! not logged in"), so the `admin` group cannot be listed as the app. What works as the system is
//! AppAPI's own user list (`GET /ocs/v1.php/apps/app_api/api/v1/users`, every uid); and any user may
//! read their own record (`GET /ocs/v2.php/cloud/user`) when impersonated, which lists their groups.
//! So: candidates in a stable order (the last admin found, then `admin`, then every uid sorted), each
//! read as itself until an enabled member of `admin` turns up. The one found is remembered in the
//! store, so later runs cost one lookup. `WAGGLE_SYNC__ADMIN_UID` overrides all of this.

use http::Method;
use serde_json::Value;

use super::{NcClient, NcError};
use crate::store::{Store, facts};

/// Most candidates read before giving up (a large instance whose admins have late-sorting uids
/// should set `WAGGLE_SYNC__ADMIN_UID`).
pub(crate) const MAX_PROBES: usize = 1000;

/// A user's own record, as `cloud/user` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// User id.
    pub uid: String,
    /// Display name.
    pub display_name: String,
    /// E-mail, if set.
    pub email: Option<String>,
    /// Whether the account is enabled.
    pub enabled: bool,
    /// Whether the user is a member of `admin`.
    pub admin: bool,
}

/// Why no administrator could be found.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Nextcloud could not be asked.
    #[error("cannot find an administrator: {0}")]
    Nextcloud(#[from] NcError),
    /// Nobody among the candidates is an enabled admin.
    #[error("no enabled member of the admin group among the first {0} users; set WAGGLE_SYNC__ADMIN_UID")]
    NoneFound(usize),
    /// The configured `WAGGLE_SYNC__ADMIN_UID` is not an enabled admin.
    #[error("WAGGLE_SYNC__ADMIN_UID names {0}, who is not an enabled administrator")]
    NotAdmin(String),
}

/// Parses the `data` of `cloud/user` (`id`, `displayname`, `email`, `enabled`, `groups`). Pure; fuzzed
/// (`nc_identity`).
pub fn parse_account(data: &Value) -> Result<Account, NcError> {
    let uid = data
        .get("id")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| NcError::Decode("the user record has no id".to_owned()))?;
    let text = |k: &str| data.get(k).and_then(Value::as_str).filter(|v| !v.is_empty()).map(str::to_owned);
    let enabled = super::ocs_bool(data.get("enabled"));
    let admin = data
        .get("groups")
        .and_then(Value::as_array)
        .is_some_and(|g| g.iter().any(|g| g.as_str() == Some("admin")));
    Ok(Account {
        display_name: text("displayname").or_else(|| text("display-name")).unwrap_or_else(|| uid.to_owned()),
        email: text("email"),
        uid: uid.to_owned(),
        enabled,
        admin,
    })
}

/// Parses AppAPI's user list (`data` is an array of uids). Pure; fuzzed (`nc_identity`).
pub fn parse_user_ids(data: &Value) -> Result<Vec<String>, NcError> {
    let list =
        data.as_array().ok_or_else(|| NcError::Decode("AppAPI's user list is not a list".to_owned()))?;
    Ok(list
        .iter()
        .filter_map(Value::as_str)
        .filter(|u| !u.is_empty() && u.len() <= 64 && !u.chars().any(char::is_control))
        .map(str::to_owned)
        .collect())
}

/// The order candidates are tried in: `hint` (the admin found last time), `admin`, then the rest
/// sorted; only uids Nextcloud listed; no repeats. Pure.
pub fn candidates(mut uids: Vec<String>, hint: Option<&str>) -> Vec<String> {
    uids.sort();
    uids.dedup();
    let mut first = vec![];
    for preferred in [hint, Some("admin")].into_iter().flatten() {
        if let Ok(i) = uids.binary_search_by(|u| u.as_str().cmp(preferred))
            && !first.contains(&uids[i])
        {
            first.push(uids[i].clone());
        }
    }
    uids.retain(|u| !first.contains(u));
    first.extend(uids);
    first
}

impl NcClient {
    /// Every uid, from AppAPI's own list (works in system context).
    pub(crate) async fn user_ids(&self) -> Result<Vec<String>, NcError> {
        let data: Value = self.ocs(Method::GET, "/ocs/v1.php/apps/app_api/api/v1/users", "", None).await?;
        parse_user_ids(&data)
    }

    /// The user's own record, read as that user.
    pub(crate) async fn own_account(&self, uid: &str) -> Result<Account, NcError> {
        let data: Value = self.ocs(Method::GET, "/ocs/v2.php/cloud/user", uid, None).await?;
        parse_account(&data)
    }
}

/// The administrator Waggle acts as (reconciliation reads the directory as them; the bootstrap names
/// them as the primary contact): `WAGGLE_SYNC__ADMIN_UID`, else found through [`resolve`] and
/// remembered in the store (cheap to clone).
#[derive(Debug, Clone)]
pub(crate) struct Admins {
    nc: NcClient,
    store: Store,
    configured: Option<String>,
}

impl Admins {
    /// Finds admins through `nc`, remembering them in `store`; `configured` overrides.
    pub(crate) fn new(nc: NcClient, store: Store, configured: Option<String>) -> Self {
        Self { nc, store, configured }
    }

    /// The administrator to act as (see [`resolve`]).
    pub(crate) async fn resolve(&self) -> Result<Account, AdminError> {
        resolve(&self.nc, &self.store, self.configured.as_deref()).await
    }
}

/// The administrator to act as: the configured one (checked), else the one found last time (still
/// an enabled admin), else the first enabled admin among the candidates, remembered for next time.
pub(crate) async fn resolve(
    nc: &NcClient,
    store: &Store,
    configured: Option<&str>,
) -> Result<Account, AdminError> {
    if let Some(uid) = configured {
        let account = nc.own_account(uid).await?;
        return if account.admin && account.enabled {
            Ok(account)
        } else {
            Err(AdminError::NotAdmin(uid.to_owned()))
        };
    }
    let hint = store.fact(facts::ADMIN_UID).await.unwrap_or_else(|e| {
        tracing::warn!(error = %format!("{e:#}"), "cannot read the remembered administrator");
        None
    });
    if let Some(uid) = hint.as_deref()
        && let Ok(account) = nc.own_account(uid).await
        && account.admin
        && account.enabled
    {
        return Ok(account);
    }
    let ids = nc.user_ids().await?;
    for uid in candidates(ids, hint.as_deref()).iter().take(MAX_PROBES) {
        if hint.as_deref() == Some(uid.as_str()) {
            continue; // just checked
        }
        match nc.own_account(uid).await {
            Ok(account) if account.admin && account.enabled => {
                tracing::info!(nc.user = %account.uid, "found an administrator to act as");
                if let Err(e) = store.set_fact(facts::ADMIN_UID, Some(account.uid.clone())).await {
                    tracing::warn!(error = %format!("{e:#}"), "cannot remember the administrator");
                }
                return Ok(account);
            }
            Ok(_) => {}
            // Unknown (deleted meanwhile) or not impersonable (disabled): next.
            Err(
                NcError::Ocs { statuscode: 997 | 998 | 404, .. }
                | NcError::Status { status: 401 | 403 | 404 },
            ) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(AdminError::NoneFound(MAX_PROBES))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn candidates_put_the_hint_and_admin_first_then_the_rest_sorted() {
        let uids = vec!["zed".into(), "admin".into(), "bob".into(), "alice".into(), "bob".into()];
        assert_eq!(candidates(uids.clone(), Some("zed")), ["zed", "admin", "alice", "bob"]);
        assert_eq!(candidates(uids.clone(), None), ["admin", "alice", "bob", "zed"]);
        // A hint Nextcloud no longer lists is not tried.
        assert_eq!(candidates(uids, Some("gone")), ["admin", "alice", "bob", "zed"]);
    }

    #[test]
    fn own_records_and_user_lists_are_parsed() {
        // As Nextcloud 31.0.6 answers GET cloud/user for the installing admin.
        let a = parse_account(
            &json!({"id":"admin","groups":["admin"],"email":null,"enabled":true,"displayname":"admin"}),
        )
        .unwrap();
        assert_eq!((a.uid.as_str(), a.admin, a.enabled, a.email), ("admin", true, true, None));
        let b = parse_account(&json!({"id":"bob","groups":["staff"],"email":"b@x","enabled":"0"})).unwrap();
        assert_eq!((b.admin, b.enabled, b.display_name.as_str()), (false, false, "bob"));
        assert!(parse_account(&json!({"groups":["admin"]})).is_err());
        assert_eq!(parse_user_ids(&json!(["admin", "", "alice", 3])).unwrap(), ["admin", "alice"]);
        assert!(parse_user_ids(&json!({"users": []})).is_err());
    }
}
