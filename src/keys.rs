//! Tenant keys: which key signs outbound requests and which key ids verify inbound ones.
//!
//! Today the key comes from `WAGGLE_TENANT_KEY` / `WAGGLE_TENANT_KEY_ID`. Provisioning, encrypted
//! storage and rotation with overlap build on this type.

use std::sync::{Arc, RwLock};

use secrecy::ExposeSecret as _;

use crate::config::SaasSettings;
use crate::signing::SigningKey;

/// The live tenant keys.
#[derive(Debug, Default)]
pub struct Keyring {
    current: RwLock<Option<Arc<SigningKey>>>,
}

impl Keyring {
    /// The keyring as configured (the environment key when given).
    pub fn from_settings(saas: &SaasSettings) -> Self {
        let current = saas
            .tenant_key
            .as_ref()
            .map(|k| Arc::new(SigningKey::from_tenant_key(k.id.clone(), k.secret.expose_secret())));
        Self { current: RwLock::new(current) }
    }

    /// The key new outbound signatures use; `None` until one is provisioned.
    pub fn signing_key(&self) -> Option<Arc<SigningKey>> {
        self.current.read().expect("keyring lock").clone()
    }

    /// The secret for `key_id` if it may verify.
    pub fn verification_key(&self, key_id: &str) -> Option<Arc<SigningKey>> {
        self.signing_key().filter(|k| k.id() == key_id)
    }
}
