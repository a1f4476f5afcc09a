//! The router: every route group with its access policy, and the whole middleware stack in one place.

use axum::Router;
use axum::http::{HeaderValue, Response, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{any, get, post, put};
use tower::ServiceBuilder;
use tower::util::MapResponseLayer;
use tower_http::auth::AsyncRequireAuthorizationLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::{SetSensitiveRequestHeadersLayer, SetSensitiveResponseHeadersLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::auth::appapi::CredentialCheck;
use crate::auth::signature::{SignatureAuth, SignedRoute};
use crate::auth::{Access, AppApiAuth};
use crate::error::ApiError;
use crate::proxy::body::BodyLimits;
use crate::proxy::framing::{Framing, php_proxy_framing};
use crate::state::AppState;
use crate::{admin, callbacks, events, headers, lifecycle, saas, spa, telemetry, tenant};

/// Builds the complete router for `state`.
pub(crate) fn router(state: AppState) -> Router {
    let settings = state.settings();
    let check = CredentialCheck::new(&settings.app.id, settings.app.secret_bytes());
    let auth = |access: Access| {
        let nc = (access == Access::Admin).then(|| state.nc().clone());
        AsyncRequireAuthorizationLayer::new(AppApiAuth::new(check.clone(), access, nc))
    };
    let signed = |route: SignedRoute| {
        AsyncRequireAuthorizationLayer::new(SignatureAuth::new(state.verifier().clone(), route))
    };
    // Lifecycle and admin handlers are short; streaming groups (added later) get no global timeout.
    let short =
        || TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, settings.server.lifecycle_timeout);

    // Auth goes on with `route_layer`, so a path no route matches stays 404 instead of becoming 401.
    let heartbeat = Router::new().route("/heartbeat", get(lifecycle::heartbeat));
    let lifecycle = Router::new()
        .route("/init", post(lifecycle::init))
        .route("/enabled", put(lifecycle::enabled))
        .route_layer(auth(Access::System))
        .layer(short());
    // The UI (src/spa.rs): assets are PUBLIC in the manifest (system context allowed), the documents
    // need a logged-in user.
    let assets = spa::asset_routes().route_layer(auth(Access::System));
    let shell = spa::page_routes(std::sync::Arc::new(spa::Spa::new(&settings.nextcloud.public_url)))
        .route_layer(auth(Access::User));
    // Answers to requests that came through AppAPI's PHP proxy get a Content-Length (AppAPI 5.0.2
    // corrupts chunked ones); HaRP and direct requests stream.
    let framing = Framing {
        limits: BodyLimits {
            memory: settings.proxy.memory_body_bytes,
            cap: settings.proxy.php_proxy_response_cap_bytes,
        },
        dir: settings.app.storage_dir.join("spool"),
    };
    let php_proxy_framing = || axum::middleware::from_fn_with_state(framing.clone(), php_proxy_framing);
    // Streaming: no timeout layer here; the forwarder bounds header waits and body idleness.
    let api = Router::new()
        .route("/api/{*path}", any(saas::routes::forward))
        .route("/auth/{*path}", any(saas::routes::forward))
        .route_layer(auth(Access::User))
        .layer(php_proxy_framing());
    // PUBLIC in the manifest: AppAPI still signs the hop (empty user), checked first (the outer
    // route layer); then the SaaS's own signature (the inner one). Streaming, so no timeout layer.
    let callbacks = Router::new()
        .route("/nc/{*path}", any(callbacks::routes::callback))
        .route_layer(signed(SignedRoute::Callback))
        .route_layer(auth(Access::System))
        .layer(php_proxy_framing());
    // webhook_listeners deliveries: AppAPI calls this directly (a relative uri), never through the
    // proxy, so it is not in the manifest; it still carries the AppAPI header (the triggering user).
    let hooks = Router::new()
        .route("/hooks/nextcloud", post(events::ingest::deliver))
        .route_layer(auth(Access::System))
        .layer(short());
    // PUBLIC: the SaaS announces a new key, signed with the current one.
    let announcements = Router::new()
        .route("/saas/keys/announce", post(tenant::routes::announce))
        .route_layer(signed(SignedRoute::KeyAnnounce))
        .route_layer(auth(Access::System))
        .layer(short());
    let admin = Router::new()
        .route("/admin/status", get(admin::status))
        .route("/admin/tenant-key", get(tenant::routes::status))
        .route("/admin/tenant-key/rotate", post(tenant::routes::rotate))
        .route("/admin/tenant-key/bootstrap", post(tenant::routes::bootstrap))
        .route("/admin/events", get(events::routes::status))
        .route("/admin/events/dead-letters", get(events::routes::dead_letters))
        .route("/admin/events/dead-letters/{id}/replay", post(events::routes::replay))
        .route("/admin/events/resume", post(events::routes::resume))
        .route("/admin/sync", post(events::routes::sync_now))
        .route_layer(auth(Access::Admin))
        .layer(short());

    // The middleware stack, outermost first. The order matters:
    // 1. catch panics, so even a bug answers with our JSON error shape;
    // 2. assign the request id (reusing `AA-REQUEST-ID`) before the span is made, so the span has it;
    // 3. mark secret-bearing request headers sensitive before anything could trace them;
    // 4. one span per request; its response hook also logs the `ErrorReport` a handler (or an auth
    //    layer) attached — the one place failures are logged;
    // 5. echo the request id on the response;
    // 6. mark `Set-Cookie` sensitive on the way out;
    // 7. security headers, and `Cache-Control: no-store` where a handler set none (Nextcloud's proxy
    //    would otherwise add a one-hour cache).
    let stack = ServiceBuilder::new()
        .layer(CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
            ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()
        }))
        .layer(SetRequestIdLayer::new(headers::X_REQUEST_ID, telemetry::MakeWaggleRequestId))
        .layer(SetSensitiveRequestHeadersLayer::new(headers::SENSITIVE_REQUEST))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(telemetry::make_span)
                .on_request(())
                .on_response(telemetry::on_response)
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::new(headers::X_REQUEST_ID))
        .layer(SetSensitiveResponseHeadersLayer::new([header::SET_COOKIE]))
        .layer(MapResponseLayer::new(security_headers));
    Router::new()
        .merge(heartbeat)
        .merge(lifecycle)
        .merge(assets)
        .merge(shell)
        .merge(admin)
        .merge(api)
        .merge(callbacks)
        .merge(announcements)
        .merge(hooks)
        .fallback(|| async { ApiError::NotFound })
        .layer(stack)
        .with_state(state)
}

/// `nosniff`, `no-referrer`, and `Cache-Control: no-store` unless the handler set one. One plain
/// function over the response (no boxing), as every response passes through it.
fn security_headers<B>(mut response: Response<B>) -> Response<B> {
    let h = response.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
