//! Fuzzes the UI's header parsers that meet browser input: `Accept-Encoding` negotiation, the
//! `If-None-Match` comparison and the landing page built from a request path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use waggle::spa::{Coding, landing_page, none_match, preferred_codings};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let codings = preferred_codings(Some(text));
    // Each coding at most once, identity (if present) last.
    for (i, c) in codings.iter().enumerate() {
        assert!(!codings[i + 1..].contains(c));
        if *c == Coding::Identity {
            assert_eq!(i, codings.len() - 1);
        }
    }
    let _ = none_match(text, "\"0123abcd\"");
    if !text.contains(['*', '"']) {
        assert!(!none_match(text, "\"0123abcd\""));
    }
    let page = landing_page(text);
    assert!(!page.contains("<script"), "the landing page never carries a script");
});
