//! The webhook fast path's registration with Nextcloud's webhook_listeners. Nextcloud 31 refuses
//! user/group events as webhook_listeners events, so reconciliation stays the source of truth; where
//! a server accepts a class (probed one by one at enable; a 400 means "not on this version"), its
//! deliveries (`events::ingest`) are a latency hint that triggers a targeted reconcile.
//!
//! Registered as the app (system context) with a relative uri, so AppAPI delivers to
//! `/hooks/nextcloud` directly (3 s timeout, no Content-Type). The per-install secret travels as
//! `authData`. Unregistered at disable.

use std::sync::Arc;

use http::Method;
use serde_json::{Value, json};

use super::ingest::HOOK_URI;
use crate::metrics::Metrics;
use crate::nextcloud::{NcClient, NcError, encode_segment};

const API: &str = "/ocs/v2.php/apps/webhook_listeners/api/v1/webhooks";

/// Event classes probed at enable. User/group classes are refused on Nextcloud 31 (400), accepted
/// where a newer server makes them webhook-compatible.
pub(crate) const CANDIDATE_EVENTS: [&str; 8] = [
    "OCP\\User\\Events\\UserFirstTimeLoggedInEvent",
    "OCP\\User\\Events\\UserCreatedEvent",
    "OCP\\User\\Events\\UserChangedEvent",
    "OCP\\User\\Events\\UserDeletedEvent",
    "OCP\\Group\\Events\\UserAddedEvent",
    "OCP\\Group\\Events\\UserRemovedEvent",
    "OCP\\Group\\Events\\GroupCreatedEvent",
    "OCP\\Group\\Events\\GroupDeletedEvent",
];

/// Why registering or removing listeners failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ListenerError {
    /// Listing the registered listeners failed.
    #[error("cannot list webhook listeners: {0}")]
    List(#[source] NcError),
    /// Registering one class failed (other than "not on this version").
    #[error("cannot register the webhook listener for {class}: {source}")]
    Register {
        /// The event class.
        class: &'static str,
        /// Nextcloud's failure.
        #[source]
        source: NcError,
    },
    /// Removing one row failed.
    #[error("cannot remove webhook listener {id}: {source}")]
    Remove {
        /// The row id.
        id: i64,
        /// Nextcloud's failure.
        #[source]
        source: NcError,
    },
}

/// Registration and removal of Waggle's listener rows.
#[derive(Debug)]
pub(crate) struct WebhookListeners {
    nc: NcClient,
    /// The per-install secret sent as `authData`.
    secret: String,
    metrics: Arc<Metrics>,
}

impl WebhookListeners {
    /// Over `nc`, registering with `secret` (see `ingest::hook_secret`).
    pub(crate) fn new(nc: NcClient, secret: String, metrics: Arc<Metrics>) -> Self {
        Self { nc, secret, metrics }
    }

    /// Our rows (`None`: webhook_listeners is not enabled).
    async fn rows(&self) -> Result<Option<Value>, ListenerError> {
        let path = format!("{API}?uri={}", encode_segment(HOOK_URI));
        match self.nc.ocs(Method::GET, &path, "", None).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(ListenerError::List(e)),
        }
    }

    /// Registers the accepted classes (idempotent: classes already registered for our uri are
    /// kept). Returns the classes registered now or before.
    pub(crate) async fn register(&self) -> Result<Vec<String>, ListenerError> {
        let Some(existing) = self.rows().await? else {
            tracing::info!("webhook_listeners is not enabled; reconciliation alone keeps users in sync");
            return Ok(vec![]);
        };
        let known: Vec<String> = existing
            .as_array()
            .map(|rows| {
                rows.iter()
                    .filter_map(|r| r["event"].as_str().map(|e| e.trim_start_matches('\\').to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let mut registered = Vec::new();
        for class in CANDIDATE_EVENTS {
            if known.iter().any(|k| k == class) {
                registered.push(class.to_owned());
                continue;
            }
            let body = json!({
                "httpMethod": "POST",
                "uri": HOOK_URI,
                "event": class,
                "eventFilter": [],
                "userIdFilter": "",
                "headers": {},
                "authMethod": "header",
                "authData": { (crate::headers::X_WAGGLE_HOOK_SECRET.as_str()): self.secret },
            });
            match self.nc.ocs::<Value>(Method::POST, API, "", Some(&body)).await {
                Ok(row) => {
                    tracing::info!(class, id = %row["id"], "webhook listener registered");
                    registered.push(class.to_owned());
                }
                Err(e) if e.status() == Some(400) => {
                    tracing::debug!(class, "not webhook-compatible on this Nextcloud")
                }
                Err(source) => return Err(ListenerError::Register { class, source }),
            }
        }
        self.metrics.incr("webhook_listeners_registered");
        Ok(registered)
    }

    /// Deletes our listener rows; rows already gone are fine.
    pub(crate) async fn unregister(&self) -> Result<(), ListenerError> {
        let Some(rows) = self.rows().await? else { return Ok(()) };
        for id in rows.as_array().into_iter().flatten().filter_map(|r| r["id"].as_i64()) {
            match self.nc.ocs::<Value>(Method::DELETE, &format!("{API}/{id}"), "", None).await {
                Ok(_) => tracing::info!(id, "webhook listener removed"),
                Err(e) if matches!(e.status(), Some(404)) => {}
                Err(source) => return Err(ListenerError::Remove { id, source }),
            }
        }
        Ok(())
    }
}
