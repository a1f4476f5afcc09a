//! Tenant keys: which key signs outbound requests, which key ids verify inbound ones, and where the
//! key came from.
//!
//! Sources, in precedence order: the environment (`WAGGLE_TENANT_KEY` + `_ID`; Waggle then never
//! bootstraps or rotates), the encrypted file under `APP_PERSISTENT_STORAGE` (`keys::store`), or a
//! bootstrap with the SaaS during `/init` (`tenant::provision`, which installs keys here). A file that cannot be read stops the
//! feature with a clear error; Waggle never silently bootstraps a new identity over it.
//!
//! Rotation keeps the previous key verify-only: for `/nc` requests during the request overlap
//! (default 10 min), for webhook signatures during the delivery retry horizon. New signatures always
//! use the newest key.

pub mod store;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use secrecy::ExposeSecret as _;
use serde::Serialize;

use crate::clock::unix_now;
use crate::config::Settings;
use crate::signing::SigningKey;
use store::{KeyFile, KeyFileError, StoredKey};

/// Where the live key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    /// `WAGGLE_TENANT_KEY`.
    Environment,
    /// The encrypted key file.
    Stored,
}

/// The key state as the admin status shows it. Never key material.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum KeyStatus {
    /// No key and no bootstrap under way.
    None,
    /// Bootstrap waits for the SaaS (e.g. an approval).
    Pending {
        /// Unix seconds when waiting began.
        since: u64,
        /// What the SaaS said.
        message: String,
    },
    /// A key signs; `rotating` while a previous key still verifies.
    Active {
        /// Id of the signing key.
        key_id: String,
        /// Seconds since Waggle received it.
        age_secs: u64,
        /// Where it came from.
        source: KeySource,
        /// Whether a previous key is still verify-only.
        rotating: bool,
        /// Id of the previous key while it verifies.
        #[serde(skip_serializing_if = "Option::is_none")]
        previous_key_id: Option<String>,
        /// Organisation the SaaS reported.
        #[serde(skip_serializing_if = "Option::is_none")]
        organization: Option<String>,
    },
    /// The key file could not be used; signing is stopped until an admin fixes it.
    Error {
        /// What went wrong.
        message: String,
    },
}

#[derive(Debug, Default)]
struct Inner {
    doc: Option<KeyFile>,
    source: Option<KeySource>,
    pending: Option<(u64, String)>,
    error: Option<String>,
}

/// The live tenant keys.
#[derive(Debug)]
pub(crate) struct Keyring {
    inner: RwLock<Inner>,
    file_key: [u8; 32],
    app_id: String,
    storage: PathBuf,
    callback_overlap: u64,
    webhook_overlap: u64,
}

impl Keyring {
    /// Loads the keyring: environment key, else the key file, else empty.
    pub(crate) fn load(settings: &Settings) -> Self {
        let mut inner = Inner::default();
        let file_key = store::file_key(settings.app.secret_bytes(), &settings.app.id);
        if let Some(k) = &settings.saas.tenant_key {
            inner.doc = Some(KeyFile {
                version: 1,
                current: StoredKey {
                    id: k.id.clone(),
                    key: k.secret.expose_secret().to_owned(),
                    created_at: unix_now(),
                    expires_at: None,
                    retired_at: None,
                },
                previous: vec![],
                organization: None,
            });
            inner.source = Some(KeySource::Environment);
        } else {
            match store::load(&settings.app.storage_dir, &file_key, &settings.app.id) {
                Ok(Some(doc)) => {
                    inner.doc = Some(doc);
                    inner.source = Some(KeySource::Stored);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %e, "the stored tenant key cannot be used; signing is stopped");
                    inner.error = Some(e.to_string());
                }
            }
        }
        Self {
            inner: RwLock::new(inner),
            file_key,
            app_id: settings.app.id.clone(),
            storage: settings.app.storage_dir.clone(),
            callback_overlap: settings.keys.callback_overlap_secs,
            webhook_overlap: settings.keys.webhook_overlap_secs,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().expect("keyring lock")
    }

    /// The key new outbound signatures use; `None` until one is provisioned.
    pub(crate) fn signing_key(&self) -> Option<Arc<SigningKey>> {
        self.read()
            .doc
            .as_ref()
            .map(|d| Arc::new(SigningKey::from_tenant_key(d.current.id.clone(), &d.current.key)))
    }

    /// The key for `key_id` if it may verify a `/nc` request now: the current key, or a previous one
    /// within the request overlap.
    pub(crate) fn verification_key(&self, key_id: &str) -> Option<Arc<SigningKey>> {
        self.verify_within(key_id, self.callback_overlap)
    }

