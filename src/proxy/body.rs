//! Request bodies that must be hashed before they are forwarded (the signature covers
//! `Content-Digest`, so the headers cannot leave before the last byte is read).
//!
//! The body is hashed while it is read. Up to a threshold it stays in memory; past that it is spooled
//! to a temporary file under the storage directory and streamed from there. Reading stops at the
//! cap (413). The temporary file is removed when the [`SpooledBody`] (or the stream made from it) is
//! dropped, on every path: success, upstream failure, client abort.

use std::path::Path;

use bytes::{Bytes, BytesMut};
use futures_util::TryStreamExt as _;
use http_body::Frame;
use http_body_util::{BodyExt as _, StreamBody, combinators::BoxBody};
use tempfile::TempPath;

use super::ProxyError;
use crate::signing::ContentDigest;

/// Read and write buffer for spool files.
const SPOOL_BUFFER: usize = 256 * 1024;

/// The body type sent upstream.
pub(crate) type UpstreamBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// Size limits for one body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimits {
    /// Keep at most this many bytes in memory.
    pub(crate) memory: u64,
    /// Refuse bodies larger than this.
    pub(crate) cap: u64,
}

enum Stored {
    Memory(Bytes),
    File(TempPath),
}

/// A fully read, hashed body.
pub(crate) struct SpooledBody {
    stored: Stored,
    len: u64,
    digest: [u8; 32],
}

impl std::fmt::Debug for SpooledBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.stored {
            Stored::Memory(_) => "memory",
            Stored::File(_) => "file",
        };
        f.debug_struct("SpooledBody").field("len", &self.len).field("stored", &kind).finish()
    }
}

impl SpooledBody {
    /// Length in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Whether the body is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the body went to disk.
    #[cfg(test)]
    pub(crate) fn is_spooled(&self) -> bool {
        matches!(self.stored, Stored::File(_))
    }

    /// SHA-256 of the body.
    pub(crate) fn sha256(&self) -> &[u8; 32] {
        &self.digest
    }

    /// The RFC 9530 `Content-Digest` value.
    pub(crate) fn content_digest(&self) -> String {
        crate::signing::digest::format_sha256(&self.digest)
    }

    /// A streaming body for the upstream request; the spool file lives until the stream is dropped.
    ///
    /// A spooled body is read back on a blocking thread that reads ahead (up to two chunks) into
    /// owned buffers handed straight to the stream: no second copy, and disk reads overlap with
    /// socket writes.
    pub(crate) async fn into_upstream(self) -> Result<UpstreamBody, ProxyError> {
        match self.stored {
            Stored::Memory(bytes) => Ok(http_body_util::Full::new(bytes).map_err(|e| match e {}).boxed()),
            Stored::File(path) => {
                let file = std::fs::File::open(&path).map_err(ProxyError::Spool)?;
                let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(2);
                tokio::task::spawn_blocking(move || read_ahead(file, &tx));
                let stream = tokio_stream_from(rx)
                    .map_ok(Frame::data)
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>);
                // The TempPath rides along with the stream and deletes the file when it is dropped.
                let guarded = GuardedStream { inner: stream, _path: path };
                Ok(StreamBody::new(guarded).boxed())
            }
        }
    }
}

/// Reads `file` in `SPOOL_BUFFER` chunks into `tx` until the end, an error, or the receiver is gone
/// (the upstream request was dropped).
fn read_ahead(mut file: std::fs::File, tx: &tokio::sync::mpsc::Sender<std::io::Result<Bytes>>) {
    use std::io::Read as _;
    loop {
        let mut buf = vec![0u8; SPOOL_BUFFER];
        let chunk = match file.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                buf.truncate(n);
                Ok(Bytes::from(buf))
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => Err(e),
        };
        let failed = chunk.is_err();
        if tx.blocking_send(chunk).is_err() || failed {
            return;
        }
    }
}

/// The receiving half of the read-ahead channel as a `Stream`.
fn tokio_stream_from<T>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Unpin {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// A stream that owns the spool file's path, so the file goes away with the stream.
struct GuardedStream<S> {
    inner: S,
    _path: TempPath,
}

impl<S: futures_util::Stream + Unpin> futures_util::Stream for GuardedStream<S> {
    type Item = S::Item;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::pin::Pin::new(&mut self.inner).poll_next(cx)
    }
}

/// Reads `body` completely, hashing as it goes; memory stays bounded by `limits.memory` plus one
/// frame. `declared` is the request's `Content-Length`, checked against the cap before reading.
pub(crate) async fn spool<B>(
    body: B,
    declared: Option<u64>,
    limits: BodyLimits,
    dir: &Path,
) -> Result<SpooledBody, ProxyError>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if declared.is_some_and(|n| n > limits.cap) {
        return Err(ProxyError::TooLarge { cap: limits.cap });
    }
    let mut body = body;
    let mut hasher = ContentDigest::new();
    let mut memory = BytesMut::new();
    let mut file: Option<(SpoolWriter, TempPath)> = None;
    let mut len: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ProxyError::ClientBody(e.into()))?;
        let Ok(chunk) = frame.into_data() else { continue };
        len += chunk.len() as u64;
        if len > limits.cap {
            return Err(ProxyError::TooLarge { cap: limits.cap });
        }
        hasher.update(&chunk);
        if file.is_none() && len > limits.memory {
            std::fs::create_dir_all(dir).map_err(ProxyError::Spool)?;
            let named =
                tempfile::Builder::new().prefix("body-").tempfile_in(dir).map_err(ProxyError::Spool)?;
            let (std_file, path) = named.into_parts();
            let mut writer = SpoolWriter::new(std_file);
            writer.push(std::mem::take(&mut memory).freeze()).await.map_err(ProxyError::Spool)?;
            file = Some((writer, path));
        }
        match file.as_mut() {
            Some((w, _)) => w.push(chunk).await.map_err(ProxyError::Spool)?,
            None => memory.extend_from_slice(&chunk),
        }
    }
    let stored = match file {
        Some((w, path)) => {
            w.finish().await.map_err(ProxyError::Spool)?;
            Stored::File(path)
        }
        None => Stored::Memory(memory.freeze()),
    };
    Ok(SpooledBody { stored, len, digest: hasher.finish_bytes() })
}

