//! Forwarding a verified `/nc` call to Nextcloud: the body is read against the signed digest
//! (spooled when large), only allow-listed request headers pass (`headers::CALLBACK_PASS_THROUGH`
//! and `OC-*`), `Destination` is checked like the target and rewritten onto `NEXTCLOUD_URL`, the
//! call is made as the user with AppAPI impersonation, and the response streams back without
//! Nextcloud's session cookies.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use url::Url;

use super::policy::CallbackPolicy;
use crate::auth::signature::{Rejection, VerifiedCall};
use crate::config::Settings;
use crate::error::ApiError;
use crate::headers;
use crate::nextcloud::NcClient;
use crate::nextcloud::target::{self, Target};
use crate::proxy::body::{BodyLimits, spool};
use crate::proxy::http::Forwarder;
use crate::proxy::{ProxyError, strip_hop_by_hop};
use crate::signing;

/// What forwarding needs, built once.
#[derive(Debug)]
pub(crate) struct NcForwarder {
    nc: NcClient,
    forwarder: Forwarder,
    base: Url,
    limits: BodyLimits,
    spool_dir: std::path::PathBuf,
}

impl NcForwarder {
    /// From the settings and the shared clients.
    pub(crate) fn new(settings: &Settings, nc: NcClient, forwarder: Forwarder) -> Self {
        Self {
            nc,
            forwarder,
            base: settings.nextcloud.url.clone(),
            limits: BodyLimits {
                memory: settings.proxy.memory_body_bytes,
                cap: settings.callback.body_cap_bytes,
            },
            spool_dir: settings.app.storage_dir.join("spool"),
        }
    }

    /// Reads the body against the signed digest, then forwards the call to Nextcloud as its user.
    /// Returns the response and the number of body bytes forwarded.
    pub(crate) async fn forward(
        &self,
        policy: &CallbackPolicy,
        call: &VerifiedCall,
        target: &Target,
        inbound: &HeaderMap,
        body: Body,
    ) -> Result<(Response, u64), ApiError> {
        let declared =
            inbound.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
        let spooled = spool(body, declared, self.limits, &self.spool_dir).await?;
        if !signing::digest_eq(spooled.sha256(), &call.digest) {
            return Err(call.refuse(&Rejection::DigestMismatch));
        }
        let bytes_in = spooled.len();

        let mut out = self.nc.appapi_headers(&call.user);
        for name in &headers::CALLBACK_PASS_THROUGH {
            for value in inbound.get_all(name) {
                out.append(name.clone(), value.clone());
            }
        }
        for (name, value) in inbound {
            if name.as_str().starts_with(headers::OC_PREFIX) {
                out.append(name.clone(), value.clone());
            }
        }
        if target.is_ocs() {
            out.insert(headers::OCS_APIREQUEST, HeaderValue::from_static("true"));
        }
        if let Some(destination) = inbound.get(headers::DESTINATION) {
            out.insert(headers::DESTINATION, self.rewrite_destination(policy, destination, &call.user)?);
        }
        out.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes_in));

        let mut upstream = http::Request::builder()
            .method(call.method.clone())
            .uri(self.uri(&target.path_and_query())?)
            .body(spooled.into_upstream().await?)
            .map_err(|e| ProxyError::Build(e.to_string()))?;
        *upstream.headers_mut() = out;
        let mut response = self.forwarder.forward(upstream).await?;
        let h = response.headers_mut();
        strip_hop_by_hop(h);
        // Nextcloud's session cookies belong to the impersonated session; they never leave.
        h.remove(header::SET_COOKIE);
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok((response, bytes_in))
    }

    /// `path_and_query` (canonical, from the signed target) on `NEXTCLOUD_URL`.
    fn uri(&self, path_and_query: &str) -> Result<http::Uri, ProxyError> {
        format!("{}{}", self.base.as_str(), path_and_query.trim_start_matches('/'))
            .parse()
            .map_err(|_| ProxyError::Build("target".into()))
    }

    /// `Destination` may be a path or an absolute URL; its path must pass the same canonical and
    /// scope checks as the target, and it is rewritten onto the Nextcloud URL Waggle uses.
    fn rewrite_destination(
        &self,
        policy: &CallbackPolicy,
        value: &HeaderValue,
        user: &str,
    ) -> Result<HeaderValue, ApiError> {
        let refuse = |code: &'static str| ApiError::Forbidden {
            code,
            message: "the Destination header is not allowed".to_owned(),
        };
        let raw = value.to_str().map_err(|_| refuse("destination_invalid"))?;
        let path = match raw.parse::<http::Uri>() {
            Ok(uri) if uri.scheme().is_some() => uri.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
            _ => raw.to_owned(),
        };
        let parsed = target::parse(&path).map_err(|e| refuse(e.code()))?;
        policy.check_target(&parsed, user).map_err(|e| refuse(e.code()))?;
        let rewritten = format!("{}{}", self.base.as_str(), parsed.path_and_query().trim_start_matches('/'));
        HeaderValue::from_str(&rewritten).map_err(|_| refuse("destination_invalid"))
    }
}
