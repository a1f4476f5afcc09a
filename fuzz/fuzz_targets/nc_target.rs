//! Fuzzes `/nc` target canonicalisation and the allow-list/scope policy (outside input from the SaaS
//! and from the path the proxies hand us).
#![no_main]

use libfuzzer_sys::fuzz_target;
use waggle::nextcloud::target::{TargetPolicy, decode, observed_matches, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (raw, rest) = text.split_once('\n').unwrap_or((text, ""));
    let (user, observed) = rest.split_once('\n').unwrap_or((rest, ""));
    if let Ok(target) = parse(raw) {
        // A canonical target never carries dot segments, empty inner segments or raw controls.
        let segments = target.decoded_segments();
        let inner = &segments[..segments.len().saturating_sub(1)];
        assert!(segments.iter().all(|s| s != "." && s != ".."));
        assert!(inner.iter().all(|s| !s.is_empty()));
        assert!(!raw.bytes().any(|b| b < 0x20 || b == 0x7f || b >= 0x80));
        let policy = TargetPolicy {
            apps: vec!["files_sharing".into()],
            extra_allow: vec![],
            deny: vec![],
            service_paths: vec!["/ocs/v2.php/cloud/capabilities".into()],
        };
        if policy.check(&target, user).is_ok() && target.path.starts_with("/remote.php/dav/files/") {
            assert_eq!(segments.get(3).map(String::as_str), Some(user), "DAV scope holds");
        }
        let _ = observed_matches(observed, &target);
    }
    let _ = decode(raw);
});
