//! Nextcloud's instance id: the value that names this Nextcloud on every signed request to the SaaS
//! (`X-Waggle-Instance`), in bootstrap bodies and in event ids. A fact about Nextcloud, so the
//! Nextcloud side owns it; the SaaS client, provisioning and reconciliation receive this value.
//!
//! Resolved once (during `/init`, or at start for an install that has none stored), kept in the
//! store, and read from memory afterwards, so no user request ever waits on Nextcloud for it.
//!
//! Where it comes from: Nextcloud names its PHP session cookie after the instance id (`instanceid` in
//! `config.php`, `oc` followed by ten lowercase letters and digits), and sets that cookie on the login
//! page's answer to anyone. Nextcloud 31's capabilities carry no instance id, anonymously or as an
//! admin; the `theming`/`core` entries are still read as a fallback for servers that publish one.

use std::sync::{Arc, RwLock};

use http::header::{HeaderMap, HeaderValue, SET_COOKIE};

use super::{NcClient, NcError};
use crate::error::ApiError;
use crate::store::{Store, StoreError, facts};

/// Why the instance id could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    /// Nextcloud could not be asked, or revealed none.
    #[error("cannot read Nextcloud's instance id: {0}")]
    Lookup(#[source] NcError),
    /// What Nextcloud revealed cannot be sent as a header.
    #[error("Nextcloud's instance id is not a valid header value")]
    NotAHeader,
    /// It could not be kept.
    #[error("cannot store Nextcloud's instance id: {0}")]
    Store(#[source] StoreError),
}

impl From<InstanceError> for ApiError {
    fn from(e: InstanceError) -> Self {
        match e {
            InstanceError::Lookup(e) => e.into(),
            InstanceError::NotAHeader => NcError::Decode(e.to_string()).into(),
            InstanceError::Store(e) => e.into(),
        }
    }
}

/// The instance id (cheap to clone; clones share the value).
#[derive(Debug, Clone)]
pub(crate) struct InstanceId {
    known: Arc<Known>,
    nc: NcClient,
    store: Store,
}

impl InstanceId {
    /// The id kept in `store` before a restart (if any, and usable); `nc` is asked when resolving.
    pub(crate) fn load(nc: NcClient, store: Store) -> Result<Self, StoreError> {
        let known = Known::default();
        if let Some(id) = store.fact_now(facts::INSTANCE_ID)?
            && !known.set(&id)
        {
            tracing::warn!("the stored instance id is not usable; it is looked up again");
        }
        Ok(Self { known: Arc::new(known), nc, store })
    }

    /// The id as the `X-Waggle-Instance` value, if resolved. Never a network call.
    pub(crate) fn header(&self) -> Option<HeaderValue> {
        self.known.header()
    }

    /// The id as text, if resolved. Never a network call.
    pub(crate) fn get(&self) -> Option<String> {
        self.known.get()
    }

    /// Looks the id up, keeps it in memory and in the store. A changed id (Nextcloud reinstalled
    /// under the same URL) replaces the stored one, with a warning.
    pub(crate) async fn resolve(&self) -> Result<String, InstanceError> {
        let id = self.nc.discover_instance_id().await.map_err(InstanceError::Lookup)?;
        if let Some(old) = self.known.get()
            && old != id
        {
            tracing::warn!(old = %old, new = %id, "Nextcloud's instance id changed");
        }
        if !self.known.set(&id) {
            return Err(InstanceError::NotAHeader);
        }
        self.store.set_fact(facts::INSTANCE_ID, Some(id.clone())).await.map_err(InstanceError::Store)?;
        Ok(id)
    }

    /// The id if known, else a lookup now: for work that talks to Nextcloud anyway (reconciliation,
    /// the tenant-key bootstrap), never for user requests.
    pub(crate) async fn known_or_resolve(&self) -> Result<String, InstanceError> {
        match self.known.get() {
            Some(id) => Ok(id),
            None => self.resolve().await,
        }
    }
}

/// The session-cookie name that is Nextcloud's instance id, from a response's `Set-Cookie` lines:
/// `oc` followed by 1–62 lowercase ASCII letters or digits (so `oc_sessionPassphrase`,
/// `nc_session_id` and the `__Host-`/`nc_sameSite…` cookies never match). `None` when there is no
/// such cookie, or two different ones. Pure; fuzzed (`nc_identity`).
pub fn from_set_cookies(headers: &HeaderMap) -> Option<String> {
    let mut found: Option<&str> = None;
    for value in headers.get_all(SET_COOKIE) {
        let Ok(line) = value.to_str() else { continue };
        let Some((name, _)) = line.split(';').next().and_then(|pair| pair.split_once('=')) else { continue };
        let name = name.trim();
        if !is_instance_id(name) {
            continue;
        }
        match found {
            Some(other) if other != name => return None,
            _ => found = Some(name),
        }
    }
    found.map(str::to_owned)
}

/// Whether `s` has the shape of a Nextcloud instance id (`oc` + 1–62 of `[a-z0-9]`).
pub fn is_instance_id(s: &str) -> bool {
    s.len() > 2
        && s.len() <= 64
        && s.starts_with("oc")
        && s.bytes().skip(2).all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// The resolved id, as the header value every signed request carries.
#[derive(Debug, Default)]
struct Known(RwLock<Option<HeaderValue>>);

impl Known {
    /// The id, if resolved.
    fn header(&self) -> Option<HeaderValue> {
        self.0.read().expect("instance id lock").clone()
    }

    /// The id as text, if resolved.
    fn get(&self) -> Option<String> {
        self.header().and_then(|h| h.to_str().ok().map(str::to_owned))
    }

    /// Sets the id (from the store at start, or after a lookup). Refuses values that are not a
    /// visible-ASCII header value.
    fn set(&self, id: &str) -> bool {
        match HeaderValue::from_str(id) {
            Ok(v) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_graphic()) => {
                *self.0.write().expect("instance id lock") = Some(v);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookies(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(SET_COOKIE, HeaderValue::from_str(l).unwrap());
        }
        h
    }

    #[test]
    fn the_session_cookie_named_after_the_instance_is_found() {
        // What Nextcloud 31.0.6 sets on GET /index.php/login (values shortened).
        let h = cookies(&[
            "oc_sessionPassphrase=uwIKws%2BTk; path=/; HttpOnly; SameSite=Lax",
            "nc_sameSiteCookielax=true; path=/; httponly;expires=Fri, 31-Dec-2100 23:59:59 GMT; SameSite=lax",
            "nc_sameSiteCookiestrict=true; path=/; httponly;expires=Fri, 31-Dec-2100 23:59:59 GMT; SameSite=strict",
            "occa0ttp0em3=6h67ph6qcoa415jqf7ip7gs03g; path=/; HttpOnly; SameSite=Lax",
        ]);
        assert_eq!(from_set_cookies(&h).as_deref(), Some("occa0ttp0em3"));
    }

    #[test]
    fn no_cookie_or_two_different_ones_give_nothing() {
        assert_eq!(from_set_cookies(&cookies(&["oc_sessionPassphrase=x; path=/"])), None);
        assert_eq!(from_set_cookies(&cookies(&["ocabc=1", "ocdef=2"])), None);
        assert_eq!(from_set_cookies(&cookies(&["ocabc=1", "ocabc=2"])).as_deref(), Some("ocabc"));
        for bad in ["oc", "OCabc", "oc-abc", "ocABC", "xoc123", "nc_session_id"] {
            assert!(!is_instance_id(bad), "{bad}");
        }
    }

    #[test]
    fn only_header_safe_ids_are_kept() {
        let id = Known::default();
        assert_eq!(id.get(), None);
        assert!(!id.set("with space"));
        assert!(!id.set(""));
        assert!(id.set("occa0ttp0em3"));
        assert_eq!(id.get().as_deref(), Some("occa0ttp0em3"));
    }
}
