//! `/nc/*`: the SaaS reaches Nextcloud OCS and WebDAV on a user's behalf, through Waggle. The route is
//! PUBLIC in the manifest (the SaaS has no Nextcloud session), so the signature is the only guard.
//!
//! The pipeline, one file per step:
//! 1. `auth::signature` (a `route_layer`, purpose `Callback`) verifies the signature and puts a
//!    `VerifiedCall` into the request, or refuses (401/429/503);
//! 2. `routes`: the thin handler — audit begins, then
//! 3. `policy`: the admin's allow-list, per-user scope, read-only mode and destructive-verb limit;
//! 4. `forward`: the body spooled and checked against the signed digest, the header allow-list,
//!    the `Destination` rewrite, the URL on `NEXTCLOUD_URL`, AppAPI impersonation, the response
//!    streamed back without cookies;
//! 5. `audit`: one log line and one audit row per call, written when the response body ends.

pub(crate) mod audit;
pub(crate) mod forward;
pub(crate) mod policy;
pub(crate) mod routes;