/// Writes the body's own chunks to the spool file on a blocking thread without copying them:
/// frames are batched up to `SPOOL_BUFFER` and one batch is written while the next is gathered
/// (write-behind). At most two batches are held, so memory stays bounded.
struct SpoolWriter {
    /// The file, when no write is in flight.
    idle: Option<std::fs::File>,
    in_flight: Option<tokio::task::JoinHandle<std::io::Result<std::fs::File>>>,
    batch: Vec<Bytes>,
    batched: usize,
}

impl SpoolWriter {
    fn new(file: std::fs::File) -> Self {
        Self { idle: Some(file), in_flight: None, batch: Vec::new(), batched: 0 }
    }

    async fn push(&mut self, chunk: Bytes) -> std::io::Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        self.batched += chunk.len();
        self.batch.push(chunk);
        if self.batched >= SPOOL_BUFFER {
            self.dispatch().await?;
        }
        Ok(())
    }

    /// Waits for the write in flight, then hands the current batch to a blocking thread.
    async fn dispatch(&mut self) -> std::io::Result<()> {
        let mut file = match self.in_flight.take() {
            Some(write) => write.await.map_err(std::io::Error::other)??,
            None => self.idle.take().ok_or_else(|| std::io::Error::other("spool writer has no file"))?,
        };
        let batch = std::mem::take(&mut self.batch);
        self.batched = 0;
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            use std::io::Write as _;
            for chunk in &batch {
                file.write_all(chunk)?;
            }
            Ok(file)
        }));
        Ok(())
    }

    /// Writes what is left and waits until everything is written.
    async fn finish(mut self) -> std::io::Result<()> {
        if !self.batch.is_empty() {
            self.dispatch().await?;
        }
        match self.in_flight.take() {
            Some(write) => write.await.map_err(std::io::Error::other)?.map(drop),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    fn limits(memory: u64, cap: u64) -> BodyLimits {
        BodyLimits { memory, cap }
    }

    fn chunked(
        parts: Vec<&'static [u8]>,
    ) -> impl http_body::Body<Data = Bytes, Error = std::io::Error> + Unpin {
        let frames = parts.into_iter().map(|p| Ok::<_, std::io::Error>(Frame::data(Bytes::from_static(p))));
        StreamBody::new(futures_util::stream::iter(frames))
    }

    async fn collect(body: UpstreamBody) -> Vec<u8> {
        body.collect().await.unwrap().to_bytes().to_vec()
    }

    #[tokio::test]
    async fn small_bodies_stay_in_memory_with_the_right_digest() {
        let dir = tempfile::tempdir().unwrap();
        let b = spool(Full::new(Bytes::from_static(b"hello")), Some(5), limits(16, 100), dir.path())
            .await
            .unwrap();
        assert!(!b.is_spooled());
        assert_eq!(b.content_digest(), crate::signing::content_digest_value(b"hello"));
        assert_eq!(collect(b.into_upstream().await.unwrap()).await, b"hello");
    }

    #[tokio::test]
    async fn large_bodies_are_spooled_and_the_file_is_removed_after_streaming() {
        let dir = tempfile::tempdir().unwrap();
        let b = spool(chunked(vec![b"abcdefgh", b"ijklmnop", b"qrst"]), None, limits(10, 100), dir.path())
            .await
            .unwrap();
        assert!(b.is_spooled());
        assert_eq!(b.len(), 20);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(b.content_digest(), crate::signing::content_digest_value(b"abcdefghijklmnopqrst"));
        let upstream = b.into_upstream().await.unwrap();
        assert_eq!(collect(upstream).await, b"abcdefghijklmnopqrst");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "spool file removed");
    }

    #[tokio::test]
    async fn dropping_a_spooled_body_removes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let b = spool(chunked(vec![b"0123456789", b"0123456789"]), None, limits(4, 100), dir.path())
            .await
            .unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        drop(b);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn over_cap_stops_reading_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = spool(chunked(vec![b"0123456789", b"0123456789", b"x"]), None, limits(4, 15), dir.path())
            .await
            .unwrap_err();
        assert!(matches!(err, ProxyError::TooLarge { cap: 15 }));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let err = spool(Full::new(Bytes::new()), Some(16), limits(4, 15), dir.path()).await.unwrap_err();
        assert!(matches!(err, ProxyError::TooLarge { .. }), "declared length checked first");
    }

    #[tokio::test]
    async fn empty_body_has_the_empty_digest() {
        let dir = tempfile::tempdir().unwrap();
        let b = spool(Full::new(Bytes::new()), None, limits(4, 15), dir.path()).await.unwrap();
        assert_eq!(b.content_digest(), crate::signing::EMPTY_BODY_DIGEST);
        assert!(b.is_empty());
    }
}
