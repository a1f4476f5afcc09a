//! User and group events for the SaaS: the typed model, stable ids, and the Standard Webhooks
//! payload `{type, timestamp, data}`.
//!
//! Where events come from: reconciliation (`reconcile`, the source of truth: `directory` reads
//! Nextcloud, `diff` decides, `snapshot` commits, `schedule` repeats), hinted by webhook_listeners
//! deliveries (`listeners` registers, `ingest` receives). Where they go: the durable outbox
//! (`queue`), drained by the delivery worker (`dispatch`). `routes` are the ADMIN routes.

pub(crate) mod diff;
pub mod directory;
pub(crate) mod dispatch;
pub mod ingest;
pub(crate) mod listeners;
pub(crate) mod queue;
pub(crate) mod reconcile;
pub(crate) mod routes;
pub(crate) mod schedule;
pub(crate) mod snapshot;

pub use queue::QueueStats;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// What happened to a user or a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    /// A user appeared.
    #[serde(rename = "user.created")]
    UserCreated,
    /// Display name, email or groups changed (`data.changed` lists the fields).
    #[serde(rename = "user.updated")]
    UserUpdated,
    /// A user was disabled.
    #[serde(rename = "user.disabled")]
    UserDisabled,
    /// A user was enabled again.
    #[serde(rename = "user.enabled")]
    UserEnabled,
    /// A user disappeared.
    #[serde(rename = "user.deleted")]
    UserDeleted,
    /// A group appeared.
    #[serde(rename = "group.created")]
    GroupCreated,
    /// A group disappeared.
    #[serde(rename = "group.deleted")]
    GroupDeleted,
    /// A user joined a group.
    #[serde(rename = "group.member_added")]
    GroupMemberAdded,
    /// A user left a group.
    #[serde(rename = "group.member_removed")]
    GroupMemberRemoved,
}

impl EventType {
    /// The dotted name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserCreated => "user.created",
            Self::UserUpdated => "user.updated",
            Self::UserDisabled => "user.disabled",
            Self::UserEnabled => "user.enabled",
            Self::UserDeleted => "user.deleted",
            Self::GroupCreated => "group.created",
            Self::GroupDeleted => "group.deleted",
            Self::GroupMemberAdded => "group.member_added",
            Self::GroupMemberRemoved => "group.member_removed",
        }
    }
}

/// One event, ready for the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Stable id (`evt_…`), the Standard Webhooks `webhook-id`.
    pub id: String,
    /// The ordering key: events of one subject are delivered in order (`user:<uid>`, `group:<gid>`).
    pub subject: String,
    /// The type.
    pub kind: EventType,
    /// The exact payload bytes to deliver.
    pub payload: Vec<u8>,
    /// Unix seconds when the event was observed.
    pub created_at: u64,
}

/// A stable event id: `evt_` + base32 of SHA-256 over instance id, type, subject and a content
/// fingerprint (the new state, or the snapshot version), so a re-diff of the same change or a
/// repeated webhook delivery maps to the same id.
pub fn event_id(instance: &str, kind: EventType, subject: &str, fingerprint: &str) -> String {
    let mut h = Sha256::new();
    for part in [instance, kind.as_str(), subject, fingerprint] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    let digest = h.finalize();
    // URL-safe base64 of 18 bytes: 24 characters, no padding, no ambiguity.
    format!("evt_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..18]))
}

/// Builds an event with its payload `{type, timestamp, data}` (RFC 3339 timestamp).
pub fn event(
    instance: &str,
    kind: EventType,
    subject: &str,
    fingerprint: &str,
    data: &Value,
    at: u64,
) -> Event {
    let timestamp =
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(at));
    let payload = json!({ "type": kind.as_str(), "timestamp": timestamp.to_string(), "data": data });
    Event {
        id: event_id(instance, kind, subject, fingerprint),
        subject: subject.to_owned(),
        kind,
        payload: serde_json::to_vec(&payload).expect("JSON serialises"),
        created_at: at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinguish_their_parts() {
        let a = event_id("oc1", EventType::UserCreated, "user:alice", "v1");
        assert_eq!(a, event_id("oc1", EventType::UserCreated, "user:alice", "v1"));
        assert!(a.starts_with("evt_") && a.len() == 28);
        assert_ne!(a, event_id("oc2", EventType::UserCreated, "user:alice", "v1"));
        assert_ne!(a, event_id("oc1", EventType::UserDeleted, "user:alice", "v1"));
        assert_ne!(
            a,
            event_id("oc1", EventType::UserCreated, "user:alicev", "1"),
            "parts are length-prefixed"
        );
    }

    #[test]
    fn payloads_follow_the_standard_webhooks_shape() {
        let e = event(
            "oc1",
            EventType::GroupMemberAdded,
            "group:staff",
            "x",
            &json!({"gid": "staff", "uid": "alice"}),
            1_800_000_000,
        );
        let v: Value = serde_json::from_slice(&e.payload).unwrap();
        assert_eq!(v["type"], "group.member_added");
        assert_eq!(v["timestamp"], "2027-01-15T08:00:00Z");
        assert_eq!(v["data"]["uid"], "alice");
    }
}
