//! The spent-signature store: a signature is accepted at most once, whatever happens between two
//! uses — a restart, a `kill -9`, a host reboot. Reusable by every wire profile: the caller names
//! what was spent with an opaque [`ReplayKey`] and says when the signature can pass its clock check
//! ([`Validity`]); the store answers once with `Ok` and ever after with [`ReplayError::Replayed`].
//!
//! How it survives a restart without an fsync per call (docs/PROTOCOL.md §5.1, step 5):
//! - Each spent key is appended to a segment file under `<storage>/replay/` with one `write(2)`
//!   **before** [`ReplayStore::spend`] returns, so before the call is forwarded. A process that dies
//!   at any later instant (panic, OOM kill, `kill -9`, container restart) leaves the record in the
//!   kernel's page cache, which the next process on the same kernel reads back.
//! - What a write without fsync can lose is only the page cache itself: a kernel crash or power loss.
//!   The store records the kernel's boot id next to the segments. When the next process finds a
//!   different boot id (or segments without a boot id), its record may be incomplete, and it refuses
//!   every signature that could have passed the clock check before this boot began
//!   ([`ReplayError::BeforeRestart`]). Signatures made after the boot are unaffected, so this costs
//!   at most the future-skew allowance (60 s by default) counted from the boot, not from the start.
//! - Where the kernel has no boot id (not Linux), every record is fsynced instead.
//! - Segments are named by the minute their entries expire and are deleted whole once that minute
//!   has passed: nothing is rewritten, and the files hold at most one window of keys.
//! - One process per storage directory: an exclusive lock on `replay/lock` is taken at start.
//!
//! Memory is bounded: when `capacity` live keys are held, `spend` refuses ([`ReplayError::Full`],
//! answered 503) rather than skip the check.

mod boot;
mod log;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::path::Path;
use std::sync::Mutex;

use anyhow::Context as _;
use sha2::{Digest as _, Sha256};

pub(crate) use boot::Boot;
use log::{Durability, SpentLog};

/// What was spent: an opaque, fixed-size key (SHA-256 over a namespace and length-prefixed parts),
/// so profiles never collide and raw nonces or MACs never reach the disk.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ReplayKey([u8; 32]);

impl std::fmt::Debug for ReplayKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReplayKey({:02x}{:02x}{:02x}{:02x}…)", self.0[0], self.0[1], self.0[2], self.0[3])
    }
}

impl ReplayKey {
    /// The key of `parts` in `namespace` (e.g. `"rfc9421"` with the key id and the nonce). Each part
    /// is length-prefixed, so `("ab", "c")` and `("a", "bc")` differ.
    pub(crate) fn new(namespace: &str, parts: &[&[u8]]) -> Self {
        let mut h = Sha256::new();
        for part in std::iter::once(namespace.as_bytes()).chain(parts.iter().copied()) {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        Self(h.finalize().into())
    }

    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// When a signature can pass its verifier's clock check, in unix seconds, both ends included:
/// `from` = the earliest instant (its `created` minus the allowed clock lead), `until` = the latest
/// (the earlier of its `expires` and `created` plus the allowed age).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Validity {
    /// First instant the signature can be accepted.
    pub(crate) from: u64,
    /// Last instant the signature can be accepted.
    pub(crate) until: u64,
}

/// Why a key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ReplayError {
    /// Spent before (by this process or an earlier one).
    #[error("signature already used")]
    Replayed,
    /// It could have been spent before the last unclean host restart, whose record may be lost.
    #[error("signature may have been used before an unclean restart")]
    BeforeRestart,
    /// `capacity` live keys are held (503, never a skipped check).
    #[error("replay store full")]
    Full,
    /// The record could not be written; refused, because it could not be made durable (503).
    #[error("replay store cannot write")]
    Storage,
}

#[derive(Debug, Default)]
struct Live {
    /// Key → the first second at which it may be forgotten.
    keys: HashMap<ReplayKey, u64>,
    /// The same, ordered by expiry for pruning.
    expiries: BinaryHeap<Reverse<(u64, ReplayKey)>>,
}

impl Live {
    fn prune(&mut self, now: u64) {
        while let Some(Reverse((expiry, key))) = self.expiries.peek().copied() {
            if expiry > now {
                break;
            }
            self.expiries.pop();
            if self.keys.get(&key) == Some(&expiry) {
                self.keys.remove(&key);
            }
        }
    }

    fn insert(&mut self, key: ReplayKey, expiry: u64) {
        self.keys.insert(key, expiry);
        self.expiries.push(Reverse((expiry, key)));
    }
}