    /// Keys that may still verify webhook signatures (current first), for multi-signature headers.
    pub(crate) fn webhook_keys(&self) -> Vec<Arc<SigningKey>> {
        let inner = self.read();
        let now = unix_now();
        let Some(doc) = inner.doc.as_ref() else { return vec![] };
        std::iter::once(&doc.current)
            .chain(
                doc.previous.iter().filter(|k| k.retired_at.is_some_and(|r| now < r + self.webhook_overlap)),
            )
            .map(|k| Arc::new(SigningKey::from_tenant_key(k.id.clone(), &k.key)))
            .collect()
    }

    fn verify_within(&self, key_id: &str, overlap: u64) -> Option<Arc<SigningKey>> {
        let inner = self.read();
        let doc = inner.doc.as_ref()?;
        let now = unix_now();
        std::iter::once(&doc.current)
            .chain(doc.previous.iter().filter(|k| k.retired_at.is_some_and(|r| now < r + overlap)))
            .find(|k| k.id == key_id)
            .map(|k| Arc::new(SigningKey::from_tenant_key(k.id.clone(), &k.key)))
    }

    /// Whether the key is managed through the environment (no bootstrap, no rotation).
    pub(crate) fn env_managed(&self) -> bool {
        self.read().source == Some(KeySource::Environment)
    }

    /// The current key id, if any.
    pub(crate) fn current_id(&self) -> Option<String> {
        self.read().doc.as_ref().map(|d| d.current.id.clone())
    }

    /// The load error that stopped signing, if any.
    pub(crate) fn error(&self) -> Option<String> {
        self.read().error.clone()
    }

    /// The state for the admin status.
    pub(crate) fn status(&self) -> KeyStatus {
        let inner = self.read();
        if let Some(message) = &inner.error {
            return KeyStatus::Error { message: message.clone() };
        }
        match (&inner.doc, &inner.pending) {
            (Some(doc), _) => {
                let now = unix_now();
                let previous = doc.previous.iter().find(|k| {
                    k.retired_at.is_some_and(|r| now < r + self.callback_overlap.max(self.webhook_overlap))
                });
                KeyStatus::Active {
                    key_id: doc.current.id.clone(),
                    age_secs: now.saturating_sub(doc.current.created_at),
                    source: inner.source.unwrap_or(KeySource::Stored),
                    rotating: previous.is_some(),
                    previous_key_id: previous.map(|k| k.id.clone()),
                    organization: doc.organization.clone(),
                }
            }
            (None, Some((since, message))) => KeyStatus::Pending { since: *since, message: message.clone() },
            (None, None) => KeyStatus::None,
        }
    }

    /// Records that bootstrap waits for the SaaS.
    pub(crate) fn set_pending(&self, message: &str) {
        let mut inner = self.inner.write().expect("keyring lock");
        let since = inner.pending.as_ref().map_or_else(unix_now, |p| p.0);
        inner.pending = Some((since, message.to_owned()));
    }

    /// Installs a key from the SaaS and persists it. The first key becomes current; a key with a new
    /// id rotates (the old one becomes verify-only); the same id with the same material is a no-op; the
    /// same id with different material is refused, so a working key is never replaced by accident.
    pub(crate) fn install(
        &self,
        id: &str,
        key: &str,
        expires_at: Option<u64>,
        organization: Option<String>,
    ) -> Result<Install, KeyFileError> {
        let mut inner = self.inner.write().expect("keyring lock");
        let now = unix_now();
        let fresh = StoredKey {
            id: id.to_owned(),
            key: key.to_owned(),
            created_at: now,
            expires_at,
            retired_at: None,
        };
        let (doc, outcome) = match inner.doc.take() {
            None => (KeyFile { version: 1, current: fresh, previous: vec![], organization }, Install::First),
            Some(doc) if doc.current.id == id => {
                let same = doc.current.key == key;
                inner.doc = Some(doc);
                return Ok(if same { Install::Unchanged } else { Install::Conflict });
            }
            Some(mut doc) => {
                let mut old = doc.current.clone();
                old.retired_at = Some(now);
                let horizon = self.callback_overlap.max(self.webhook_overlap);
                doc.previous.retain(|k| k.retired_at.is_some_and(|r| now < r + horizon));
                doc.previous.insert(0, old);
                doc.current = fresh;
                if organization.is_some() {
                    doc.organization = organization;
                }
                (doc, Install::Rotated)
            }
        };
        if let Err(e) = store::save(&self.storage, &doc, &self.file_key, &self.app_id) {
            // Keep serving with the previous state rather than a key that is not on disk.
            tracing::error!(error = %e, "cannot store the tenant key");
            return Err(e);
        }
        inner.doc = Some(doc);
        inner.source = Some(KeySource::Stored);
        inner.pending = None;
        Ok(outcome)
    }
}

/// What [`Keyring::install`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Install {
    /// The first key.
    First,
    /// A new key replaced the current one, which is now verify-only.
    Rotated,
    /// The same key again.
    Unchanged,
    /// Same id, different material: refused.
    Conflict,
}
