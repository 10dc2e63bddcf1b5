//! The response body: nothing, bytes in memory, or a stream of known length.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

use crate::storage::{Blob, ByteStream};

/// A response body.
pub enum Body {
    /// No bytes (204, 304, HEAD).
    Empty,
    /// Bytes already in memory; taken on the first poll.
    Full(Option<Bytes>),
    /// Bytes streamed from the object store.
    Stream {
        /// The chunks.
        stream: ByteStream,
        /// Total length.
        len: u64,
    },
}

impl Body {
    /// A body of `bytes`.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Self::Full(Some(bytes.into()))
    }

    /// A body streaming `blob`.
    pub fn stream(blob: Blob) -> Self {
        Self::Stream { stream: blob.stream, len: blob.len }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            Self::Empty => Poll::Ready(None),
            Self::Full(bytes) => Poll::Ready(bytes.take().filter(|b| !b.is_empty()).map(|b| Ok(Frame::data(b)))),
            Self::Stream { stream, .. } => stream.as_mut().poll_next(cx).map(|item| item.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Empty | Self::Full(None) => true,
            Self::Full(Some(b)) => b.is_empty(),
            Self::Stream { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Empty | Self::Full(None) => SizeHint::with_exact(0),
            Self::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Self::Stream { len, .. } => SizeHint::with_exact(*len),
        }
    }
}
