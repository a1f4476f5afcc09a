//! Inbound AppAPI authentication: decode `AUTHORIZATION-APP-API`, compare the secret in constant
//! time, check `EX-APP-ID`, and hand the acting user to handlers as [`AppApiCaller`].
//!
//! Applied per route group with `route_layer` (see `routes.rs`) so unknown paths stay 404. WebSocket
//! upgrades are ordinary GET requests here and pass through the same check.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Request};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures_util::future::Either;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower_http::auth::AsyncAuthorizeRequest;

use super::{Access, AuthFailure};
use crate::error::ApiError;
use crate::headers;
use crate::nextcloud::NcClient;

/// The authenticated caller: the Nextcloud user AppAPI acts for, empty in system context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppApiCaller {
    /// Nextcloud user id; empty for system calls (`/init`, `/enabled`, anonymous PUBLIC routes).
    pub user: String,
}

impl AppApiCaller {
    /// Whether this is a system-context call.
    pub fn is_system(&self) -> bool {
        self.user.is_empty()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AppApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Present only behind `AppApiAuth`; a handler that asks for it elsewhere is a wiring bug.
        parts.extensions.get::<Self>().cloned().ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!("AppApiCaller requested on a route without AppApiAuth"))
        })
    }
}

/// Decodes an `AUTHORIZATION-APP-API` value into `(user, secret)`.
///
/// Standard base64 with padding, UTF-8, split at the first `:`; the user may be empty but must not
/// contain control characters. Pure, so it is fuzzed (`fuzz/fuzz_targets/appapi_header.rs`).
pub fn decode_authorization(value: &[u8]) -> Result<(String, Vec<u8>), AuthFailure> {
    let raw = base64::engine::general_purpose::STANDARD.decode(value).map_err(|_| AuthFailure::BadBase64)?;
    let text = String::from_utf8(raw).map_err(|_| AuthFailure::NotUtf8)?;
    let (user, secret) = text.split_once(':').ok_or(AuthFailure::NoColon)?;
    if user.chars().any(char::is_control) {
        return Err(AuthFailure::BadUser);
    }
    Ok((user.to_owned(), secret.as_bytes().to_vec()))
}

/// Checks credentials against this app's id and secret.
#[derive(Clone)]
pub struct CredentialCheck {
    app_id: Arc<str>,
    /// SHA-256 of the secret: comparing fixed-size digests in constant time hides the length too.
    secret_digest: [u8; 32],
}

impl std::fmt::Debug for CredentialCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialCheck").field("app_id", &self.app_id).finish_non_exhaustive()
    }
}

impl CredentialCheck {
    /// Builds the check for `app_id` and `secret`.
    pub fn new(app_id: &str, secret: &[u8]) -> Self {
        Self { app_id: app_id.into(), secret_digest: Sha256::digest(secret).into() }
    }

    /// Verifies the AppAPI headers of a request and returns the acting user.
    pub fn verify(&self, headers: &HeaderMap) -> Result<AppApiCaller, AuthFailure> {
        let auth = single(headers, &headers::AUTHORIZATION_APP_API)?.ok_or(AuthFailure::MissingHeader)?;
        let app_id = single(headers, &headers::EX_APP_ID)?;
        let (user, secret) = decode_authorization(auth.as_bytes())?;
        let given: [u8; 32] = Sha256::digest(&secret).into();
        if !bool::from(given.ct_eq(&self.secret_digest)) {
            return Err(AuthFailure::WrongSecret);
        }
        // EX-APP-ID is checked after the secret so an unauthenticated caller learns nothing from it.
        if app_id.is_none_or(|id| id.as_bytes() != self.app_id.as_bytes()) {
            return Err(AuthFailure::WrongAppId);
        }
        Ok(AppApiCaller { user })
    }
}

fn single<'a>(
    headers: &'a HeaderMap,
    name: &http::HeaderName,
) -> Result<Option<&'a http::HeaderValue>, AuthFailure> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(AuthFailure::DuplicateHeader);
    }
    Ok(first)
}

/// The tower-http authorization policy for one route group.
#[derive(Debug, Clone)]
pub(crate) struct AppApiAuth {
    check: CredentialCheck,
    access: Access,
    nc: Option<NcClient>,
}

impl AppApiAuth {
    /// A policy admitting `access`; `Access::Admin` needs the Nextcloud client to look up groups.
    pub(crate) fn new(check: CredentialCheck, access: Access, nc: Option<NcClient>) -> Self {
        assert!(access != Access::Admin || nc.is_some(), "admin policy needs a Nextcloud client");
        Self { check, access, nc }
    }
}

fn reject(failure: AuthFailure) -> Response {
    tracing::debug!(reason = failure.reason(), "AppAPI authentication refused");
    ApiError::from(failure).into_response()
}

type AuthResult = Result<Request<Body>, Response>;

