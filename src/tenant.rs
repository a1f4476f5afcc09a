//! The tenant: pairing this Nextcloud with the SaaS and keeping its key current
//! (`docs/PROTOCOL.md` §8). `provision` bootstraps the first key and rotates it (single flight),
//! over the SaaS client's typed calls, installing keys into the keyring (`keys`); `routes` holds the
//! ADMIN routes and the SaaS's signed key announcement.

pub(crate) mod provision;
pub(crate) mod routes;

pub(crate) use provision::{ProvisionError, Provisioner};
