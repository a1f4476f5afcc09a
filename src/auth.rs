//! Who may call what: the failure reasons and the per-route-group policies.
//!
//! Every route except `GET /heartbeat` is reached through AppAPI (lifecycle calls, the PHP proxy or
//! HaRP) and carries `AUTHORIZATION-APP-API`. The policy of a route group says whether the acting
//! Nextcloud user may be empty (system context) and whether it must be an administrator.

pub mod appapi;
pub mod signature;

pub(crate) use appapi::AppApiAuth;
pub use appapi::AppApiCaller;

use crate::error::ApiError;

/// Why an AppAPI authentication failed. The reason is logged at debug level; callers only see a
/// generic 401 (except for the two policy failures, which tell a logged-in user what is needed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// No `AUTHORIZATION-APP-API` header.
    #[error("missing AUTHORIZATION-APP-API")]
    MissingHeader,
    /// More than one `AUTHORIZATION-APP-API` or `EX-APP-ID` header.
    #[error("duplicate AppAPI header")]
    DuplicateHeader,
    /// Not standard padded base64.
    #[error("AUTHORIZATION-APP-API is not base64")]
    BadBase64,
    /// Decoded bytes are not UTF-8.
    #[error("AUTHORIZATION-APP-API is not UTF-8")]
    NotUtf8,
    /// No `:` between user and secret.
    #[error("AUTHORIZATION-APP-API has no colon")]
    NoColon,
    /// The user id contains control characters.
    #[error("user id contains control characters")]
    BadUser,
    /// The secret does not match `APP_SECRET`.
    #[error("wrong secret")]
    WrongSecret,
    /// `EX-APP-ID` is missing or not this app.
    #[error("EX-APP-ID missing or not this app")]
    WrongAppId,
    /// The route needs a logged-in user but the call is in system context.
    #[error("route needs a user")]
    UserRequired,
    /// The route needs a Nextcloud administrator.
    #[error("route needs an administrator")]
    NotAdmin,
}

impl AuthFailure {
    /// A short machine-readable reason for logs and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            Self::MissingHeader => "missing_header",
            Self::DuplicateHeader => "duplicate_header",
            Self::BadBase64 => "bad_base64",
            Self::NotUtf8 => "not_utf8",
            Self::NoColon => "no_colon",
            Self::BadUser => "bad_user",
            Self::WrongSecret => "wrong_secret",
            Self::WrongAppId => "wrong_app_id",
            Self::UserRequired => "user_required",
            Self::NotAdmin => "not_admin",
        }
    }
}

impl From<AuthFailure> for ApiError {
    /// Only the two policy failures tell the caller what is needed; every credential failure is the
    /// same generic 401 (the reason is logged).
    fn from(failure: AuthFailure) -> Self {
        match failure {
            AuthFailure::UserRequired => Self::UserRequired,
            AuthFailure::NotAdmin => Self::AdminRequired,
            other => Self::Unauthorized { reason: other.reason() },
        }
    }
}

/// Who a route group admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Any AppAPI-authenticated call, including system context (empty user).
    System,
    /// A logged-in Nextcloud user (non-empty uid).
    User,
    /// A member of Nextcloud's `admin` group, checked through OCS.
    Admin,
}
