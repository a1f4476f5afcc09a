//! The error table: every variant and every module error's conversion, with its status and code.
//! A new error path adds a row here.

use super::*;
use crate::auth::AuthFailure;
use crate::auth::signature::{Rejection, SignatureVerifier, SignedRoute};
use crate::callbacks::policy::PolicyError;
use crate::events::directory::DirectoryError;
use crate::events::reconcile::ReconcileError;
use crate::nextcloud::NcError;
use crate::nextcloud::admins::AdminError;
use crate::nextcloud::instance::InstanceError;
use crate::nextcloud::target::TargetError;
use crate::proxy::ProxyError;
use crate::saas::SaasError;
use crate::store::StoreError;
use crate::tenant::ProvisionError;

fn refused(status: u16) -> SaasError {
    SaasError::Refused { status, code: "pairing_required".into(), message: "enter the code".into() }
}

fn sqlite() -> StoreError {
    StoreError::Sqlite(rusqlite::Error::InvalidQuery)
}

#[test]
fn every_variant_has_a_deliberate_status_and_code() {
    let table: Vec<(ApiError, u16, &str)> = vec![
        // AppAPI authentication.
        (AuthFailure::MissingHeader.into(), 401, "unauthorized"),
        (AuthFailure::WrongSecret.into(), 401, "unauthorized"),
        (AuthFailure::UserRequired.into(), 401, "user_required"),
        (AuthFailure::NotAdmin.into(), 403, "admin_required"),
        // The client's other mistakes.
        (ApiError::Forbidden { code: "csrf", message: "x".into() }, 403, "csrf"),
        (ApiError::BadRequest("x".into()), 400, "bad_request"),
        (ApiError::Invalid { code: "instance_mismatch", message: "x".into() }, 400, "instance_mismatch"),
        (ApiError::NotFound, 404, "not_found"),
        (ApiError::InvalidHookSecret, 401, "invalid_hook_secret"),
        (ApiError::InvalidSignature { reason: "sig_mac_mismatch" }, 401, "invalid_signature"),
        (ApiError::RateLimited { code: "rate_limited", retry_after: Some(5) }, 429, "rate_limited"),
        // Our state.
        (ApiError::NotReady("tenant_key_missing"), 503, "tenant_key_missing"),
        (ApiError::Internal(anyhow::anyhow!("boom")), 500, "internal"),
        (sqlite().into(), 503, "store_unavailable"),
        // Nextcloud: every failure is its side.
        (NcError::Timeout.into(), 502, "nextcloud_unavailable"),
        (NcError::Status { status: 500 }.into(), 502, "nextcloud_unavailable"),
        // The shared forwarder.
        (ProxyError::Timeout.into(), 504, "upstream_timeout"),
        (ProxyError::Unreachable("x".into()).into(), 502, "upstream_unreachable"),
        (ProxyError::TooLarge { cap: 1 }.into(), 413, "payload_too_large"),
        (ProxyError::ClientBody("x".into()).into(), 400, "request_body_error"),
        (ProxyError::ResponseTooLarge { cap: 1 }.into(), 502, "upstream_response_too_large"),
        (ProxyError::UpstreamBody("x".into()).into(), 502, "upstream_body_error"),
        (ProxyError::Spool(std::io::Error::other("disk")).into(), 500, "internal"),
        // The SaaS client.
        (SaasError::NotConfigured.into(), 503, "saas_not_configured"),
        (SaasError::NoKey.into(), 503, "tenant_key_missing"),
        (SaasError::NoInstance.into(), 503, "instance_id_unknown"),
        (SaasError::Timeout.into(), 504, "upstream_timeout"),
        (SaasError::BadUrl("x".into()).into(), 502, "upstream_unreachable"),
        (refused(403).into(), 409, "saas_refused"),
        (refused(500).into(), 502, "upstream_invalid"),
        (SaasError::Invalid("key answer is not valid JSON").into(), 502, "upstream_invalid"),
        (SaasError::HeaderValue.into(), 400, "bad_request"),
        // Provisioning: a network failure is never a conflict; a store failure is 503.
        (ProvisionError::Saas(SaasError::Timeout).into_api("rotation_failed"), 504, "upstream_timeout"),
        (ProvisionError::Saas(refused(403)).into_api("bootstrap_failed"), 409, "bootstrap_failed"),
        (ProvisionError::Saas(refused(503)).into_api("bootstrap_failed"), 502, "upstream_invalid"),
        (ProvisionError::EnvironmentManaged.into_api("rotation_failed"), 409, "rotation_failed"),
        (ProvisionError::NoKey.into_api("rotation_failed"), 409, "rotation_failed"),
        (ProvisionError::Mismatch("x").into_api("rotation_failed"), 409, "rotation_failed"),
        (ProvisionError::Answer("x").into_api("rotation_failed"), 502, "upstream_invalid"),
        (
            ProvisionError::Instance(InstanceError::Lookup(NcError::Timeout)).into_api("bootstrap_failed"),
            502,
            "nextcloud_unavailable",
        ),
        (InstanceError::Store(sqlite()).into(), 503, "store_unavailable"),
        (
            ProvisionError::Store(crate::keys::store::KeyFileError::Format).into_api("rotation_failed"),
            503,
            "key_store_unavailable",
        ),
        (ProvisionError::ShuttingDown.into_api("bootstrap_failed"), 503, "shutting_down"),
        // Reconciliation: Nextcloud's failures are 502, the store's 503.
        (ReconcileError::Store(sqlite()).into(), 503, "store_unavailable"),
        (
            ReconcileError::Directory(DirectoryError::Nextcloud(NcError::Timeout)).into(),
            502,
            "nextcloud_unavailable",
        ),
        (ReconcileError::Directory(DirectoryError::Shape("x")).into(), 502, "nextcloud_unavailable"),
        (
            ReconcileError::Directory(DirectoryError::Admin(AdminError::NoneFound(1000))).into(),
            502,
            "sync_admin_missing",
        ),
        (
            ReconcileError::Directory(DirectoryError::Admin(AdminError::Nextcloud(NcError::Timeout))).into(),
            502,
            "nextcloud_unavailable",
        ),
        // The `/nc` policy.
        (PolicyError::Target(TargetError::Scope).into(), 403, "target_scope"),
        (PolicyError::ReadOnly.into(), 403, "read_only"),
        (PolicyError::DestructiveRate.into(), 429, "destructive_rate_limited"),
    ];
    for (err, status, code) in table {
        let (s, c) = err.status_and_code();
        assert_eq!((s.as_u16(), c), (status, code), "{err:?}");
        let response = err.into_response();
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(response.extensions().get::<ErrorReport>().unwrap().code, code);
    }
}

