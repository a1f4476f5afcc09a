//! The snapshot diff, pure: given what the snapshot remembers about a user or group and what
//! Nextcloud reports now, the events to emit (in order) and the version to remember. No I/O; the
//! snapshot (`events::snapshot`) reads and writes rows around these functions.
//!
//! Versions: every change to a subject bumps its version; an event's id fingerprints the version
//! and the data, so a re-diff of the same change maps to the same id while a user deleted and
//! created again gets a new one.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::directory::UserRecord;
use super::{Event, EventType, event};

/// One change found by the diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    /// The event type.
    pub(crate) kind: EventType,
    /// The ordering key (`user:<uid>`, `group:<gid>`).
    pub(crate) subject: String,
    /// The subject's version after the change.
    pub(crate) version: i64,
    /// The event data (without `source`).
    pub(crate) data: Value,
}

impl Change {
    fn new(kind: EventType, subject: String, version: i64, data: Value) -> Self {
        Self { kind, subject, version, data }
    }

    /// The event for this change, observed by a run of `source` (`initial`, `reconcile`,
    /// `webhook`) at `at` (unix seconds) on Nextcloud `instance`.
    pub(crate) fn into_event(mut self, instance: &str, source: &str, at: u64) -> Event {
        self.data["source"] = json!(source);
        let fingerprint = format!("{}:{}", self.version, self.data);
        event(instance, self.kind, &self.subject, &fingerprint, &self.data, at)
    }
}

/// A user as the snapshot remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KnownUser {
    /// Display name.
    pub(crate) display_name: String,
    /// Email, if set.
    pub(crate) email: Option<String>,
    /// Whether the account was enabled.
    pub(crate) enabled: bool,
    /// Whether the user was tombstoned.
    pub(crate) deleted: bool,
    /// Its version.
    pub(crate) version: i64,
}

/// What became of one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserDiff {
    /// The events, in order: created / updated, enabled / disabled, then memberships.
    pub(crate) changes: Vec<Change>,
    /// The version to remember.
    pub(crate) version: i64,
    /// Groups joined.
    pub(crate) joined: Vec<String>,
    /// Groups left.
    pub(crate) left: Vec<String>,
}

/// Diffs one user against the snapshot (`known`, and the groups it remembers for the user).
pub(crate) fn user(
    known: Option<&KnownUser>,
    now: &UserRecord,
    groups_before: &BTreeSet<String>,
) -> UserDiff {
    let subject = format!("user:{}", now.uid);
    let mut version = known.map_or(0, |k| k.version);
    let mut changes = vec![];
    match known {
        None | Some(KnownUser { deleted: true, .. }) => {
            version += 1;
            changes.push(Change::new(
                EventType::UserCreated,
                subject,
                version,
                json!({ "uid": now.uid, "display_name": now.display_name, "email": now.email, "enabled": now.enabled }),
            ));
        }
        Some(k) => {
            let mut changed = vec![];
            if k.display_name != now.display_name {
                changed.push("display_name");
            }
            if k.email != now.email {
                changed.push("email");
            }
            if !changed.is_empty() {
                version += 1;
                changes.push(Change::new(
                    EventType::UserUpdated,
                    subject.clone(),
                    version,
                    json!({ "uid": now.uid, "changed": changed, "display_name": now.display_name, "email": now.email }),
                ));
            }
            if k.enabled != now.enabled {
                version += 1;
                let kind = if now.enabled { EventType::UserEnabled } else { EventType::UserDisabled };
                changes.push(Change::new(kind, subject, version, json!({ "uid": now.uid })));
            }
        }
    }
    let joined: Vec<String> = now.groups.difference(groups_before).cloned().collect();
    let left: Vec<String> = groups_before.difference(&now.groups).cloned().collect();
    for gid in &joined {
        changes.push(membership(EventType::GroupMemberAdded, gid, &now.uid, version));
    }
    for gid in &left {
        changes.push(membership(EventType::GroupMemberRemoved, gid, &now.uid, version));
    }
    UserDiff { changes, version, joined, left }
}

/// Diffs one group Nextcloud lists against the snapshot's `(deleted, version)`: `None` when it is
/// known and live, else its `group.created` and the version to remember.
pub(crate) fn group(known: Option<(bool, i64)>, gid: &str) -> Option<(Change, i64)> {
    match known {
        Some((false, _)) => None,
        other => {
            let version = other.map_or(0, |(_, v)| v) + 1;
            let change =
                Change::new(EventType::GroupCreated, format!("group:{gid}"), version, json!({ "gid": gid }));
            Some((change, version))
        }
    }
}