struct Inner {
    live: Live,
    log: SpentLog,
}

/// The store (share it as `Arc<ReplayStore>`; every signed route and profile uses the same one).
pub(crate) struct ReplayStore {
    inner: Mutex<Inner>,
    capacity: usize,
    /// Signatures that could pass their clock check at or before this instant may have been spent
    /// without a surviving record (None: the record is complete).
    unrecorded_until: Option<u64>,
    /// Held for the store's life: one process per storage directory.
    _lock: std::fs::File,
}

impl std::fmt::Debug for ReplayStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayStore")
            .field("capacity", &self.capacity)
            .field("unrecorded_until", &self.unrecorded_until)
            .finish_non_exhaustive()
    }
}

impl ReplayStore {
    /// Opens the store in `dir` (created 0700), reads back the live keys an earlier process spent,
    /// and decides from `boot` whether that record can be incomplete. `storage_was_used` says
    /// whether Waggle ran on this storage before (an earlier version kept no record at all). `now`
    /// is unix seconds.
    pub(crate) fn open(
        dir: &Path,
        capacity: usize,
        boot: &Boot,
        storage_was_used: bool,
        now: u64,
    ) -> anyhow::Result<Self> {
        let lock =
            log::lock(dir).with_context(|| format!("cannot lock the replay store in {}", dir.display()))?;
        let previous = log::read_boot(dir);
        let had_records = log::has_segments(dir)?;
        // Until when may an earlier process have accepted a signature it left no record of?
        let since_boot = boot.booted_at.map_or(now, |b| b.saturating_add(1).min(now));
        let unrecorded_until = match (previous.as_deref(), boot.id.as_deref()) {
            // The earlier process fsynced every record.
            (Some(log::SYNCED), _) => None,
            // Written under this very kernel: the page cache kept every record.
            (Some(prev), Some(id)) if prev == id => None,
            // Another boot: that process died before this boot began, with its unsynced tail.
            (Some(_), Some(_)) => Some(since_boot),
            // Cannot tell which boot wrote it; it may have run until now.
            (Some(_), None) => Some(now),
            // A fresh install.
            (None, _) if !had_records && !storage_was_used => None,
            // Records without a boot marker, or storage used by a version that kept none.
            (None, _) => Some(now),
        };
        let durability = if boot.id.is_some() { Durability::PageCache } else { Durability::Fsync };
        if let Some(until) = unrecorded_until {
            tracing::warn!(
                unrecorded_until = until,
                "the record of spent signatures may be incomplete (unclean host restart, or an earlier version); refusing signatures that could have been used before"
            );
        }
        let mut live = Live::default();
        let mut skipped = 0_usize;
        for (key, expiry) in log::read_all(dir, now, &mut skipped)? {
            if live.keys.len() >= capacity {
                anyhow::bail!(
                    "the replay store holds more live keys than WAGGLE_CALLBACK__REPLAY_CAPACITY ({capacity}); raise it"
                );
            }
            live.insert(key, expiry);
        }
        if skipped > 0 {
            tracing::warn!(skipped, "unreadable replay records skipped");
        }
        let log = SpentLog::open(dir, durability, boot.id.as_deref(), now)?;
        tracing::info!(live = live.keys.len(), ?durability, "replay store opened");
        Ok(Self { inner: Mutex::new(Inner { live, log }), capacity, unrecorded_until, _lock: lock })
    }

    /// Spends `key` if it was never spent, recording it durably before returning `Ok`; the caller
    /// has already checked the signature and its clock (`validity` holds at `now`).
    pub(crate) fn spend(&self, key: &ReplayKey, validity: Validity, now: u64) -> Result<(), ReplayError> {
        if self.unrecorded_until.is_some_and(|until| validity.from <= until) {
            return Err(ReplayError::BeforeRestart);
        }
        // Forgettable once no clock check can pass it any more.
        let expiry = validity.until.max(now).saturating_add(1);
        let mut inner = self.inner.lock().map_err(|_| ReplayError::Storage)?;
        inner.live.prune(now);
        if inner.live.keys.contains_key(key) {
            return Err(ReplayError::Replayed);
        }
        if inner.live.keys.len() >= self.capacity {
            return Err(ReplayError::Full);
        }
        if let Err(e) = inner.log.append(key, expiry, now) {
            tracing::error!(error = %e, "cannot record a spent signature; refusing it");
            return Err(ReplayError::Storage);
        }
        inner.live.insert(*key, expiry);
        Ok(())
    }

    /// Live keys held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().expect("replay lock").live.keys.len()
    }
}

#[cfg(test)]
mod tests;
