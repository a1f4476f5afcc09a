//! Key routes: the ADMIN status, rotation and bootstrap triggers, and the SaaS's signed rotation
//! announcement (`/saas/keys/announce`: PUBLIC like `/nc`, verified by the signature policy with its
//! own purpose, `tag="waggle-key"`, never through `/nc`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Provisioner;
use crate::auth::AppApiCaller;
use crate::auth::signature::VerifiedCall;
use crate::error::ApiError;
use crate::keys::Keyring;
use crate::nextcloud::InstanceId;

/// `GET /admin/tenant-key`: the key state, never key material.
pub(crate) async fn status(State(keys): State<Arc<Keyring>>, _admin: AppApiCaller) -> Json<Value> {
    Json(json!({ "tenant_key": keys.status() }))
}

/// `POST /admin/tenant-key/rotate`: asks the SaaS for a new key.
pub(crate) async fn rotate(
    State(p): State<Arc<Provisioner>>,
    admin: AppApiCaller,
) -> Result<Json<Value>, ApiError> {
    tracing::info!(nc.user = %admin.user, "tenant key rotation requested by an admin");
    let id = p.rotate("admin", None).await.map_err(|e| e.into_api("rotation_failed"))?;
    Ok(Json(json!({ "rotated": true, "key_id": id })))
}

/// `POST /admin/tenant-key/bootstrap`: provisions a key now if there is none (shares the single
/// flight with `/init` and enable). Answers once the key exists, or with the error.
pub(crate) async fn bootstrap(
    State(p): State<Arc<Provisioner>>,
    _admin: AppApiCaller,
) -> Result<Json<Value>, ApiError> {
    p.ensure_key().await.map_err(|e| e.into_api("bootstrap_failed"))?;
    Ok(Json(json!({ "tenant_key": p.keys().status() })))
}

/// The announcement body: ids only, never key material.
#[derive(Debug, Deserialize)]
pub(crate) struct Announcement {
    #[serde(default)]
    instance_id: Option<String>,
    #[serde(default)]
    key_id: Option<String>,
}

/// `POST /saas/keys/announce`: the SaaS says a new key is ready. The signature policy has verified
/// it (signed with the CURRENT key, covering `@method`, `content-digest`, `content-type`, body
/// digest checked, nonce spent). Waggle checks the instance, then fetches the key itself from the
/// SaaS over its direct, signed channel.
pub(crate) async fn announce(
    State(p): State<Arc<Provisioner>>,
    State(instance): State<InstanceId>,
    _verified: VerifiedCall,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let announced: Announcement =
        serde_json::from_slice(&body).unwrap_or(Announcement { instance_id: None, key_id: None });
    let ours = instance.get();
    if announced.instance_id.as_deref() != ours.as_deref() {
        return Err(ApiError::Invalid { code: "instance_mismatch", message: "not this instance".to_owned() });
    }
    let Some(key_id) = announced.key_id.filter(|k| !k.is_empty()) else {
        return Err(ApiError::BadRequest("key_id missing".to_owned()));
    };
    let id = p.rotate("announced", Some(&key_id)).await.map_err(|e| e.into_api("rotation_failed"))?;
    Ok(Json(json!({ "rotated": true, "key_id": id })))
}
