//! The admin's policy on `/nc` calls, applied after the signature verified and before anything is
//! forwarded: the target allow-list and per-user scope, read-only mode, and a per-user limit on
//! destructive verbs (DELETE, MOVE) that warns when a burst crosses a threshold.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::Method;

use crate::config::CallbackSettings;
use crate::error::ApiError;
use crate::nextcloud::target::{Target, TargetError, TargetPolicy};

/// Verbs that pass in read-only mode.
const READ_VERBS: [&str; 5] = ["GET", "HEAD", "PROPFIND", "REPORT", "SEARCH"];

/// Why the policy refused a verified call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PolicyError {
    /// Target outside the allow-list or the caller's scope.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// Read-only mode and a writing verb.
    #[error("read-only mode")]
    ReadOnly,
    /// Too many destructive calls for this user.
    #[error("too many destructive calls")]
    DestructiveRate,
}

impl PolicyError {
    /// Stable code.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::Target(t) => t.code(),
            Self::ReadOnly => "read_only",
            Self::DestructiveRate => "destructive_rate_limited",
        }
    }
}

impl From<PolicyError> for ApiError {
    /// 403 with the policy code; the destructive-verb limit is 429.
    fn from(e: PolicyError) -> Self {
        match e {
            PolicyError::DestructiveRate => ApiError::RateLimited { code: e.code(), retry_after: None },
            _ => ApiError::Forbidden {
                code: e.code(),
                message: "the call is not allowed by Waggle's policy".to_owned(),
            },
        }
    }
}

/// The policy, built once from settings.
#[derive(Debug)]
pub(crate) struct CallbackPolicy {
    targets: TargetPolicy,
    read_only: bool,
    per_minute: u32,
    warn_per_minute: u32,
    destructive: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl CallbackPolicy {
    /// From the configuration.
    pub(crate) fn new(settings: &CallbackSettings) -> Self {
        Self {
            targets: TargetPolicy {
                apps: settings.apps.clone(),
                extra_allow: settings.extra_allow.clone(),
                deny: settings.deny.clone(),
                service_paths: settings.service_paths.clone(),
            },
            read_only: settings.read_only,
            per_minute: settings.destructive_per_minute,
            warn_per_minute: settings.destructive_warn_per_minute,
            destructive: Mutex::new(HashMap::new()),
        }
    }

    /// The target rules alone (also used for `Destination`).
    pub(crate) fn check_target(&self, target: &Target, user: &str) -> Result<(), PolicyError> {
        Ok(self.targets.check(target, user)?)
    }

    /// Checks one verified call.
    pub(crate) fn check(&self, method: &Method, target: &Target, user: &str) -> Result<(), PolicyError> {
        self.check_target(target, user)?;
        if self.read_only && !READ_VERBS.contains(&method.as_str()) {
            return Err(PolicyError::ReadOnly);
        }
        if matches!(method.as_str(), "DELETE" | "MOVE") {
            self.count_destructive(user)?;
        }
        Ok(())
    }

    fn count_destructive(&self, user: &str) -> Result<(), PolicyError> {
        let now = Instant::now();
        let mut map = self.destructive.lock().expect("policy lock");
        // Forget users with no recent destructive call, so the map stays small.
        map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < Duration::from_secs(60)));
        let window = map.entry(user.to_owned()).or_default();
        while window.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60)) {
            window.pop_front();
        }
        if window.len() >= self.per_minute as usize {
            tracing::warn!(
                nc.user = user,
                limit = self.per_minute,
                "destructive calls refused: per-minute limit reached"
            );
            return Err(PolicyError::DestructiveRate);
        }
        window.push_back(now);
        if window.len() == self.warn_per_minute as usize {
            tracing::warn!(
                nc.user = user,
                count = window.len(),
                "burst of destructive calls (DELETE/MOVE) in the last minute"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nextcloud::target::parse;

    fn settings(read_only: bool, per_minute: u32) -> CallbackSettings {
        CallbackSettings {
            max_age_secs: 300,
            max_future_secs: 60,
            body_cap_bytes: 1,
            replay_capacity: 1,
            failure_burst: 1,
            failure_per_sec: 1,
            read_only,
            apps: vec![],
            extra_allow: vec![],
            deny: vec![],
            service_paths: vec![],
            destructive_per_minute: per_minute,
            destructive_warn_per_minute: 2,
        }
    }

    #[test]
    fn read_only_mode_lets_only_reads_pass() {
        let p = CallbackPolicy::new(&settings(true, 100));
        let t = parse("/remote.php/dav/files/alice/x").unwrap();
        for m in ["GET", "HEAD", "PROPFIND", "REPORT", "SEARCH"] {
            assert!(p.check(&Method::from_bytes(m.as_bytes()).unwrap(), &t, "alice").is_ok(), "{m}");
        }
        for m in ["PUT", "DELETE", "MKCOL", "MOVE", "COPY", "PROPPATCH", "POST"] {
            assert_eq!(
                p.check(&Method::from_bytes(m.as_bytes()).unwrap(), &t, "alice"),
                Err(PolicyError::ReadOnly),
                "{m}"
            );
        }
    }

    #[test]
    fn destructive_calls_are_limited_per_user() {
        let p = CallbackPolicy::new(&settings(false, 3));
        let t = parse("/remote.php/dav/files/alice/x").unwrap();
        let tb = parse("/remote.php/dav/files/bob/x").unwrap();
        for _ in 0..3 {
            assert!(p.check(&Method::DELETE, &t, "alice").is_ok());
        }
        assert_eq!(p.check(&Method::DELETE, &t, "alice"), Err(PolicyError::DestructiveRate));
        assert!(p.check(&Method::GET, &t, "alice").is_ok(), "reads are not limited");
        assert!(p.check(&Method::DELETE, &tb, "bob").is_ok(), "per user");
    }
}
