//! Canonical-form, allow-list and scope checks for `/nc` targets.

use super::*;

fn policy() -> TargetPolicy {
    TargetPolicy {
        apps: vec!["files_sharing".into()],
        extra_allow: vec![],
        deny: vec!["/ocs/v2.php/apps/files_sharing/api/v1/remote_shares".into()],
        service_paths: vec!["/ocs/v2.php/cloud/capabilities".into(), "/ocs/v2.php/cloud/groups/".into()],
    }
}

#[test]
fn canonical_targets_parse() {
    for ok in [
        "/remote.php/dav/files/alice/",
        "/remote.php/dav/files/alice/R%C3%A9sum%C3%A9%20final.pdf",
        "/ocs/v2.php/cloud/users/alice?format=json",
        "/ocs/v2.php/apps/files_sharing/api/v1/shares?path=%2FDocuments&reshares=true",
        "/remote.php/dav/files/alice/a@b;c=d",
        "/remote.php/dav/files/alice/100%25.txt",
    ] {
        assert!(parse(ok).is_ok(), "{ok}");
    }
}

#[test]
fn every_traversal_and_encoding_trick_is_refused() {
    let cases = [
        ("", TargetError::Shape),
        ("remote.php/dav/", TargetError::Shape),
        ("/remote.php/dav/files/alice/x#frag", TargetError::Shape),
        ("/remote.php/dav/files/alice/../bob/", TargetError::Segments),
        ("/remote.php/dav/files/alice/./x", TargetError::Segments),
        ("/remote.php/dav/files/alice/%2E%2E/bob", TargetError::Encoding),
        ("/remote.php/dav/files/alice/%2e%2e/bob", TargetError::Encoding),
        ("/remote.php/dav/files/alice/%252e%252e/bob", TargetError::Encoding),
        ("/remote.php/dav/files/alice/..%2Fbob", TargetError::Segments),
        ("/remote.php/dav/files/alice/..%5Cbob", TargetError::Segments),
        ("/remote.php/dav/files/alice\\..\\bob", TargetError::Segments),
        ("/remote.php//dav/files/alice/", TargetError::Segments),
        ("/remote.php/dav/files/alice/%00", TargetError::Character),
        ("/remote.php/dav/files/alice/%0A", TargetError::Character),
        ("/remote.php/dav/files/alice/a\u{1}b", TargetError::Character),
        ("/remote.php/dav/files/alice/a b", TargetError::Character),
        ("/remote.php/dav/files/alice/é", TargetError::Character),
        ("/remote.php/dav/files/alice/%41", TargetError::Encoding),
        ("/remote.php/dav/files/alice/%c3%a9", TargetError::Encoding),
        ("/remote.php/dav/files/alice/%C3", TargetError::Encoding),
        ("/remote.php/dav/files/alice/%G1", TargetError::Encoding),
        ("/remote.php/dav/files/alice/%", TargetError::Encoding),
        ("/ocs/v2.php/cloud/user?x=%0D%0A", TargetError::Character),
    ];
    for (raw, want) in cases {
        assert_eq!(parse(raw), Err(want.clone()), "{raw:?}");
    }
}

#[test]
fn dav_paths_are_scoped_to_the_caller() {
    let p = policy();
    let t = |s: &str| parse(s).unwrap();
    assert!(p.check(&t("/remote.php/dav/files/alice/x.txt"), "alice").is_ok());
    assert!(p.check(&t("/remote.php/dav/files/alice"), "alice").is_ok());
    assert!(p.check(&t("/remote.php/dav/calendars/alice/personal/"), "alice").is_ok());
    assert!(p.check(&t("/remote.php/dav/principals/users/alice/"), "alice").is_ok());
    for other in [
        "/remote.php/dav/files/bob/x.txt",
        "/remote.php/dav/uploads/bob/123",
        "/remote.php/dav/trashbin/bob/trash",
        "/remote.php/dav/versions/bob/versions/1",
        "/remote.php/dav/addressbooks/users/bob",
        "/remote.php/dav/principals/users/bob/",
        "/remote.php/dav/files/Alice/x",
    ] {
        assert_eq!(p.check(&t(other), "alice"), Err(TargetError::Scope), "{other}");
    }
    // An encoded uid is compared decoded.
    assert!(p.check(&t("/remote.php/dav/files/al%40ice/x"), "al@ice").is_ok());
}

#[test]
fn allow_list_deny_list_and_service_calls() {
    let p = policy();
    let t = |s: &str| parse(s).unwrap();
    assert!(p.check(&t("/ocs/v2.php/cloud/user"), "alice").is_ok());
    assert!(p.check(&t("/index.php/apps/files_sharing/ajax/x"), "alice").is_ok());
    assert_eq!(p.check(&t("/index.php/apps/settings/admin"), "alice"), Err(TargetError::NotAllowed));
    assert_eq!(p.check(&t("/ocs/v3.php/x"), "alice"), Err(TargetError::NotAllowed));
    assert_eq!(p.check(&t("/status.php"), "alice"), Err(TargetError::NotAllowed));
    assert_eq!(p.check(&t("/remote.php/webdav/x"), "alice"), Err(TargetError::NotAllowed));
    assert_eq!(p.check(&t("/remote.php/dav/systemtags/1"), "alice"), Err(TargetError::NotAllowed));
    assert_eq!(p.check(&t("/ocs/v1.php/apps/app_api/api/v1/users"), "alice"), Err(TargetError::NotAllowed));
    assert_eq!(
        p.check(&t("/ocs/v2.php/apps/files_sharing/api/v1/remote_shares"), "alice"),
        Err(TargetError::NotAllowed)
    );
    assert!(p.check(&t("/ocs/v2.php/cloud/capabilities"), "").is_ok());
    assert!(p.check(&t("/ocs/v2.php/cloud/groups/staff"), "").is_ok());
    assert_eq!(p.check(&t("/ocs/v2.php/cloud/capabilities/x"), ""), Err(TargetError::Scope));
    assert_eq!(p.check(&t("/remote.php/dav/files/alice/"), ""), Err(TargetError::Scope));
}

#[test]
fn observed_path_must_be_the_target_raw_or_decoded_once() {
    let t = parse("/remote.php/dav/files/alice/a%40b%20c").unwrap();
    assert!(observed_matches("/remote.php/dav/files/alice/a%40b%20c", &t));
    assert!(observed_matches("/remote.php/dav/files/alice/a@b c", &t));
    assert!(!observed_matches("/remote.php/dav/files/alice/a%2540b", &t));
    assert!(!observed_matches("/remote.php/dav/files/bob/a@b c", &t));
}
