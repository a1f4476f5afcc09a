//! Provisioning and rotation with the SaaS (`docs/PROTOCOL.md` §8).
//!
//! Bootstrap runs during `/init` when no key exists: `POST <service>/waggle/v1/bootstrap` with the
//! instance id, public URLs, app identity, primary admin and pairing code. The SaaS answers with the
//! key (200), or "pending" with a poll URL (202), polled with backoff while `/init` stays below 100.
//! Rotation (admin action or a signed announcement from the SaaS) asks
//! `POST <service>/waggle/v1/keys/rotate`, signed with the current key. Both are single-flight.

use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Install;
use crate::headers;
use crate::state::AppState;

/// The SaaS's answer to a bootstrap, poll or rotation.
#[derive(Debug, Deserialize)]
struct KeyAnswer {
    #[serde(default)]
    key_id: Option<String>,
    #[serde(default)]
    tenant_key: Option<String>,
    #[serde(default)]
    expires_at: Option<u64>,
    #[serde(default)]
    organization: Option<String>,
    #[serde(default)]
    poll_url: Option<String>,
    #[serde(default)]
    retry_after: Option<u64>,
    #[serde(default)]
    message: Option<String>,
}

/// An answer's `{"error":{"code","message"}}`, for the init error text.
fn error_text(status: u16, body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let code = v["error"]["code"].as_str().unwrap_or("");
    let message = v["error"]["message"].as_str().unwrap_or("");
    let mut text = format!("the service refused the tenant key request (HTTP {status}");
    if !code.is_empty() {
        text.push_str(&format!(", {code}"));
    }
    text.push(')');
    if !message.is_empty() {
        text.push_str(&format!(": {}", message.chars().take(200).collect::<String>()));
    }
    text
}

fn service_url(state: &AppState, path: &str) -> Result<String, String> {
    let base = state.settings.saas.service_url.as_ref().ok_or("WAGGLE_SERVICE_URL is not set")?;
    Ok(format!("{}{path}", base.as_str()))
}

/// The primary admin (uid, email, name): the administrator Waggle acts as for reconciliation
/// (`nextcloud::admins`), or `null` when none can be found (logged).
async fn primary_admin(state: &AppState) -> Value {
    let configured = state.settings.sync.admin_uid.as_deref();
    match crate::nextcloud::admins::resolve(&state.nc, &state.store, configured).await {
        Ok(a) => json!({ "uid": a.uid, "email": a.email, "display_name": a.display_name }),
        Err(e) => {
            tracing::warn!(error = %e, "bootstrapping without an admin contact");
            Value::Null
        }
    }
}

/// Makes sure a key exists, bootstrapping if needed. Single-flight: concurrent callers wait for the
/// one run and share its outcome. `progress` is told about waiting (so `/init` can stay below 100).
pub async fn ensure_key(state: &AppState) -> Result<(), String> {
    let keys = &state.keys;
    if keys.signing_key().is_some() {
        return Ok(());
    }
    if let Some(e) = keys.error() {
        return Err(format!(
            "the stored tenant key cannot be used: {e}; fix APP_SECRET or remove the file to pair again"
        ));
    }
    let _flight = keys.flight.lock().await;
    if keys.signing_key().is_some() {
        return Ok(()); // another caller finished while we waited
    }
    let instance = crate::nextcloud::instance::known_or_resolve(&state.nc, &state.store).await?;
    let public = state.settings.nextcloud.public_url.as_str().trim_end_matches('/').to_owned();
    let app = &state.settings.app;
    let body = json!({
        "instance_id": instance,
        "nextcloud_url": format!("{public}/"),
        "callback_urls": {
            "php_proxy": format!("{public}/index.php/apps/app_api/proxy/{}", app.id),
            "harp": format!("{public}/exapps/{}", app.id),
        },
        "app": { "id": app.id, "version": app.version },
        "admin": primary_admin(state).await,
        "pairing_code": state.settings.saas.pairing_code,
    });
    let url = service_url(state, "waggle/v1/bootstrap")?;
    tracing::info!("bootstrapping the tenant key with the service");
    let mut answer = call(state, Method::POST, &url, Some(&body), None).await?;
    let mut wait = state.settings.keys.poll_min;
    loop {
        match answer {
            Answer::Key(k) => {
                let (Some(id), Some(key)) = (k.key_id, k.tenant_key) else {
                    return Err("the service's key answer lacks key_id or tenant_key".to_owned());
                };
                return match keys.install(&id, &key, k.expires_at, k.organization) {
                    Ok(Install::Conflict) => {
                        Err("the service returned a different key under the current key id".to_owned())
                    }
                    Ok(_) => {
                        tracing::info!(key_id = %id, "tenant key provisioned");
                        state.audit_event("BOOTSTRAP", &format!("tenant-key:{id}"));
                        Ok(())
                    }
                    Err(e) => Err(format!("cannot store the tenant key: {e}")),
                };
            }
            Answer::Pending(p) => {
                let poll = p.poll_url.ok_or("the service answered pending without a poll_url")?;
                let message = p.message.unwrap_or_else(|| "waiting for the service".to_owned());
                keys.set_pending(&message);
                let delay = p
                    .retry_after
                    .map_or(wait, Duration::from_secs)
                    .clamp(state.settings.keys.poll_min, state.settings.keys.poll_max);
                tracing::info!(message = %message, delay_ms = delay.as_millis() as u64, "tenant key pending");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = state.shutdown.cancelled() => return Err("shutting down while the tenant key was pending".to_owned()),
                }
                wait = (wait * 2).min(state.settings.keys.poll_max);
                answer = call(state, Method::GET, &poll, None, None).await?;
            }
        }
    }
}

