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
use tokio::io::AsyncWriteExt as _;

use super::ProxyError;
use crate::signing::ContentDigest;

/// Read and write buffer for spool files.
const SPOOL_BUFFER: usize = 256 * 1024;

/// The body type sent upstream.
pub type UpstreamBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// Size limits for one body.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Keep at most this many bytes in memory.
    pub memory: u64,
    /// Refuse bodies larger than this.
    pub cap: u64,
}

enum Stored {
    Memory(Bytes),
    File(TempPath),
}

/// A fully read, hashed body.
pub struct SpooledBody {
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
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the body went to disk.
    pub fn is_spooled(&self) -> bool {
        matches!(self.stored, Stored::File(_))
    }

    /// SHA-256 of the body.
    pub fn sha256(&self) -> &[u8; 32] {
        &self.digest
    }

    /// The RFC 9530 `Content-Digest` value.
    pub fn content_digest(&self) -> String {
        crate::signing::digest::format_sha256(&self.digest)
    }

    /// A streaming body for the upstream request; the spool file lives until the stream is dropped.
    pub async fn into_upstream(self) -> Result<UpstreamBody, ProxyError> {
        match self.stored {
            Stored::Memory(bytes) => Ok(http_body_util::Full::new(bytes).map_err(|e| match e {}).boxed()),
            Stored::File(path) => {
                let file = tokio::fs::File::open(&path).await.map_err(ProxyError::Spool)?;
                let stream = tokio_util::io::ReaderStream::with_capacity(file, SPOOL_BUFFER)
                    .map_ok(Frame::data)
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>);
                // The TempPath rides along with the stream and deletes the file when it is dropped.
                let guarded = GuardedStream { inner: stream, _path: path };
                Ok(StreamBody::new(guarded).boxed())
            }
        }
    }
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
pub async fn spool<B>(
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
    let mut file: Option<(tokio::io::BufWriter<tokio::fs::File>, TempPath)> = None;
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
            // Large writes: tokio::fs hands each write to a blocking thread, so batch them.
            let mut f =
                tokio::io::BufWriter::with_capacity(SPOOL_BUFFER, tokio::fs::File::from_std(std_file));
            f.write_all(&memory).await.map_err(ProxyError::Spool)?;
            memory = BytesMut::new();
            file = Some((f, path));
        }
        match file.as_mut() {
            Some((f, _)) => f.write_all(&chunk).await.map_err(ProxyError::Spool)?,
            None => memory.extend_from_slice(&chunk),
        }
    }
    let stored = match file {
        Some((mut f, path)) => {
            f.flush().await.map_err(ProxyError::Spool)?;
            Stored::File(path)
        }
        None => Stored::Memory(memory.freeze()),
    };
    Ok(SpooledBody { stored, len, digest: hasher.finish_bytes() })
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
