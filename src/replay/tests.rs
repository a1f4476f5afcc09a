//! The spent-signature store: once per key, across reopenings of the same directory, and the
//! restart rule when the record may be incomplete.

use std::io::Write as _;

use super::*;

const T: u64 = 1_800_000_000;

fn boot(id: &str) -> Boot {
    Boot { id: Some(id.to_owned()), booted_at: Some(T - 1000) }
}

fn window(created: u64) -> Validity {
    Validity { from: created - 60, until: created + 300 }
}

fn key(n: &str) -> ReplayKey {
    ReplayKey::new("rfc9421", &[b"k1", n.as_bytes()])
}

fn open(dir: &Path, boot: &Boot, used: bool, now: u64) -> ReplayStore {
    ReplayStore::open(dir, 100, boot, used, now).unwrap()
}

#[test]
fn keys_are_length_prefixed_and_namespaced() {
    assert_ne!(ReplayKey::new("a", &[b"ab", b"c"]), ReplayKey::new("a", &[b"a", b"bc"]));
    assert_ne!(ReplayKey::new("rfc9421", &[b"k", b"n"]), ReplayKey::new("beeflow", &[b"k", b"n"]));
    assert_eq!(ReplayKey::new("a", &[b"x"]), ReplayKey::new("a", &[b"x"]));
}

#[test]
fn a_key_is_spent_once_and_forgotten_after_its_window() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), &boot("b1"), false, T);
    assert_eq!(s.spend(&key("n1"), window(T), T), Ok(()));
    assert_eq!(s.spend(&key("n1"), window(T), T + 1), Err(ReplayError::Replayed));
    assert_eq!(s.spend(&key("n1"), window(T), T + 300), Err(ReplayError::Replayed), "until is included");
    assert_eq!(s.spend(&key("n1"), window(T), T + 301), Ok(()), "forgotten once no check can pass it");
}

#[test]
fn a_full_store_refuses_instead_of_skipping_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let s = ReplayStore::open(dir.path(), 2, &boot("b1"), false, T).unwrap();
    s.spend(&key("a"), window(T), T).unwrap();
    s.spend(&key("b"), window(T), T).unwrap();
    assert_eq!(s.spend(&key("c"), window(T), T), Err(ReplayError::Full));
    assert_eq!(s.spend(&key("c"), window(T + 400), T + 400), Ok(()), "room again once entries expire");
    assert_eq!(s.len(), 1);
}

#[test]
fn spent_keys_survive_a_restart_under_the_same_boot() {
    let dir = tempfile::tempdir().unwrap();
    let b = boot("b1");
    {
        let s = open(dir.path(), &b, false, T);
        // Signed 55 s ahead and used once; then the process goes away (no flush: nothing is buffered).
        s.spend(&key("ahead"), window(T + 55), T).unwrap();
        s.spend(&key("now"), window(T), T).unwrap();
    }
    let s = open(dir.path(), &b, true, T);
    assert_eq!(s.spend(&key("ahead"), window(T + 55), T), Err(ReplayError::Replayed));
    assert_eq!(s.spend(&key("now"), window(T), T), Err(ReplayError::Replayed));
    assert_eq!(s.spend(&key("fresh"), window(T), T), Ok(()), "no restart rule when the record is whole");
}

#[test]
fn another_boot_refuses_what_could_have_been_used_before_it() {
    let dir = tempfile::tempdir().unwrap();
    open(dir.path(), &boot("b1"), false, T - 2000).spend(&key("old"), window(T - 2000), T - 2000).unwrap();
    // The host crashed and came back at T - 1000; Waggle starts at T.
    let s = open(dir.path(), &boot("b2"), true, T);
    // Could have passed the clock check before the new boot (created − 60 ≤ boot + 1): refused.
    assert_eq!(s.spend(&key("x"), window(T - 1000 + 61), T), Err(ReplayError::BeforeRestart));
    // Created far enough after the boot that no earlier process could have seen it: accepted.
    assert_eq!(s.spend(&key("y"), window(T - 1000 + 62), T), Ok(()));
    assert_eq!(s.spend(&key("z"), window(T), T), Ok(()));
}

#[test]
fn a_store_without_a_trustworthy_record_refuses_until_its_own_start() {
    // Storage an earlier version used (no replay record at all): it may have run until now.
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), &boot("b1"), true, T);
    assert_eq!(s.spend(&key("a"), window(T), T), Err(ReplayError::BeforeRestart));
    assert_eq!(s.spend(&key("b"), window(T + 61), T + 1), Ok(()));
    // A fresh install trusts its empty record.
    let fresh = tempfile::tempdir().unwrap();
    assert_eq!(open(fresh.path(), &boot("b1"), false, T).spend(&key("a"), window(T), T), Ok(()));
    // Without a boot id every record is fsynced, so the next start trusts it.
    let dir = tempfile::tempdir().unwrap();
    let none = Boot::default();
    open(dir.path(), &none, false, T).spend(&key("a"), window(T), T).unwrap();
    let s = open(dir.path(), &none, true, T);
    assert_eq!(s.spend(&key("a"), window(T), T), Err(ReplayError::Replayed));
    assert_eq!(s.spend(&key("b"), window(T), T), Ok(()));
    assert_eq!(std::fs::read_to_string(dir.path().join("boot")).unwrap(), log::SYNCED);
}

#[test]
fn a_torn_or_garbage_tail_is_skipped_and_expired_segments_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let b = boot("b1");
    open(dir.path(), &b, false, T).spend(&key("kept"), window(T), T).unwrap();
    let segment = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("spent-"))
        .unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(&segment).unwrap();
    f.write_all(b"\0\0\0\0\0\0\0\0garbage\n0000000000").unwrap();
    let s = open(dir.path(), &b, true, T);
    assert_eq!(s.spend(&key("kept"), window(T), T), Err(ReplayError::Replayed));
    drop(s);
    // Ten minutes on, every record has expired: the segment is gone.
    let _s = open(dir.path(), &b, true, T + 600);
    assert!(!segment.exists());
}

#[test]
fn files_are_owner_only_and_a_second_process_is_kept_out() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let replay = dir.path().join("replay");
    let s = open(&replay, &boot("b1"), false, T);
    s.spend(&key("a"), window(T), T).unwrap();
    assert_eq!(std::fs::metadata(&replay).unwrap().permissions().mode() & 0o777, 0o700);
    for entry in std::fs::read_dir(&replay).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600, "{path:?}");
    }
    // A second store on the same directory waits for the lock, then gives up.
    let started = std::time::Instant::now();
    let err = ReplayStore::open(&replay, 100, &boot("b1"), true, T).unwrap_err();
    assert!(format!("{err:#}").contains("another Waggle process"), "{err:#}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
}
