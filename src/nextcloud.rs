//! `NcClient`: Waggle's own calls to Nextcloud (OCS), as the app (empty user) or impersonating a user
//! through AppAPI. Built once; cheap to clone into whoever calls Nextcloud. Nextcloud's instance id
//! is a value of its own (`nextcloud::instance`), resolved once; canonical `/nc` targets are in
//! `nextcloud::target`.
//!
//! Every call carries `AUTHORIZATION-APP-API = base64(user:APP_SECRET)`, `EX-APP-ID`,
//! `EX-APP-VERSION` (Nextcloud answers 401 without it) and `AA-VERSION`; OCS calls add
//! `OCS-APIRequest: true` (412 without it) and `Accept: application/json`. There is no cookie store:
//! Nextcloud sets a session cookie on every answer that must never be replayed for another user.

pub mod admins;
pub mod instance;
pub mod target;

pub(crate) use instance::InstanceId;

use std::sync::Arc;

use base64::Engine as _;
use http::{HeaderMap, HeaderValue, Method};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use crate::config::{AppSettings, NextcloudSettings};
use crate::error::ApiError;
use crate::headers;

/// Why a call to Nextcloud failed.
#[derive(Debug, thiserror::Error)]
pub enum NcError {
    /// Connection refused, reset, DNS, TLS…
    #[error("cannot reach Nextcloud: {0}")]
    Transport(#[source] reqwest::Error),
    /// No answer in time.
    #[error("Nextcloud did not answer in time")]
    Timeout,
    /// A non-2xx answer without an OCS envelope.
    #[error("Nextcloud answered HTTP {status}")]
    Status {
        /// HTTP status.
        status: u16,
    },
    /// An OCS failure, possibly inside HTTP 200 (`ocs.meta.status != "ok"`).
    #[error("OCS call failed: statuscode {statuscode}, {message}")]
    Ocs {
        /// HTTP status of the answer.
        status: u16,
        /// `ocs.meta.statuscode`.
        statuscode: i64,
        /// `ocs.meta.message`.
        message: String,
    },
    /// The answer was not what the call expects.
    #[error("unexpected answer from Nextcloud: {0}")]
    Decode(String),
}

impl NcError {
    fn from_reqwest(e: reqwest::Error) -> Self {
        if e.is_timeout() { Self::Timeout } else { Self::Transport(e) }
    }

    /// The HTTP status Nextcloud answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status } | Self::Ocs { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The body of AppAPI's ExApp status call (`PUT …/ex-app/status`): progress, or the init error.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
enum InitReport<'a> {
    Progress { progress: u8 },
    Failed { error: &'a str },
}

impl From<NcError> for ApiError {
    /// Every failure of a call to Nextcloud, timeouts included, is Nextcloud's side: 502.
    fn from(e: NcError) -> Self {
        ApiError::Upstream {
            code: "nextcloud_unavailable",
            message: "Nextcloud could not be reached or refused the call".into(),
            source: Box::new(e),
        }
    }
}

/// Parses an OCS envelope (`{"ocs":{"meta":{…},"data":…}}`) and returns `data`.
///
/// Success is `meta.status == "ok"` with statuscode 100 (v1) or 200 (v2); anything else is an
/// [`NcError::Ocs`], even inside HTTP 200. Pure, so it is unit-tested and fuzzed.
pub fn parse_ocs(http_status: u16, body: &[u8]) -> Result<Value, NcError> {
    let envelope: Value = serde_json::from_slice(body).map_err(|_| {
        if (200..300).contains(&http_status) {
            NcError::Decode("OCS answer is not JSON".to_owned())
        } else {
            NcError::Status { status: http_status }
        }
    })?;
    let Some(ocs) = envelope.get("ocs") else {
        return Err(if (200..300).contains(&http_status) {
            NcError::Decode("no `ocs` envelope".to_owned())
        } else {
            NcError::Status { status: http_status }
        });
    };
    let meta = ocs.get("meta").ok_or_else(|| NcError::Decode("no `ocs.meta`".to_owned()))?;
    let status = meta.get("status").and_then(Value::as_str).unwrap_or("");
    let statuscode = meta.get("statuscode").and_then(Value::as_i64).unwrap_or(0);
    let ok = status == "ok" && matches!(statuscode, 100 | 200) && (200..300).contains(&http_status);
    if !ok {
        let message = meta.get("message").and_then(Value::as_str).unwrap_or("").chars().take(200).collect();
        return Err(NcError::Ocs { status: http_status, statuscode, message });
    }
    Ok(ocs.get("data").cloned().unwrap_or(Value::Null))
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    app_id: String,
    app_version: String,
    aa_version: String,
    secret: SecretString,
    settings: NextcloudSettings,
}

/// The Nextcloud client (cheap to clone).
#[derive(Clone)]
pub(crate) struct NcClient(Arc<Inner>);

impl std::fmt::Debug for NcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NcClient").field("base", &self.0.base.as_str()).finish_non_exhaustive()
    }
}

