//! The replay store on disk: append-only segment files, one per minute of expiry
//! (`spent-<minute>.log`, one `<expiry> <hex key>` line per spent key), a `boot` marker naming the
//! kernel boot that wrote them, and a `lock` file held by the one process using the directory.
//! Segments are never rewritten: a whole file is deleted once every key in it has expired.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::ReplayKey;

/// Seconds of expiry covered by one segment.
const SEGMENT_SECS: u64 = 60;
/// The boot marker's content when every record was fsynced (no boot id available).
pub(super) const SYNCED: &str = "fsync";
/// How long a start waits for an earlier process to release the directory.
const LOCK_WAIT: Duration = Duration::from_secs(if cfg!(test) { 1 } else { 10 });
/// Length of one record line: 20 digits, a space, 64 hex digits, a newline.
const RECORD_LEN: usize = 86;

/// Whether a record must be fsynced before `append` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Durability {
    /// `write(2)` only: survives the process, not the kernel (the boot marker covers that).
    PageCache,
    /// `fdatasync` after every record (no boot id to tell a kernel restart apart).
    Fsync,
}

fn segment_name(segment: u64) -> String {
    format!("spent-{segment}.log")
}

fn segment_of(name: &str) -> Option<u64> {
    name.strip_prefix("spent-")?.strip_suffix(".log")?.parse().ok()
}

/// The segments in `dir`, by number.
fn segments(dir: &Path) -> io::Result<BTreeMap<u64, PathBuf>> {
    let mut out = BTreeMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if let Some(segment) = entry.file_name().to_str().and_then(segment_of) {
            out.insert(segment, entry.path());
        }
    }
    Ok(out)
}

/// Creates `dir` (0700) and takes the exclusive lock, waiting up to 10 s for an earlier process to
/// let go.
pub(super) fn lock(dir: &Path) -> anyhow::Result<File> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let file =
        OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(dir.join("lock"))?;
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                anyhow::bail!("another Waggle process uses this storage directory")
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
        }
    }
}

/// The boot marker an earlier process left, if any.
pub(super) fn read_boot(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join("boot")).ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// Whether any segment file exists (expired or not).
pub(super) fn has_segments(dir: &Path) -> io::Result<bool> {
    Ok(!segments(dir)?.is_empty())
}

/// Every live record (`expiry > now`); wholly expired segments are deleted, unreadable lines are
/// counted in `skipped`.
pub(super) fn read_all(dir: &Path, now: u64, skipped: &mut usize) -> io::Result<Vec<(ReplayKey, u64)>> {
    let mut out = Vec::new();
    for (segment, path) in segments(dir)? {
        if (segment + 1) * SEGMENT_SECS <= now {
            std::fs::remove_file(&path)?;
            continue;
        }
        let mut text = Vec::new();
        File::open(&path)?.read_to_end(&mut text)?;
        for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match parse(line) {
                Some((key, expiry)) if expiry > now => out.push((key, expiry)),
                Some(_) => {}
                None => *skipped += 1,
            }
        }
    }
    Ok(out)
}

fn parse(line: &[u8]) -> Option<(ReplayKey, u64)> {
    let line = std::str::from_utf8(line).ok()?;
    let (expiry, hex) = line.split_once(' ')?;
    if expiry.len() != 20 || hex.len() != 64 {
        return None;
    }
    let expiry = expiry.parse().ok()?;
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some((ReplayKey::from_bytes(key), expiry))
}

fn record(key: &ReplayKey, expiry: u64) -> String {
    let mut line = String::with_capacity(RECORD_LEN);
    let _ = write!(line, "{expiry:020} ");
    for b in key.as_bytes() {
        let _ = write!(line, "{b:02x}");
    }
    line.push('\n');
    line
}

/// The writing side: open segment files by number.
#[derive(Debug)]
pub(super) struct SpentLog {
    dir: PathBuf,
    durability: Durability,
    open: BTreeMap<u64, File>,
}

impl SpentLog {
    /// Writes the boot marker (durably, once per start) and returns the writer.
    pub(super) fn open(
        dir: &Path,
        durability: Durability,
        boot_id: Option<&str>,
        _now: u64,
    ) -> io::Result<Self> {
        let marker = match (durability, boot_id) {
            (Durability::PageCache, Some(id)) => id,
            _ => SYNCED,
        };
        let tmp = dir.join("boot.tmp");
        let mut f = OpenOptions::new().create(true).truncate(true).write(true).mode(0o600).open(&tmp)?;
        f.write_all(marker.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join("boot"))?;
        File::open(dir)?.sync_all()?;
        Ok(Self { dir: dir.to_path_buf(), durability, open: BTreeMap::new() })
    }

    /// Appends one record with a single write (and an fsync in [`Durability::Fsync`]).
    pub(super) fn append(&mut self, key: &ReplayKey, expiry: u64, now: u64) -> io::Result<()> {
        let segment = expiry / SEGMENT_SECS;
        if !self.open.contains_key(&segment) {
            self.prune(now)?;
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(self.dir.join(segment_name(segment)))?;
            if self.durability == Durability::Fsync {
                File::open(&self.dir)?.sync_all()?;
            }
            self.open.insert(segment, file);
        }
        let file = self.open.get_mut(&segment).ok_or_else(|| io::Error::other("segment not open"))?;
        file.write_all(record(key, expiry).as_bytes())?;
        if self.durability == Durability::Fsync {
            file.sync_data()?;
        }
        Ok(())
    }

    /// Closes and deletes the segments whose keys have all expired.
    fn prune(&mut self, now: u64) -> io::Result<()> {
        self.open.retain(|segment, _| (segment + 1) * SEGMENT_SECS > now);
        for (segment, path) in segments(&self.dir)? {
            if (segment + 1) * SEGMENT_SECS <= now {
                std::fs::remove_file(path)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_garbage_is_refused() {
        let key = ReplayKey::new("t", &[b"k", b"n"]);
        let line = record(&key, 1_800_000_123);
        assert_eq!(line.len(), RECORD_LEN);
        assert_eq!(parse(line.trim_end().as_bytes()), Some((key, 1_800_000_123)));
        for bad in
            [&b""[..], b"\0\0\0\0", b"1800000123 abc", &line.as_bytes()[..40], b"x".repeat(85).as_slice()]
        {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