/// A user or a group that reconciliation no longer sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gone {
    /// A user.
    User,
    /// A group.
    Group,
}

/// Tombstones one vanished user or group at `version + 1`: each of its memberships (`(gid, uid)`) is
/// removed (a `group.member_removed` each), then its own deleted event. Returns the events and the
/// version to remember.
pub(crate) fn tombstone(
    gone: Gone,
    key: &str,
    version: i64,
    members: &[(String, String)],
) -> (Vec<Change>, i64) {
    let version = version + 1;
    let mut changes: Vec<Change> = members
        .iter()
        .map(|(gid, uid)| membership(EventType::GroupMemberRemoved, gid, uid, version))
        .collect();
    changes.push(match gone {
        Gone::User => {
            Change::new(EventType::UserDeleted, format!("user:{key}"), version, json!({ "uid": key }))
        }
        Gone::Group => {
            Change::new(EventType::GroupDeleted, format!("group:{key}"), version, json!({ "gid": key }))
        }
    });
    (changes, version)
}

fn membership(kind: EventType, gid: &str, uid: &str, version: i64) -> Change {
    Change::new(kind, format!("group:{gid}"), version, json!({ "gid": gid, "uid": uid }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(uid: &str, name: &str, enabled: bool, groups: &[&str]) -> UserRecord {
        UserRecord {
            uid: uid.into(),
            display_name: name.into(),
            email: None,
            enabled,
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        }
    }

    fn kinds(changes: &[Change]) -> Vec<EventType> {
        changes.iter().map(|c| c.kind).collect()
    }

    #[test]
    fn a_new_user_is_created_with_its_memberships_at_version_one() {
        let d = user(None, &record("alice", "Alice", true, &["staff"]), &BTreeSet::new());
        assert_eq!(kinds(&d.changes), [EventType::UserCreated, EventType::GroupMemberAdded]);
        assert_eq!((d.version, d.joined.as_slice()), (1, ["staff".to_owned()].as_slice()));
        assert_eq!(d.changes[1].subject, "group:staff");
    }

    #[test]
    fn changes_bump_the_version_once_each_and_an_unchanged_user_emits_nothing() {
        let known = KnownUser {
            display_name: "Alice".into(),
            email: None,
            enabled: true,
            deleted: false,
            version: 3,
        };
        let same = user(Some(&known), &record("alice", "Alice", true, &[]), &BTreeSet::new());
        assert_eq!((same.changes.len(), same.version), (0, 3));
        let d = user(Some(&known), &record("alice", "Alice A.", false, &[]), &["staff".to_owned()].into());
        assert_eq!(
            kinds(&d.changes),
            [EventType::UserUpdated, EventType::UserDisabled, EventType::GroupMemberRemoved]
        );
        assert_eq!(d.version, 5);
        assert_eq!(d.changes[0].data["changed"], json!(["display_name"]));
    }

    #[test]
    fn a_tombstoned_user_seen_again_is_created_at_a_new_version_with_a_new_id() {
        let gone =
            KnownUser { display_name: "A".into(), email: None, enabled: true, deleted: true, version: 2 };
        let d = user(Some(&gone), &record("a", "A", true, &[]), &BTreeSet::new());
        assert_eq!((kinds(&d.changes), d.version), (vec![EventType::UserCreated], 3));
        let first = user(None, &record("a", "A", true, &[]), &BTreeSet::new());
        let (a, b) = (first.changes[0].clone(), d.changes[0].clone());
        assert_ne!(a.into_event("oc", "reconcile", 1).id, b.into_event("oc", "reconcile", 1).id);
    }

    #[test]
    fn groups_and_tombstones() {
        assert_eq!(group(Some((false, 4)), "staff"), None);
        let (created, version) = group(Some((true, 4)), "staff").unwrap();
        assert_eq!((created.kind, version), (EventType::GroupCreated, 5));
        let members = [("staff".to_owned(), "carol".to_owned())];
        let (changes, version) = tombstone(Gone::User, "carol", 1, &members);
        assert_eq!(kinds(&changes), [EventType::GroupMemberRemoved, EventType::UserDeleted]);
        assert_eq!((version, changes[0].version, changes[1].subject.as_str()), (2, 2, "user:carol"));
    }

    #[test]
    fn events_carry_the_source_and_the_same_change_keeps_its_id() {
        let c = group(None, "g").unwrap().0;
        let e = c.clone().into_event("oc", "initial", 1_800_000_000);
        let v: Value = serde_json::from_slice(&e.payload).unwrap();
        assert_eq!(v["data"], json!({"gid": "g", "source": "initial"}));
        assert_eq!(e.id, c.into_event("oc", "initial", 1_800_000_001).id);
    }
}