impl AsyncAuthorizeRequest<Body> for AppApiAuth {
    type RequestBody = Body;
    type ResponseBody = Body;
    /// Ready at once except for ADMIN routes, which ask Nextcloud about group membership; only
    /// those pay for a boxed future.
    type Future = Either<Ready<AuthResult>, Pin<Box<dyn Future<Output = AuthResult> + Send>>>;

    fn authorize(&mut self, mut request: Request<Body>) -> Self::Future {
        let outcome = self.check.verify(request.headers()).and_then(|caller| match self.access {
            Access::System => Ok(caller),
            Access::User | Access::Admin if caller.is_system() => Err(AuthFailure::UserRequired),
            Access::User | Access::Admin => Ok(caller),
        });
        let caller = match outcome {
            Ok(caller) => caller,
            Err(failure) => return Either::Left(ready(Err(reject(failure)))),
        };
        tracing::Span::current().record(crate::telemetry::fields::NC_USER, caller.user.as_str());
        let Some(nc) = (self.access == Access::Admin).then(|| self.nc.clone()).flatten() else {
            request.extensions_mut().insert(caller);
            return Either::Left(ready(Ok(request)));
        };
        Either::Right(Box::pin(async move {
            match nc.is_admin(&caller.user).await {
                Ok(true) => {}
                Ok(false) => return Err(reject(AuthFailure::NotAdmin)),
                Err(e) => return Err(ApiError::from(e).into_response()),
            }
            request.extensions_mut().insert(caller);
            Ok(request)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn headers(auth: Option<&str>, app_id: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(headers::AUTHORIZATION_APP_API, HeaderValue::from_str(a).unwrap());
        }
        if let Some(id) = app_id {
            h.insert(headers::EX_APP_ID, HeaderValue::from_str(id).unwrap());
        }
        h
    }

    #[test]
    fn decodes_the_reference_vectors() {
        assert_eq!(
            decode_authorization(b"YWxpY2U6dGVzdC1zZWNyZXQ=").unwrap(),
            ("alice".to_owned(), b"test-secret".to_vec())
        );
        assert_eq!(
            decode_authorization(b"OnRlc3Qtc2VjcmV0").unwrap(),
            (String::new(), b"test-secret".to_vec())
        );
    }

    #[test]
    fn splits_at_the_first_colon() {
        let (user, secret) = decode_authorization(b64("bob:a:b:c").as_bytes()).unwrap();
        assert_eq!((user.as_str(), secret.as_slice()), ("bob", b"a:b:c".as_slice()));
    }

    #[test]
    fn refuses_malformed_values() {
        assert_eq!(decode_authorization(b"%%%"), Err(AuthFailure::BadBase64));
        assert_eq!(
            decode_authorization(b"YWxpY2U6dGVzdC1zZWNyZXQ"),
            Err(AuthFailure::BadBase64),
            "padding required"
        );
        assert_eq!(decode_authorization(b64("nocolon").as_bytes()), Err(AuthFailure::NoColon));
        assert_eq!(decode_authorization(b"/w=="), Err(AuthFailure::NotUtf8));
        assert_eq!(decode_authorization(b64("al\nice:x").as_bytes()), Err(AuthFailure::BadUser));
    }

    #[test]
    fn verifies_secret_and_app_id() {
        let check = CredentialCheck::new("waggle", b"test-secret");
        let ok = headers(Some(&b64("alice:test-secret")), Some("waggle"));
        assert_eq!(check.verify(&ok).unwrap().user, "alice");
        let cases = [
            (headers(None, Some("waggle")), AuthFailure::MissingHeader),
            (headers(Some(&b64("alice:test-secreT")), Some("waggle")), AuthFailure::WrongSecret),
            (headers(Some(&b64("alice:test-secret ")), Some("waggle")), AuthFailure::WrongSecret),
            (headers(Some(&b64("alice:")), Some("waggle")), AuthFailure::WrongSecret),
            (headers(Some(&b64("alice:test-secret")), Some("other")), AuthFailure::WrongAppId),
            (headers(Some(&b64("alice:test-secret")), None), AuthFailure::WrongAppId),
        ];
        for (h, want) in cases {
            assert_eq!(check.verify(&h), Err(want));
        }
        let mut dup = headers(Some(&b64("alice:test-secret")), Some("waggle"));
        dup.append(headers::AUTHORIZATION_APP_API, HeaderValue::from_str(&b64(":test-secret")).unwrap());
        assert_eq!(check.verify(&dup), Err(AuthFailure::DuplicateHeader));
    }

    #[test]
    fn debug_does_not_show_the_secret_digest() {
        let check = CredentialCheck::new("waggle", b"test-secret");
        assert_eq!(format!("{check:?}"), "CredentialCheck { app_id: \"waggle\", .. }");
    }
}