#[test]
fn signature_refusals_answer_401_then_429_and_503_for_a_full_replay_cache() {
    let dir = tempfile::tempdir().unwrap();
    let vars: std::collections::HashMap<String, String> = [
        ("APP_SECRET", "s"),
        ("NEXTCLOUD_URL", "http://nc.local/"),
        ("APP_PERSISTENT_STORAGE", dir.path().to_str().unwrap()),
        ("WAGGLE_CALLBACK__FAILURE_BURST", "1"),
        ("WAGGLE_CALLBACK__FAILURE_PER_SEC", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let settings = crate::config::Settings::load_from(&vars).unwrap();
    let keys = std::sync::Arc::new(crate::keys::Keyring::load(&settings));
    let metrics = std::sync::Arc::new(crate::metrics::Metrics::default());
    let replay = std::sync::Arc::new(
        crate::replay::ReplayStore::open(
            &dir.path().join("replay"),
            10,
            &crate::replay::Boot::default(),
            false,
            0,
        )
        .unwrap(),
    );
    let v = SignatureVerifier::new(
        &settings.callback,
        replay,
        keys,
        std::sync::Arc::new(crate::signing::Rfc9421),
        metrics.clone(),
    );
    let status = |e: ApiError| e.status_and_code();
    let mismatch = Rejection::DigestMismatch;
    assert_eq!(status(v.refuse(SignedRoute::Callback, &mismatch)).1, "invalid_signature");
    assert_eq!(status(v.refuse(SignedRoute::Callback, &mismatch)).1, "rate_limited", "budget spent");
    assert_eq!(status(v.refuse(SignedRoute::KeyAnnounce, &mismatch)).1, "invalid_signature", "no budget");
    assert_eq!(status(v.refuse(SignedRoute::Callback, &Rejection::ReplayFull)).0.as_u16(), 503);
    assert_eq!(
        status(v.refuse(SignedRoute::Callback, &Rejection::ReplayStorage)),
        (http::StatusCode::SERVICE_UNAVAILABLE, "replay_store_unavailable")
    );
    assert_eq!(status(v.refuse(SignedRoute::KeyAnnounce, &Rejection::ReplayStorage)).0.as_u16(), 503);
    assert_eq!(status(v.refuse(SignedRoute::KeyAnnounce, &Rejection::BeforeRestart)).1, "invalid_signature");
    assert_eq!(metrics.get("nc_signature_failed_digest_mismatch"), 2);
    assert_eq!(metrics.get("key_announce_refused_digest_mismatch"), 1);
    let limited = v.refuse(SignedRoute::Callback, &mismatch).into_response();
    assert_eq!(limited.headers()[http::header::RETRY_AFTER], "5");
}

#[test]
fn internal_errors_keep_their_detail_out_of_the_body() {
    let response = ApiError::Internal(anyhow::anyhow!("database path /secret/x")).into_response();
    let report = response.extensions().get::<ErrorReport>().unwrap().clone();
    assert!(report.detail.contains("/secret/x"));
}