impl NcClient {
    /// Builds the client once: timeouts from settings, no redirects, no cookies.
    pub(crate) fn new(app: &AppSettings, settings: &NextcloudSettings) -> anyhow::Result<Self> {
        crate::tls::install_provider();
        let http = reqwest::Client::builder()
            .user_agent(concat!("waggle/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(settings.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self(Arc::new(Inner {
            http,
            base: settings.url.clone(),
            app_id: app.id.clone(),
            app_version: app.version.clone(),
            aa_version: app.aa_version.clone(),
            secret: app.secret.clone(),
            settings: settings.clone(),
        })))
    }

    /// The AppAPI headers for acting as `user` (empty = system context). Added in this one place.
    pub(crate) fn appapi_headers(&self, user: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{user}:{}", self.0.secret.expose_secret()));
        let mut auth = HeaderValue::from_str(&token).expect("base64 is a valid header value");
        auth.set_sensitive(true);
        h.insert(headers::AUTHORIZATION_APP_API, auth);
        h.insert(headers::EX_APP_ID, header_value(&self.0.app_id));
        h.insert(headers::EX_APP_VERSION, header_value(&self.0.app_version));
        if !self.0.aa_version.is_empty() {
            h.insert(headers::AA_VERSION, header_value(&self.0.aa_version));
        }
        h
    }

    /// Absolute URL of a path relative to the Nextcloud root (`/ocs/v2.php/...`).
    pub(crate) fn url(&self, path_and_query: &str) -> Result<Url, NcError> {
        self.0
            .base
            .join(path_and_query.trim_start_matches('/'))
            .map_err(|e| NcError::Decode(format!("bad Nextcloud path: {e}")))
    }

    /// Calls an OCS endpoint and returns the decoded `data`.
    pub(crate) async fn ocs<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        user: &str,
        body: Option<&Value>,
    ) -> Result<T, NcError> {
        let data = self.ocs_value(method, path, user, body, self.0.settings.timeout).await?;
        serde_json::from_value(data).map_err(|e| NcError::Decode(e.to_string()))
    }

    async fn ocs_value(
        &self,
        method: Method,
        path: &str,
        user: &str,
        body: Option<&Value>,
        timeout: std::time::Duration,
    ) -> Result<Value, NcError> {
        let mut request = self
            .0
            .http
            .request(method, self.url(path)?)
            .headers(self.appapi_headers(user))
            .header(headers::OCS_APIREQUEST, "true")
            .header(http::header::ACCEPT, "application/json")
            .timeout(timeout);
        if let Some(b) = body {
            request = request.json(b);
        }
        let response = request.send().await.map_err(NcError::from_reqwest)?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(NcError::from_reqwest)?;
        parse_ocs(status, &bytes)
    }

    /// Reports init progress (0–100) to AppAPI. Nextcloud answers `progress: 100` only after calling
    /// `/heartbeat` and `/enabled` on us, hence the long timeout.
    pub(crate) async fn report_init_progress(&self, progress: u8) -> Result<(), NcError> {
        self.put_status(&InitReport::Progress { progress: progress.min(100) }).await
    }

    /// Reports an init failure; Nextcloud shows it to the admin.
    pub(crate) async fn report_init_error(&self, message: &str) -> Result<(), NcError> {
        self.put_status(&InitReport::Failed { error: message }).await
    }

    async fn put_status(&self, report: &InitReport<'_>) -> Result<(), NcError> {
        let path = "/ocs/v1.php/apps/app_api/ex-app/status";
        let body = serde_json::to_value(report).map_err(|e| NcError::Decode(e.to_string()))?;
        self.ocs_value(Method::PUT, path, "", Some(&body), self.0.settings.status_timeout).await.map(drop)
    }

    /// Whether `user` is a member of the `admin` group (looked up as that user).
    pub(crate) async fn is_admin(&self, user: &str) -> Result<bool, NcError> {
        let path = format!("/ocs/v2.php/cloud/users/{}", encode_segment(user));
        // Nextcloud refuses to impersonate a user it does not know (401/997): not an admin.
        let data: Value = match self.ocs(Method::GET, &path, user, None).await {
            Ok(data) => data,
            Err(NcError::Ocs { statuscode: 997 | 998 | 404, .. } | NcError::Status { status: 401 | 404 }) => {
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        let groups = data
            .get("groups")
            .and_then(Value::as_array)
            .ok_or_else(|| NcError::Decode("no groups".to_owned()))?;
        Ok(groups.iter().any(|g| g.as_str() == Some("admin")))
    }
}

impl NcClient {
    /// Looks Nextcloud's instance id up: the session cookie the login page sets (named after the
    /// instance id), else `theming`/`core` `instanceid` in the capabilities. Anonymous, so it cannot
    /// count as a failed AppAPI login. An error when neither source has one.
    pub(crate) async fn discover_instance_id(&self) -> Result<String, NcError> {
        let response = self
            .0
            .http
            .get(self.url("/index.php/login")?)
            .timeout(self.0.settings.timeout)
            .send()
            .await
            .map_err(NcError::from_reqwest)?;
        if let Some(id) = instance::from_set_cookies(response.headers()) {
            return Ok(id);
        }
        let data: Value = self.ocs(Method::GET, "/ocs/v2.php/cloud/capabilities", "", None).await?;
        let caps = data.get("capabilities").unwrap_or(&Value::Null);
        ["theming", "core"]
            .iter()
            .filter_map(|k| caps.get(k).and_then(|c| c.get("instanceid")).and_then(Value::as_str))
            .find(|id| instance::is_instance_id(id))
            .map(str::to_owned)
            .ok_or_else(|| {
                NcError::Decode(
                    "Nextcloud revealed no instance id (no session cookie on /index.php/login, none in the capabilities)"
                        .to_owned(),
                )
            })
    }

    /// Whether AppAPI has this app enabled (`GET ex-app/state`, answered even while disabled).
    pub(crate) async fn enabled_state(&self) -> Result<bool, NcError> {
        let data: Value = self.ocs(Method::GET, "/ocs/v1.php/apps/app_api/ex-app/state", "", None).await?;
        Ok(data.as_i64() == Some(1) || data.as_bool() == Some(true) || data.as_str() == Some("1"))
    }
}

/// A boolean as Nextcloud's OCS answers spell it (`true`, `"1"`, `"true"`, `1`); absent counts as
/// true (an account is enabled unless it says otherwise).
pub(crate) fn ocs_bool(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "1" || s == "true",
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        _ => true,
    }
}

