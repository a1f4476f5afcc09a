//! The only place header names are spelled. Every module refers to these constants, so a grep for a
//! header name lands here, and the sensitive/internal lists below stay complete.

use http::HeaderName;

// --- AppAPI and HaRP (inbound from Nextcloud, outbound to Nextcloud) -------------------------------

/// `AUTHORIZATION-APP-API`: base64 of `uid:APP_SECRET`; a bearer secret.
pub const AUTHORIZATION_APP_API: HeaderName = HeaderName::from_static("authorization-app-api");
/// `EX-APP-ID`: the registered app id.
pub const EX_APP_ID: HeaderName = HeaderName::from_static("ex-app-id");
/// `EX-APP-VERSION`: the registered app version (mandatory on calls to Nextcloud).
pub const EX_APP_VERSION: HeaderName = HeaderName::from_static("ex-app-version");
/// `AA-VERSION`: AppAPI version (HaRP sends the literal `32`; never compared).
pub const AA_VERSION: HeaderName = HeaderName::from_static("aa-version");
/// `AA-REQUEST-ID`: Nextcloud's request id, reused as ours when present.
pub const AA_REQUEST_ID: HeaderName = HeaderName::from_static("aa-request-id");
/// `HARP-SHARED-KEY`: HaRP's shared key; it reaches the app on AppAPI-originated calls under HaRP.
pub const HARP_SHARED_KEY: HeaderName = HeaderName::from_static("harp-shared-key");
/// `EX-APP-HOST`: set by AppAPI on HaRP daemons.
pub const EX_APP_HOST: HeaderName = HeaderName::from_static("ex-app-host");
/// `EX-APP-PORT`: set by AppAPI on HaRP daemons.
pub const EX_APP_PORT: HeaderName = HeaderName::from_static("ex-app-port");
/// `OCS-APIRequest`: required by OCS routes (412 without it).
pub const OCS_APIREQUEST: HeaderName = HeaderName::from_static("ocs-apirequest");
/// `X-Origin-IP`: client address as set by the PHP proxy.
pub const X_ORIGIN_IP: HeaderName = HeaderName::from_static("x-origin-ip");

// --- Waggle's own -----------------------------------------------------------------------------------

/// `X-Waggle-Hook-Secret`: the per-install secret webhook_listeners echoes on every delivery.
pub const X_WAGGLE_HOOK_SECRET: HeaderName = HeaderName::from_static("x-waggle-hook-secret");
/// `X-Request-Id`: the request id returned on every response.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `X-HTTP-Method-Override`: the real verb of a tunnelled request (the PHP proxy passes only
/// GET/POST/PUT/DELETE).
pub const X_HTTP_METHOD_OVERRIDE: HeaderName = HeaderName::from_static("x-http-method-override");
/// `X-Waggle-User`: the Nextcloud user a signed request acts for (empty = system context).
pub const X_WAGGLE_USER: HeaderName = HeaderName::from_static("x-waggle-user");
/// `X-Waggle-Instance`: the Nextcloud instance id, on requests Waggle sends to the SaaS.
pub const X_WAGGLE_INSTANCE: HeaderName = HeaderName::from_static("x-waggle-instance");
/// `X-Waggle-Target`: on `/nc` callbacks, the Nextcloud path and query the SaaS wants called.
pub const X_WAGGLE_TARGET: HeaderName = HeaderName::from_static("x-waggle-target");

// --- Proxying and WebDAV ---------------------------------------------------------------------------

