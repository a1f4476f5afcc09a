//! `SaasClient`: Waggle's own calls to the SaaS, and the signed-headers step every request to the
//! SaaS shares (the `/api` proxy and the WebSocket handshake use it too).
//!
//! It owns the pooled HTTP client, the service and events URLs, the signer (the tenant keyring and
//! the wire profile) and the Nextcloud instance id it sends (a value the Nextcloud side resolves).
//! Typed calls: [`SaasClient::bootstrap`], [`SaasClient::poll`] and [`SaasClient::fetch_key`]
//! (`docs/PROTOCOL.md` §8) and [`SaasClient::post_event`] (§9). The `/api` and `/auth` policy is
//! `saas::proxy`; the SaaS half of the WebSocket bridge is `saas::ws`.

pub(crate) mod proxy;
pub(crate) mod routes;
pub(crate) mod ws;

use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Uri};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::clock::unix_now;
use crate::config::Settings;
use crate::error::ApiError;
use crate::headers;
use crate::keys::Keyring;
use crate::nextcloud::InstanceId;
use crate::signing::webhooks::{self, WebhookSecret};
use crate::signing::{SignError, SigningKey, WireProfile, content_digest_value, random_nonce};

/// Why a call to the SaaS (or signing one) failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SaasError {
    /// `WAGGLE_SERVICE_URL` is not set.
    #[error("WAGGLE_SERVICE_URL is not set")]
    NotConfigured,
    /// No tenant key to sign with.
    #[error("there is no tenant key")]
    NoKey,
    /// Nextcloud's instance id is not known yet (init resolves it; a user request never waits on
    /// Nextcloud for it).
    #[error("Nextcloud's instance id is not known yet")]
    NoInstance,
    /// A value (the user, a URL) cannot be sent as a header.
    #[error("a header value is not valid")]
    HeaderValue,
    /// The request cannot be signed (a value the profile refuses).
    #[error("the request cannot be signed: {0}")]
    Sign(#[source] SignError),
    /// A URL the SaaS gave (a poll URL) is not usable.
    #[error("bad service URL {0}")]
    BadUrl(String),
    /// The SaaS could not be reached, or its answer broke off.
    #[error("cannot reach the service for the tenant key: {0}")]
    Transport(#[source] reqwest::Error),
    /// The SaaS did not answer in time.
    #[error("the service did not answer in time")]
    Timeout,
    /// The SaaS answered with an error.
    #[error("{}", refusal_text(*.status, .code, .message))]
    Refused {
        /// HTTP status.
        status: u16,
        /// The `error.code` of its answer, if any.
        code: String,
        /// The `error.message` of its answer, at most 200 characters.
        message: String,
    },
    /// The answer is not what the protocol says.
    #[error("the service's {0}")]
    Invalid(&'static str),
}

impl SaasError {
    fn transport(e: reqwest::Error) -> Self {
        if e.is_timeout() { Self::Timeout } else { Self::Transport(e) }
    }
}

/// The init error text for a refusal (`PROTOCOL.md` §8.1).
fn refusal_text(status: u16, code: &str, message: &str) -> String {
    let mut text = format!("the service refused the tenant key request (HTTP {status}");
    if !code.is_empty() {
        text.push_str(&format!(", {code}"));
    }
    text.push(')');
    if !message.is_empty() {
        text.push_str(&format!(": {message}"));
    }
    if status == 410 {
        text.push_str(" (the request was denied or expired)");
    }
    text
}

impl From<SaasError> for ApiError {
    /// A refusal by the SaaS of something Waggle asked (4xx) is a conflict with the SaaS's state;
    /// anything else on the SaaS's side is a gateway failure.
    fn from(e: SaasError) -> Self {
        match e {
            SaasError::NotConfigured => ApiError::NotReady("saas_not_configured"),
            SaasError::NoKey => ApiError::NotReady("tenant_key_missing"),
            SaasError::NoInstance => ApiError::NotReady("instance_id_unknown"),
            SaasError::HeaderValue => ApiError::BadRequest("a header value is not valid".to_owned()),
            SaasError::Sign(e) => ApiError::BadRequest(format!("the request cannot be signed: {e}")),
            SaasError::Timeout => ApiError::UpstreamTimeout { code: "upstream_timeout" },
            SaasError::Refused { status: 400..=499, .. } => {
                ApiError::Conflict { code: "saas_refused", message: e.to_string() }
            }
            e @ (SaasError::Transport(_) | SaasError::BadUrl(_)) => ApiError::Upstream {
                code: "upstream_unreachable",
                message: "the service could not be reached".into(),
                source: Box::new(e),
            },
            e @ (SaasError::Refused { .. } | SaasError::Invalid(_)) => ApiError::Upstream {
                code: "upstream_invalid",
                message: "the service answered with an error".into(),
                source: Box::new(e),
            },
        }
    }
}

/// A key the SaaS issued (bootstrap, approval, rotation).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct IssuedKey {
    /// Key id.
    #[serde(default)]
    pub(crate) key_id: Option<String>,
    /// Key material.
    #[serde(default)]
    pub(crate) tenant_key: Option<String>,
    /// When the SaaS stops accepting it.
    #[serde(default)]
    pub(crate) expires_at: Option<u64>,
    /// Organisation name.
    #[serde(default)]
    pub(crate) organization: Option<String>,
}

/// A bootstrap that waits for the SaaS (e.g. an approval).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PendingKey {
    /// Where to poll.
    #[serde(default)]
    pub(crate) poll_url: Option<String>,
    /// Seconds until the next poll.
    #[serde(default)]
    pub(crate) retry_after: Option<u64>,
    /// What the SaaS says.
    #[serde(default)]
    pub(crate) message: Option<String>,
}