/// Percent-encodes one path segment (everything but RFC 3986 unreserved characters).
pub(crate) fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ocs_success_returns_data() {
        let v1 = br#"{"ocs":{"meta":{"status":"ok","statuscode":100,"message":"OK"},"data":{"a":1}}}"#;
        assert_eq!(parse_ocs(200, v1).unwrap()["a"], 1);
        let v2 = br#"{"ocs":{"meta":{"status":"ok","statuscode":200,"message":"OK"},"data":[]}}"#;
        assert!(parse_ocs(200, v2).unwrap().is_array());
    }

    #[test]
    fn ocs_failure_inside_http_200_is_an_error() {
        let body = br#"{"ocs":{"meta":{"status":"failure","statuscode":997,"message":"Current user is not logged in"},"data":[]}}"#;
        match parse_ocs(200, body) {
            Err(NcError::Ocs { statuscode: 997, status: 200, message }) => {
                assert!(message.contains("not logged in"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn non_json_and_non_ocs_answers_are_typed() {
        assert!(matches!(
            parse_ocs(412, br#"{"message":"CSRF check failed"}"#),
            Err(NcError::Status { status: 412 })
        ));
        assert!(matches!(parse_ocs(502, b"<html>"), Err(NcError::Status { status: 502 })));
        assert!(matches!(parse_ocs(200, b"<xml/>"), Err(NcError::Decode(_))));
        assert!(matches!(
            parse_ocs(
                404,
                br#"{"ocs":{"meta":{"status":"failure","statuscode":404,"message":""},"data":[]}}"#
            ),
            Err(NcError::Ocs { statuscode: 404, status: 404, .. })
        ));
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(encode_segment("alice"), "alice");
        assert_eq!(encode_segment("a b/c@d"), "a%20b%2Fc%40d");
    }
}
