//! Canonical `/nc` targets: the Nextcloud path and query the SaaS asked for (`X-Waggle-Target`),
//! checked for canonical form, then against the allow-list and the per-user scope, before anything is
//! forwarded. Pure functions; fuzzed (`fuzz/fuzz_targets/nc_target.rs`).
//!
//! Canonical form (RFC 3986 §6.2.2): percent-encoding in uppercase hex, unreserved characters never
//! encoded, no raw non-ASCII, no dot segments in any spelling, no empty segments, no encoded `/` or
//! `\` inside a segment, no control characters raw or encoded, no double encoding (`%25XX`).

/// Why a target was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not a path starting with `/`, too long, or carrying a fragment.
    #[error("target is not an origin-form path")]
    Shape,
    /// A character that must be percent-encoded appears raw, or a control character appears at all.
    #[error("target contains a forbidden character")]
    Character,
    /// Malformed or non-canonical percent-encoding.
    #[error("target is not canonically percent-encoded")]
    Encoding,
    /// `.`/`..` segments, `//`, or encoded separators.
    #[error("target has dot segments, empty segments or encoded separators")]
    Segments,
    /// The path is outside the allow-list or on the admin's deny-list.
    #[error("target is not allowed")]
    NotAllowed,
    /// A user-scoped WebDAV path names another user, or a system call asks for a non-service path.
    #[error("target is outside the caller's scope")]
    Scope,
}

impl TargetError {
    /// Stable code for responses and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Shape => "target_shape",
            Self::Character => "target_character",
            Self::Encoding => "target_encoding",
            Self::Segments => "target_segments",
            Self::NotAllowed => "target_not_allowed",
            Self::Scope => "target_scope",
        }
    }
}

/// Longest accepted target.
pub const MAX_TARGET_LEN: usize = 4096;

/// WebDAV collections that belong to one user: `/remote.php/dav/<collection>/<uid>/…`.
const USER_DAV: [&str; 6] = ["files", "uploads", "calendars", "addressbooks", "trashbin", "versions"];

/// A target that passed the canonical-form checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The path, exactly as signed.
    pub path: String,
    /// The query without `?`, exactly as signed.
    pub query: Option<String>,
}

impl Target {
    /// Path and query, as sent to Nextcloud.
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }

    /// Whether this is an OCS call.
    pub fn is_ocs(&self) -> bool {
        self.path.starts_with("/ocs/")
    }

    /// The path segments, percent-decoded (valid UTF-8 guaranteed by [`parse`]).
    pub fn decoded_segments(&self) -> Vec<String> {
        self.path.split('/').skip(1).map(|s| decode(s).unwrap_or_default()).collect()
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_sub_delim_or_pchar(b: u8) -> bool {
    matches!(b, b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' | b':' | b'@')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Checks one path segment or the query and returns its decoded bytes.
fn check_component(raw: &str, is_query: bool) -> Result<Vec<u8>, TargetError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let (Some(h), Some(l)) = (bytes.get(i + 1), bytes.get(i + 2)) else {
                return Err(TargetError::Encoding);
            };
            let (Some(h), Some(l)) = (hex(*h), hex(*l)) else {
                return Err(TargetError::Encoding); // also lowercase hex: not canonical
            };
            let decoded = h * 16 + l;
            if is_unreserved(decoded) {
                return Err(TargetError::Encoding);
            }
            if decoded < 0x20 || decoded == 0x7f {
                return Err(TargetError::Character);
            }
            if !is_query && matches!(decoded, b'/' | b'\\') {
                return Err(TargetError::Segments);
            }
            // `%25` followed by two hex digits is double encoding (`%252e`).
            if decoded == b'%'
                && bytes.get(i + 3).is_some_and(|c| c.is_ascii_hexdigit())
                && bytes.get(i + 4).is_some_and(|c| c.is_ascii_hexdigit())
            {
                return Err(TargetError::Encoding);
            }
            out.push(decoded);
            i += 3;
            continue;
        }
        let allowed = is_unreserved(b) || is_sub_delim_or_pchar(b) || (is_query && matches!(b, b'/' | b'?'));
        if !allowed {
            return Err(TargetError::Character);
        }
        out.push(b);
        i += 1;
    }
    Ok(out)
}