enum Answer {
    Key(KeyAnswer),
    Pending(KeyAnswer),
}

/// One call to the SaaS's key endpoints; `sign` adds an API-profile signature with the current key.
async fn call(
    state: &AppState,
    method: Method,
    url: &str,
    body: Option<&Value>,
    sign: Option<&crate::signing::SigningKey>,
) -> Result<Answer, String> {
    let bytes = body.map(|b| serde_json::to_vec(b).expect("JSON serialises")).unwrap_or_default();
    let mut headers = HeaderMap::new();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(key) = sign {
        let uri: http::Uri = url.parse().map_err(|_| format!("bad service URL {url}"))?;
        headers.insert(
            headers::CONTENT_DIGEST,
            HeaderValue::from_str(&crate::signing::content_digest_value(&bytes))
                .map_err(|e| e.to_string())?,
        );
        headers.insert(headers::X_WAGGLE_USER, HeaderValue::from_static(""));
        let instance = state.nc.instance().get().ok_or("Nextcloud's instance id is not known yet")?;
        headers
            .insert(headers::X_WAGGLE_INSTANCE, HeaderValue::from_str(&instance).map_err(|e| e.to_string())?);
        crate::saas::sign(key, &method, &uri, &mut headers).map_err(|e| e.to_string())?;
    }
    let response = state
        .saas
        .http()
        .request(method, url)
        .headers(headers)
        .body(bytes)
        .timeout(state.settings.keys.request_timeout)
        .send()
        .await
        .map_err(|e| format!("cannot reach the service for the tenant key: {e}"))?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|e| format!("the service's answer broke off: {e}"))?;
    match status {
        200 | 201 => serde_json::from_slice(&body)
            .map(Answer::Key)
            .map_err(|_| "the service's key answer is not valid JSON".to_owned()),
        202 => serde_json::from_slice(&body)
            .map(Answer::Pending)
            .map_err(|_| "the service's pending answer is not valid JSON".to_owned()),
        410 => Err(error_text(status, &body) + " (the request was denied or expired)"),
        _ => Err(error_text(status, &body)),
    }
}

/// Asks the SaaS for a new key, signed with the current one, and installs it (the old key stays
/// verify-only for the overlaps). `reason` is sent along (`admin` or `announced`).
pub async fn rotate(state: &AppState, reason: &str, announced_id: Option<&str>) -> Result<String, String> {
    let keys = &state.keys;
    if keys.env_managed() {
        return Err("the tenant key is set through WAGGLE_TENANT_KEY; rotate it there".to_owned());
    }
    let _flight = keys.flight.lock().await;
    let current = keys.signing_key().ok_or("there is no tenant key to rotate")?;
    let url = service_url(state, "waggle/v1/keys/rotate")?;
    let body = json!({ "reason": reason, "current_key_id": current.id(), "announced_key_id": announced_id });
    let answer = match call(state, Method::POST, &url, Some(&body), Some(&current)).await? {
        Answer::Key(k) => k,
        Answer::Pending(_) => return Err("the service answered pending to a rotation".to_owned()),
    };
    let (Some(id), Some(key)) = (answer.key_id, answer.tenant_key) else {
        return Err("the service's key answer lacks key_id or tenant_key".to_owned());
    };
    if announced_id.is_some_and(|a| a != id) {
        return Err("the service returned another key than the one it announced".to_owned());
    }
    match keys.install(&id, &key, answer.expires_at, answer.organization) {
        Ok(Install::Rotated) => {
            tracing::warn!(old_key_id = current.id(), new_key_id = %id, reason, "tenant key rotated");
            state.audit_event("ROTATE", &format!("tenant-key:{}->{id}", current.id()));
            Ok(id)
        }
        Ok(Install::Unchanged | Install::Conflict) => {
            Err("the service returned the current key; nothing was rotated".to_owned())
        }
        Ok(Install::First) => Ok(id),
        Err(e) => Err(format!("cannot store the new tenant key: {e}")),
    }
}
