//! The streaming forwarder: one pooled hyper-util client (rustls for https), built once and kept in
//! state. Bodies stream both ways; a header timeout bounds the wait for the upstream's answer and an
//! idle timeout bounds every pause between body chunks. SSE responses pass through unbuffered.

use std::time::Duration;

use axum::body::Body;
use http::header::{self, HeaderValue};
use http::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower_http::timeout::TimeoutBody;

use super::body::UpstreamBody;
use super::{ProxyError, is_event_stream, strip_hop_by_hop};
use crate::config::ProxySettings;

/// HTTP(S) connector with the platform trust store; shared by the HTTP client and the WebSocket bridge.
pub(crate) type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// The forwarder (cheap to clone: the pool is shared).
#[derive(Clone)]
pub(crate) struct Forwarder {
    client: Client<Connector, UpstreamBody>,
    connector: Connector,
    header_timeout: Duration,
    idle_timeout: Duration,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder").field("header_timeout", &self.header_timeout).finish_non_exhaustive()
    }
}

impl Forwarder {
    /// Builds the pooled client.
    pub(crate) fn new(settings: &ProxySettings) -> anyhow::Result<Self> {
        crate::tls::install_provider();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(settings.header_timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_platform_verifier()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(64)
            .build(connector.clone());
        Ok(Self {
            client,
            connector,
            header_timeout: settings.header_timeout,
            idle_timeout: settings.idle_timeout,
        })
    }

    /// Sends `request` and returns the upstream response with a streaming, idle-timed body and
    /// hop-by-hop headers removed. SSE responses get `X-Accel-Buffering: no` and `no-transform`.
    pub(crate) async fn forward(&self, request: Request<UpstreamBody>) -> Result<Response<Body>, ProxyError> {
        let response = tokio::time::timeout(self.header_timeout, self.client.request(request))
            .await
            .map_err(|_| ProxyError::Timeout)?
            .map_err(|e| ProxyError::Unreachable(Box::new(e)))?;
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        if is_event_stream(&parts.headers) {
            parts.headers.insert(crate::headers::X_ACCEL_BUFFERING, HeaderValue::from_static("no"));
            parts.headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-transform"));
            parts.headers.remove(header::CONTENT_LENGTH);
        }
        let body = Body::new(TimeoutBody::new(self.idle_timeout, body));
        Ok(Response::from_parts(parts, body))
    }

    /// The connector, for upstream connections the pooled client does not make (WebSocket upgrades).
    pub(crate) fn connector(&self) -> Connector {
        self.connector.clone()
    }
}
