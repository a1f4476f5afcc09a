//! Provisioning and rotation with the SaaS (`docs/PROTOCOL.md` §8).
//!
//! Bootstrap runs during `/init` when no key exists: the SaaS client's `bootstrap` with the instance
//! id, public URLs, app identity, primary admin and pairing code. The SaaS answers with the key
//! (200), or "pending" with a poll URL (202), polled with backoff while `/init` stays below 100.
//! Rotation (admin action or a signed announcement from the SaaS) asks `fetch_key`, signed with the
//! current key. Both are single-flight, and both are audited.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use url::Url;

use crate::audit::AuditLog;
use crate::config::Settings;
use crate::error::ApiError;
use crate::keys::store::KeyFileError;
use crate::keys::{Install, Keyring};
use crate::nextcloud::InstanceId;
use crate::nextcloud::admins::Admins;
use crate::nextcloud::instance::InstanceError;
use crate::saas::{IssuedKey, KeyAnswer, SaasClient, SaasError};
use crate::shutdown::Background;

/// Why provisioning or rotation failed. The text is what `/init` reports to Nextcloud.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProvisionError {
    /// The stored key file cannot be used; never a reason to bootstrap a new identity.
    #[error("the stored tenant key cannot be used: {0}; fix APP_SECRET or remove the file to pair again")]
    Unusable(String),
    /// Rotation asked for a key set through the environment.
    #[error("the tenant key is set through WAGGLE_TENANT_KEY; rotate it there")]
    EnvironmentManaged,
    /// Rotation asked with no key.
    #[error("there is no tenant key to rotate")]
    NoKey,
    /// Nextcloud's instance id could not be resolved.
    #[error(transparent)]
    Instance(#[from] InstanceError),
    /// The SaaS call failed or was refused.
    #[error(transparent)]
    Saas(#[from] SaasError),
    /// The answer lacks a field or says something the protocol forbids.
    #[error("{0}")]
    Answer(&'static str),
    /// The SaaS returned another key than the one it announced, or the current key again.
    #[error("{0}")]
    Mismatch(&'static str),
    /// The key could not be stored; the previous state is kept.
    #[error("cannot store the tenant key: {0}")]
    Store(#[source] KeyFileError),
    /// Shutdown began while waiting.
    #[error("shutting down while the tenant key was pending")]
    ShuttingDown,
}

impl ProvisionError {
    /// The boundary error, with `conflict_code` (`bootstrap_failed`, `rotation_failed`) for what
    /// conflicts with Waggle's or the SaaS's state. A network failure is 502/504, a store failure
    /// 503, an invalid answer 502.
    pub(crate) fn into_api(self, conflict_code: &'static str) -> ApiError {
        let conflict = |e: Self| ApiError::Conflict { code: conflict_code, message: e.to_string() };
        match self {
            e @ (Self::Unusable(_) | Self::EnvironmentManaged | Self::NoKey | Self::Mismatch(_)) => {
                conflict(e)
            }
            e @ Self::Saas(SaasError::Refused { status: 400..=499, .. }) => conflict(e),
            Self::Saas(e) => e.into(),
            Self::Instance(e) => e.into(),
            e @ Self::Answer(_) => ApiError::Upstream {
                code: "upstream_invalid",
                message: "the service answered with an error".into(),
                source: Box::new(e),
            },
            Self::Store(e) => ApiError::unavailable("key_store_unavailable", e),
            Self::ShuttingDown => ApiError::Unavailable { code: "shutting_down", source: None },
        }
    }
}

/// Bootstrap and rotation, built once.
#[derive(Debug)]
pub(crate) struct Provisioner {
    keys: Arc<Keyring>,
    saas: SaasClient,
    instance: InstanceId,
    admins: Admins,
    audit: AuditLog,
    background: Background,
    /// Serialises bootstrap and rotation (single flight).
    flight: tokio::sync::Mutex<()>,
    app_id: String,
    app_version: String,
    public_url: Url,
    pairing_code: Option<String>,
    poll_min: Duration,
    poll_max: Duration,
}

impl Provisioner {
    /// From the settings and the parts it uses.
    pub(crate) fn new(
        settings: &Settings,
        keys: Arc<Keyring>,
        saas: SaasClient,
        instance: InstanceId,
        admins: Admins,
        audit: AuditLog,
        background: Background,
    ) -> Self {
        Self {
            keys,
            saas,
            instance,
            admins,
            audit,
            background,
            flight: tokio::sync::Mutex::new(()),
            app_id: settings.app.id.clone(),
            app_version: settings.app.version.clone(),
            public_url: settings.nextcloud.public_url.clone(),
            pairing_code: settings.saas.pairing_code.clone(),
            poll_min: settings.keys.poll_min,
            poll_max: settings.keys.poll_max,
        }
    }

    /// The keyring it provisions.
    pub(crate) fn keys(&self) -> &Keyring {
        &self.keys
    }

    /// Whether a missing key should be bootstrapped in the background (at enable): no key, no
    /// unusable key file, and a service to ask.
    pub(crate) fn should_bootstrap(&self) -> bool {
        self.keys.signing_key().is_none() && self.keys.error().is_none() && self.saas.service_url().is_some()
    }

    /// The primary admin (uid, email, name): the administrator Waggle acts as for reconciliation
    /// (`nextcloud::admins`), or `null` when none can be found (logged).
    async fn primary_admin(&self) -> Value {
        match self.admins.resolve().await {
            Ok(a) => json!({ "uid": a.uid, "email": a.email, "display_name": a.display_name }),
            Err(e) => {
                tracing::warn!(error = %e, "bootstrapping without an admin contact");
                Value::Null
            }
        }
    }

    /// Makes sure a key exists, bootstrapping if needed. Single-flight: concurrent callers wait for
    /// the one run and share its outcome.
    pub(crate) async fn ensure_key(&self) -> Result<(), ProvisionError> {
        let keys = &self.keys;
        if keys.signing_key().is_some() {
            return Ok(());
        }
        if let Some(e) = keys.error() {
            return Err(ProvisionError::Unusable(e));
        }
        let _flight = self.flight.lock().await;
        if keys.signing_key().is_some() {
            return Ok(()); // another caller finished while we waited
        }
        if self.saas.service_url().is_none() {
            return Err(SaasError::NotConfigured.into());
        }
        let instance = self.instance.known_or_resolve().await?;
        let public = self.public_url.as_str().trim_end_matches('/').to_owned();
        let body = json!({
            "instance_id": instance,
            "nextcloud_url": format!("{public}/"),
            "callback_urls": {
                "php_proxy": format!("{public}/index.php/apps/app_api/proxy/{}", self.app_id),
                "harp": format!("{public}/exapps/{}", self.app_id),
            },
            "app": { "id": self.app_id, "version": self.app_version },
            "admin": self.primary_admin().await,
            "pairing_code": self.pairing_code,
        });
        tracing::info!("bootstrapping the tenant key with the service");
        let mut answer = self.saas.bootstrap(&body).await?;
        let mut wait = self.poll_min;
        loop {
            match answer {
                KeyAnswer::Key(k) => {
                    let (id, key) = issued(k.key_id.as_deref(), k.tenant_key.as_deref())?;
                    return match keys.install(id, key, k.expires_at, k.organization.clone()) {
                        Ok(Install::Conflict) => Err(ProvisionError::Mismatch(
                            "the service returned a different key under the current key id",
                        )),
                        Ok(_) => {
                            tracing::info!(key_id = %id, "tenant key provisioned");
                            self.audit.connector_event("BOOTSTRAP", &format!("tenant-key:{id}"));
                            Ok(())
                        }
                        Err(e) => Err(ProvisionError::Store(e)),
                    };
                }
                KeyAnswer::Pending(p) => {
                    let poll = p
                        .poll_url
                        .ok_or(ProvisionError::Answer("the service answered pending without a poll_url"))?;
                    let message = p.message.unwrap_or_else(|| "waiting for the service".to_owned());
                    keys.set_pending(&message);
                    let delay =
                        p.retry_after.map_or(wait, Duration::from_secs).clamp(self.poll_min, self.poll_max);
                    tracing::info!(message = %message, delay_ms = delay.as_millis() as u64, "tenant key pending");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = self.background.cancelled() => return Err(ProvisionError::ShuttingDown),
                    }
                    wait = (wait * 2).min(self.poll_max);
                    answer = self.saas.poll(&poll).await?;
                }
            }
        }
    }

    /// Asks the SaaS for a new key, signed with the current one, and installs it (the old key stays
    /// verify-only for the overlaps). `reason` is sent along (`admin` or `announced`).
    pub(crate) async fn rotate(
        &self,
        reason: &str,
        announced_id: Option<&str>,
    ) -> Result<String, ProvisionError> {
        let keys = &self.keys;
        if keys.env_managed() {
            return Err(ProvisionError::EnvironmentManaged);
        }
        let _flight = self.flight.lock().await;
        let current = keys.signing_key().ok_or(ProvisionError::NoKey)?;
        let body =
            json!({ "reason": reason, "current_key_id": current.id(), "announced_key_id": announced_id });
        let answer = match self.saas.fetch_key(&body, &current).await? {
            KeyAnswer::Key(k) => k,
            KeyAnswer::Pending(_) => {
                return Err(ProvisionError::Answer("the service answered pending to a rotation"));
            }
        };
        let IssuedKey { expires_at, organization, .. } = answer;
        let (id, key) = issued(answer.key_id.as_deref(), answer.tenant_key.as_deref())?;
        if announced_id.is_some_and(|a| a != id) {
            return Err(ProvisionError::Mismatch(
                "the service returned another key than the one it announced",
            ));
        }
        match keys.install(id, key, expires_at, organization) {
            Ok(Install::Rotated) => {
                tracing::warn!(old_key_id = current.id(), new_key_id = %id, reason, "tenant key rotated");
                self.audit.connector_event("ROTATE", &format!("tenant-key:{}->{id}", current.id()));
                Ok(id.to_owned())
            }
            Ok(Install::Unchanged | Install::Conflict) => {
                Err(ProvisionError::Mismatch("the service returned the current key; nothing was rotated"))
            }
            Ok(Install::First) => Ok(id.to_owned()),
            Err(e) => Err(ProvisionError::Store(e)),
        }
    }
}

/// The id and material of an issued key, both required.
fn issued<'a>(id: Option<&'a str>, key: Option<&'a str>) -> Result<(&'a str, &'a str), ProvisionError> {
    match (id, key) {
        (Some(id), Some(key)) => Ok((id, key)),
        _ => Err(ProvisionError::Answer("the service's key answer lacks key_id or tenant_key")),
    }
}