/// Percent-decodes once; `None` if the result is not UTF-8 or an escape is malformed.
pub fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let h = char::from(*bytes.get(i + 1)?).to_digit(16)?;
            let l = char::from(*bytes.get(i + 2)?).to_digit(16)?;
            out.push(u8::try_from(h * 16 + l).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Parses and checks a target's canonical form (not yet the allow-list).
pub fn parse(raw: &str) -> Result<Target, TargetError> {
    if raw.is_empty() || raw.len() > MAX_TARGET_LEN || !raw.starts_with('/') || raw.contains('#') {
        return Err(TargetError::Shape);
    }
    let (path, query) = match raw.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (raw, None),
    };
    if path.contains('\\') {
        return Err(TargetError::Segments);
    }
    let segments: Vec<&str> = path[1..].split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        let decoded = check_component(segment, false)?;
        let last = i + 1 == segments.len();
        if (segment.is_empty() && !last) || decoded == b"." || decoded == b".." {
            return Err(TargetError::Segments);
        }
        if std::str::from_utf8(&decoded).is_err() {
            return Err(TargetError::Encoding);
        }
    }
    if let Some(q) = query {
        check_component(q, true)?;
    }
    Ok(Target { path: path.to_owned(), query: query.map(str::to_owned) })
}

/// Admin policy on targets (config now, the admin UI later).
#[derive(Debug, Clone, Default)]
pub struct TargetPolicy {
    /// App ids whose `/index.php/apps/<app>/` routes may be called.
    pub apps: Vec<String>,
    /// Extra allowed path prefixes.
    pub extra_allow: Vec<String>,
    /// Denied path prefixes (win over everything).
    pub deny: Vec<String>,
    /// Paths system calls (empty user) may reach: exact paths or prefixes ending in `/`.
    pub service_paths: Vec<String>,
}

/// Built-in denials: the AppAPI API itself (the SaaS must never act as the app towards AppAPI).
const ALWAYS_DENIED: [&str; 2] = ["/ocs/v1.php/apps/app_api/", "/ocs/v2.php/apps/app_api/"];

impl TargetPolicy {
    /// Checks the allow-list, the deny-list and the scope for `user` (empty = system call).
    pub fn check(&self, target: &Target, user: &str) -> Result<(), TargetError> {
        let path = target.path.as_str();
        if ALWAYS_DENIED
            .iter()
            .copied()
            .chain(self.deny.iter().map(String::as_str))
            .any(|d| path.starts_with(d))
        {
            return Err(TargetError::NotAllowed);
        }
        if user.is_empty() {
            let allowed = self
                .service_paths
                .iter()
                .any(|p| if p.ends_with('/') { path.starts_with(p.as_str()) } else { path == p });
            return if allowed { Ok(()) } else { Err(TargetError::Scope) };
        }
        let segments = target.decoded_segments();
        let seg = |i: usize| segments.get(i).map(String::as_str);
        if path.starts_with("/ocs/v1.php/") || path.starts_with("/ocs/v2.php/") {
            return Ok(());
        }
        if path.starts_with("/remote.php/dav/") {
            return match (seg(2), seg(3)) {
                (Some(collection), Some(owner)) if USER_DAV.contains(&collection) => {
                    if owner == user {
                        Ok(())
                    } else {
                        Err(TargetError::Scope)
                    }
                }
                (Some("principals"), Some("users")) => {
                    if seg(4) == Some(user) {
                        Ok(())
                    } else {
                        Err(TargetError::Scope)
                    }
                }
                _ if self.extra_allowed(path) => Ok(()),
                _ => Err(TargetError::NotAllowed),
            };
        }
        if path.starts_with("/index.php/apps/")
            && seg(2).is_some_and(|app| self.apps.iter().any(|a| a == app))
        {
            return Ok(());
        }
        if self.extra_allowed(path) { Ok(()) } else { Err(TargetError::NotAllowed) }
    }

    fn extra_allowed(&self, path: &str) -> bool {
        self.extra_allow.iter().any(|p| path.starts_with(p.as_str()))
    }
}

/// Whether the path Waggle observed (after `/nc`) corresponds to the signed target: equal to it raw,
/// or to it percent-decoded exactly once (the PHP proxy and HaRP may decode).
pub fn observed_matches(observed: &str, target: &Target) -> bool {
    observed == target.path || decode(&target.path).is_some_and(|d| d == observed)
}

#[cfg(test)]
mod tests;
