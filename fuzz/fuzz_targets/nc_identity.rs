//! Fuzzes what Waggle learns about a Nextcloud from its answers: the instance id from `Set-Cookie`
//! lines, and the administrator search (AppAPI's user list, a user's own record, candidate order).
#![no_main]

use http::header::{HeaderMap, HeaderValue, SET_COOKIE};
use libfuzzer_sys::fuzz_target;
use waggle::nextcloud::admins::{candidates, parse_account, parse_user_ids};
use waggle::nextcloud::instance::{from_set_cookies, is_instance_id};

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            headers.append(SET_COOKIE, v);
        }
    }
    if let Some(id) = from_set_cookies(&headers) {
        assert!(is_instance_id(&id));
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    if let Ok(account) = parse_account(&value) {
        assert!(!account.uid.is_empty());
    }
    if let Ok(uids) = parse_user_ids(&value) {
        let hint = uids.first().cloned();
        let order = candidates(uids.clone(), hint.as_deref());
        let mut sorted = uids;
        sorted.sort();
        sorted.dedup();
        assert_eq!(order.len(), sorted.len(), "every uid once");
    }
});
