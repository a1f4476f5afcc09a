//! The SaaS side of a `/nc` callback, as a pure function: which headers to set and what to sign.
//! `waggle nc-call` and the tests use it; a SaaS vendor can read it as the reference.

use http::{HeaderMap, HeaderValue, Method};

use super::rfc9421::{Component, Message, Purpose, SignError, SigningKey, callback_components, sign_request};
use crate::headers;

/// One callback the SaaS wants Nextcloud to execute.
#[derive(Debug, Clone)]
pub struct CallbackRequest<'a> {
    /// The verb Nextcloud should see (PROPFIND, MKCOL, …).
    pub method: &'a Method,
    /// Send it as POST + `X-HTTP-Method-Override` (needed through the PHP proxy for anything but
    /// GET, POST, PUT and DELETE; harmless for those).
    pub tunnel: bool,
    /// Nextcloud path and query, canonical (e.g. `/remote.php/dav/files/alice/`).
    pub target: &'a str,
    /// The Nextcloud user (empty for a system call).
    pub user: &'a str,
    /// The body bytes.
    pub body: &'a [u8],
    /// Content type of a non-empty body (default `application/octet-stream`).
    pub content_type: Option<&'a str>,
    /// `Destination` for MOVE/COPY (a Nextcloud path); signed when present.
    pub destination: Option<&'a str>,
}

/// Returns the wire method and the headers (signature included) for `request`.
pub fn sign_callback(
    key: &SigningKey,
    request: &CallbackRequest<'_>,
    created: u64,
    nonce: &str,
) -> Result<(Method, HeaderMap), SignError> {
    let invalid = |_| SignError::InvalidParameter;
    let tunnelled = request.tunnel && !matches!(*request.method, Method::GET | Method::POST);
    let wire = if tunnelled { Method::POST } else { request.method.clone() };
    let mut h = HeaderMap::new();
    h.insert(headers::X_WAGGLE_TARGET, HeaderValue::from_str(request.target).map_err(invalid)?);
    h.insert(headers::X_WAGGLE_USER, HeaderValue::from_str(request.user).map_err(invalid)?);
    h.insert(
        headers::CONTENT_DIGEST,
        HeaderValue::from_str(&super::content_digest_value(request.body)).map_err(invalid)?,
    );
    if tunnelled {
        h.insert(
            headers::X_HTTP_METHOD_OVERRIDE,
            HeaderValue::from_str(request.method.as_str()).map_err(invalid)?,
        );
    }
    let has_body = !request.body.is_empty();
    if has_body {
        let ct = request.content_type.unwrap_or("application/octet-stream");
        h.insert(http::header::CONTENT_TYPE, HeaderValue::from_str(ct).map_err(invalid)?);
    }
    let mut covered = callback_components(tunnelled, has_body);
    if let Some(d) = request.destination {
        let name = headers::DESTINATION;
        h.insert(name.clone(), HeaderValue::from_str(d).map_err(invalid)?);
        covered.push(Component::Field(name));
    }
    let uri: http::Uri = "/".parse().map_err(|_| SignError::InvalidParameter)?;
    let message = Message::from_uri(&wire, &uri, &h);
    let signed = sign_request(key, Purpose::Callback, &message, &covered, created, nonce)?;
    signed.apply(&mut h)?;
    Ok((wire, h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::{VerifyPolicy, verify_request};

    #[test]
    fn a_signed_callback_verifies_with_the_callback_policy() {
        let key = SigningKey::from_tenant_key("k1", "tenant-key");
        let req = CallbackRequest {
            method: &Method::from_bytes(b"PROPFIND").unwrap(),
            tunnel: true,
            target: "/remote.php/dav/files/alice/",
            user: "alice",
            body: b"<propfind/>",
            content_type: Some("application/xml"),
            destination: None,
        };
        let (wire, h) = sign_callback(&key, &req, 1_700_000_000, "nonce-0123456789abcdef").unwrap();
        assert_eq!(wire, Method::POST);
        assert_eq!(h["x-http-method-override"], "PROPFIND");
        let uri: http::Uri = "/nc/remote.php/dav/files/alice/".parse().unwrap();
        let msg = Message::from_uri(&wire, &uri, &h);
        let v = verify_request(
            &msg,
            |id| (id == "k1").then_some(b"tenant-key"),
            &VerifyPolicy::callback(1_700_000_010, &h),
        )
        .unwrap();
        assert_eq!(v.nonce, "nonce-0123456789abcdef");
        // The API purpose must refuse it.
        assert!(verify_request(&msg, |_| Some(b"tenant-key"), &VerifyPolicy::api(1_700_000_010)).is_err());
    }
}
