//! The wire-profile seam: how a request is signed and verified on the wire. Waggle's own profile is
//! RFC 9421 + RFC 9530 ([`Rfc9421`]); a second profile (the Bee Flow compatibility profile) implements
//! the same trait, and the SaaS client (outbound) and the signature policy (inbound) hold whichever
//! one is configured as `Arc<dyn WireProfile>`. Pure, like the rest of `signing`: the caller passes
//! the clock and the nonce.

use std::fmt;

use http::{HeaderMap, Method, Uri};

use super::rfc9421::{
    Message, Purpose, SignError, SigningKey, Verified, VerifyError, VerifyPolicy, api_components,
    sign_request, verify_request,
};

/// Key material by key id, as the verifier asks for it.
pub type KeyLookup<'a> = &'a dyn Fn(&str) -> Option<Vec<u8>>;

/// A signing profile: both directions of one wire format.
pub trait WireProfile: Send + Sync + fmt::Debug {
    /// Signs a request from Waggle to the SaaS (API purpose) in place: every covered header is
    /// already in `headers`; the profile's signature fields are added.
    fn sign_api(
        &self,
        key: &SigningKey,
        method: &Method,
        uri: &Uri,
        headers: &mut HeaderMap,
        created: u64,
        nonce: &str,
    ) -> Result<(), SignError>;

    /// Verifies a received request under `policy`, with key material from `lookup`.
    fn verify(
        &self,
        message: &Message<'_>,
        lookup: KeyLookup<'_>,
        policy: &VerifyPolicy,
    ) -> Result<Verified, VerifyError>;
}

/// Waggle's profile: RFC 9421 HTTP Message Signatures (HMAC-SHA256) with the components and tags of
/// `docs/PROTOCOL.md`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rfc9421;

impl WireProfile for Rfc9421 {
    fn sign_api(
        &self,
        key: &SigningKey,
        method: &Method,
        uri: &Uri,
        headers: &mut HeaderMap,
        created: u64,
        nonce: &str,
    ) -> Result<(), SignError> {
        let message = Message::from_uri(method, uri, headers);
        let signed = sign_request(key, Purpose::Api, &message, &api_components(), created, nonce)?;
        signed.apply(headers)
    }

    fn verify(
        &self,
        message: &Message<'_>,
        lookup: KeyLookup<'_>,
        policy: &VerifyPolicy,
    ) -> Result<Verified, VerifyError> {
        verify_request(message, lookup, policy)
    }
}