/// The SaaS's answer to a key request.
#[derive(Debug)]
pub(crate) enum KeyAnswer {
    /// 200/201: a key.
    Key(IssuedKey),
    /// 202: pending.
    Pending(PendingKey),
}

/// The webhook's answer to one event delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EventAnswer {
    /// HTTP status.
    pub(crate) status: u16,
    /// `Retry-After` in seconds, when given as a number.
    pub(crate) retry_after: Option<u64>,
}

/// The SaaS client (cheap to clone).
#[derive(Debug, Clone)]
pub(crate) struct SaasClient(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    service_url: Option<Url>,
    events_url: Option<Url>,
    keys: Arc<Keyring>,
    profile: Arc<dyn WireProfile>,
    instance: InstanceId,
    key_timeout: Duration,
    event_timeout: Duration,
}

impl SaasClient {
    /// Builds the client once (no redirects, connect timeout from the proxy settings).
    pub(crate) fn new(
        settings: &Settings,
        keys: Arc<Keyring>,
        profile: Arc<dyn WireProfile>,
        instance: InstanceId,
    ) -> anyhow::Result<Self> {
        crate::tls::install_provider();
        let http = reqwest::Client::builder()
            .user_agent(concat!("waggle/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.proxy.header_timeout)
            .build()?;
        Ok(Self(Arc::new(Inner {
            http,
            service_url: settings.saas.service_url.clone(),
            events_url: settings.events.url.clone(),
            keys,
            profile,
            instance,
            key_timeout: settings.keys.request_timeout,
            event_timeout: settings.events.request_timeout,
        })))
    }

    /// The service base URL (`WAGGLE_SERVICE_URL`, with a trailing slash), if configured.
    pub(crate) fn service_url(&self) -> Option<&Url> {
        self.0.service_url.as_ref()
    }

    /// Where events are delivered, if anywhere.
    pub(crate) fn events_url(&self) -> Option<&Url> {
        self.0.events_url.as_ref()
    }

    /// The key new signatures use.
    pub(crate) fn signing_key(&self) -> Result<Arc<SigningKey>, SaasError> {
        self.0.keys.signing_key().ok_or(SaasError::NoKey)
    }

    /// Nextcloud's instance id as the `X-Waggle-Instance` value, as resolved at init (never a
    /// network call).
    pub(crate) fn instance(&self) -> Result<HeaderValue, SaasError> {
        self.0.instance.header().ok_or(SaasError::NoInstance)
    }

    /// The signed-headers step every request to the SaaS shares: `X-Waggle-User` and
    /// `X-Waggle-Instance` are set, then the profile signs (fresh nonce, current time) over the
    /// headers already present, `Content-Digest` included.
    pub(crate) fn sign(
        &self,
        key: &SigningKey,
        instance: &HeaderValue,
        user: &str,
        method: &Method,
        uri: &Uri,
        headers: &mut HeaderMap,
    ) -> Result<(), SaasError> {
        set_identity(headers, user, instance)?;
        let nonce = random_nonce(&mut rand::rng());
        self.0.profile.sign_api(key, method, uri, headers, unix_now(), &nonce).map_err(SaasError::Sign)
    }

    fn endpoint(&self, path: &str) -> Result<String, SaasError> {
        let base = self.0.service_url.as_ref().ok_or(SaasError::NotConfigured)?;
        Ok(format!("{}{path}", base.as_str()))
    }

    /// `POST <service>/waggle/v1/bootstrap` (unsigned: there is no key yet).
    pub(crate) async fn bootstrap(&self, body: &Value) -> Result<KeyAnswer, SaasError> {
        let url = self.endpoint("waggle/v1/bootstrap")?;
        self.key_call(Method::POST, &url, Some(body), None).await
    }

    /// `GET <poll_url>` while a bootstrap is pending.
    pub(crate) async fn poll(&self, poll_url: &str) -> Result<KeyAnswer, SaasError> {
        self.key_call(Method::GET, poll_url, None, None).await
    }

    /// `POST <service>/waggle/v1/keys/rotate`, signed with `current`: fetches the next key.
    pub(crate) async fn fetch_key(&self, body: &Value, current: &SigningKey) -> Result<KeyAnswer, SaasError> {
        let url = self.endpoint("waggle/v1/keys/rotate")?;
        self.key_call(Method::POST, &url, Some(body), Some(current)).await
    }

    async fn key_call(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        sign: Option<&SigningKey>,
    ) -> Result<KeyAnswer, SaasError> {
        let bytes = body.map(|b| serde_json::to_vec(b).expect("JSON serialises")).unwrap_or_default();
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(key) = sign {
            let uri: Uri = url.parse().map_err(|_| SaasError::BadUrl(url.to_owned()))?;
            let digest =
                HeaderValue::from_str(&content_digest_value(&bytes)).map_err(|_| SaasError::HeaderValue)?;
            headers.insert(headers::CONTENT_DIGEST, digest);
            let instance = self.instance()?;
            self.sign(key, &instance, "", &method, &uri, &mut headers)?;
        }
        let response = self
            .0
            .http
            .request(method, url)
            .headers(headers)
            .body(bytes)
            .timeout(self.0.key_timeout)
            .send()
            .await
            .map_err(SaasError::transport)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(SaasError::transport)?;
        match status {
            200 | 201 => serde_json::from_slice(&body)
                .map(KeyAnswer::Key)
                .map_err(|_| SaasError::Invalid("key answer is not valid JSON")),
            202 => serde_json::from_slice(&body)
                .map(KeyAnswer::Pending)
                .map_err(|_| SaasError::Invalid("pending answer is not valid JSON")),
            _ => Err(refusal(status, &body)),
        }
    }

    /// Delivers one event to the events URL with Standard Webhooks headers, signed with every secret
    /// in `secrets` (current first). The answer's status decides what happens next (the caller's).
    pub(crate) async fn post_event(
        &self,
        id: &str,
        payload: Vec<u8>,
        secrets: &[WebhookSecret],
    ) -> Result<EventAnswer, SaasError> {
        let url = self.0.events_url.as_ref().ok_or(SaasError::NotConfigured)?;
        let timestamp = unix_now();
        let signature = webhooks::signature_header(secrets, id, timestamp, &payload);
        let response = self
            .0
            .http
            .post(url.as_str())
            .header(webhooks::WEBHOOK_ID, id)
            .header(webhooks::WEBHOOK_TIMESTAMP, timestamp.to_string())
            .header(webhooks::WEBHOOK_SIGNATURE, signature)
            .header(header::CONTENT_TYPE, "application/json")
            .body(payload)
            .timeout(self.0.event_timeout)
            .send()
            .await
            .map_err(SaasError::transport)?;
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        Ok(EventAnswer { status: response.status().as_u16(), retry_after })
    }
}

/// `X-Waggle-User` (the Nextcloud user the request acts for; empty = system) and `X-Waggle-Instance`.
pub(crate) fn set_identity(
    headers: &mut HeaderMap,
    user: &str,
    instance: &HeaderValue,
) -> Result<(), SaasError> {
    headers.insert(headers::X_WAGGLE_USER, HeaderValue::from_str(user).map_err(|_| SaasError::HeaderValue)?);
    headers.insert(headers::X_WAGGLE_INSTANCE, instance.clone());
    Ok(())
}

/// A refusal from an answer's `{"error":{"code","message"}}`.
fn refusal(status: u16, body: &[u8]) -> SaasError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let text = |k: &str| v["error"][k].as_str().unwrap_or("").chars().take(200).collect::<String>();
    SaasError::Refused { status, code: text("code"), message: text("message") }
}