/// `Destination` (WebDAV MOVE/COPY): signed on `/nc` and rewritten onto `NEXTCLOUD_URL`.
pub const DESTINATION: HeaderName = HeaderName::from_static("destination");
/// `Depth` (WebDAV).
pub const DEPTH: HeaderName = HeaderName::from_static("depth");
/// `Overwrite` (WebDAV MOVE/COPY).
pub const OVERWRITE: HeaderName = HeaderName::from_static("overwrite");
/// `If` (WebDAV lock tokens and entity tags).
pub const IF: HeaderName = HeaderName::from_static("if");
/// `Lock-Token` (WebDAV UNLOCK).
pub const LOCK_TOKEN: HeaderName = HeaderName::from_static("lock-token");
/// `Timeout` (WebDAV LOCK).
pub const TIMEOUT: HeaderName = HeaderName::from_static("timeout");
/// `Brief` (WebDAV, Microsoft extension Nextcloud honours).
pub const BRIEF: HeaderName = HeaderName::from_static("brief");
/// `Prefer` (RFC 7240, e.g. `return=minimal` on PROPFIND).
pub const PREFER: HeaderName = HeaderName::from_static("prefer");
/// `X-OC-Mtime`: the modification time of an upload.
pub const X_OC_MTIME: HeaderName = HeaderName::from_static("x-oc-mtime");
/// `X-OC-Ctime`: the creation time of an upload.
pub const X_OC_CTIME: HeaderName = HeaderName::from_static("x-oc-ctime");
/// The prefix of Nextcloud's chunked-upload headers (`OC-Total-Length`, …), passed on `/nc`.
pub const OC_PREFIX: &str = "oc-";
/// `Sec-Fetch-Site`: the browser's view of where a request comes from (CSRF check).
pub const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");
/// `X-Accel-Buffering: no` keeps front proxies from buffering SSE.
pub const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");
/// `X-Forwarded-Proto`, set by Waggle towards the SaaS.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`, set by Waggle towards the SaaS.
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `X-Forwarded-For`, set by Waggle towards the SaaS.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `Keep-Alive` (hop-by-hop, not in the `http` crate's constants).
pub const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
/// `Proxy-Connection` (hop-by-hop, non-standard).
pub const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

// --- Signatures (RFC 9421, RFC 9530) -----------------------------------------------------------------

/// `Signature` (RFC 9421).
pub const SIGNATURE: HeaderName = HeaderName::from_static("signature");
/// `Signature-Input` (RFC 9421).
pub const SIGNATURE_INPUT: HeaderName = HeaderName::from_static("signature-input");
/// `Content-Digest` (RFC 9530).
pub const CONTENT_DIGEST: HeaderName = HeaderName::from_static("content-digest");

// --- Standard Webhooks (event delivery) ---------------------------------------------------------------

/// `webhook-id`: the message id, stable across retries (the receiver's idempotency key).
pub const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
/// `webhook-timestamp`: unix seconds of the delivery attempt.
pub const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
/// `webhook-signature`: space-separated `v1,<base64>` entries.
pub const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");

/// The request headers a `/nc` callback may pass to Nextcloud (besides `Destination`, which is
/// rewritten, and the `OC-*` family); everything else the SaaS sent is dropped.
pub const CALLBACK_PASS_THROUGH: [HeaderName; 19] = [
    http::header::ACCEPT,
    http::header::ACCEPT_LANGUAGE,
    http::header::CONTENT_TYPE,
    http::header::CONTENT_LANGUAGE,
    DEPTH,
    OVERWRITE,
    IF,
    http::header::IF_MATCH,
    http::header::IF_NONE_MATCH,
    http::header::IF_MODIFIED_SINCE,
    http::header::IF_UNMODIFIED_SINCE,
    http::header::IF_RANGE,
    http::header::RANGE,
    LOCK_TOKEN,
    TIMEOUT,
    BRIEF,
    PREFER,
    X_OC_MTIME,
    X_OC_CTIME,
];

/// Request headers whose values are secrets or credentials: marked sensitive before tracing and
/// never logged.
pub const SENSITIVE_REQUEST: [HeaderName; 6] = [
    AUTHORIZATION_APP_API,
    http::header::AUTHORIZATION,
    http::header::COOKIE,
    HARP_SHARED_KEY,
    SIGNATURE,
    SIGNATURE_INPUT,
];
