//! Streams a store hit to the client while copying it, so the next request is a memory hit.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::Stream;

use crate::storage::{Blob, ByteStream};

/// Passes `blob` through and calls `done` with a copy of its bytes once all of them (exactly
/// its length) have streamed; a stream that fails or runs long hands nothing over.
pub fn tee(blob: Blob, done: impl FnOnce(Bytes) + Send + 'static) -> Blob {
    let stream = Tee {
        inner: blob.stream,
        buf: BytesMut::with_capacity(usize::try_from(blob.len).unwrap_or(0)),
        expected: blob.len,
        done: Some(Box::new(done)),
    };
    Blob { len: blob.len, stream: Box::pin(stream) }
}

struct Tee {
    inner: ByteStream,
    buf: BytesMut,
    expected: u64,
    done: Option<Box<dyn FnOnce(Bytes) + Send>>,
}

impl Stream for Tee {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let next = this.inner.as_mut().poll_next(cx);
        match &next {
            Poll::Ready(Some(Ok(chunk))) => {
                if (this.buf.len() + chunk.len()) as u64 <= this.expected {
                    this.buf.extend_from_slice(chunk);
                } else {
                    this.done = None;
                }
                // Hand over on the last byte: with a known length, hyper stops polling once
                // it has them all and never asks for the end of the stream.
                if this.buf.len() as u64 == this.expected {
                    if let Some(done) = this.done.take() {
                        done(std::mem::take(&mut this.buf).freeze());
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => this.done = None,
            Poll::Ready(None) | Poll::Pending => {}
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use futures_util::StreamExt;

    use super::*;

    fn blob(chunks: Vec<std::io::Result<Bytes>>, len: u64) -> Blob {
        Blob { len, stream: Box::pin(futures_util::stream::iter(chunks)) }
    }

    async fn drain(blob: Blob) -> Vec<u8> {
        let mut out = Vec::new();
        let mut stream = blob.stream;
        while let Some(Ok(chunk)) = stream.next().await {
            out.extend_from_slice(&chunk);
        }
        out
    }

    #[tokio::test]
    async fn a_complete_stream_is_copied_once() {
        let copy = Arc::new(Mutex::new(None));
        let sink = Arc::clone(&copy);
        let chunks = vec![Ok(Bytes::from_static(b"abc")), Ok(Bytes::from_static(b"de"))];
        let passed = drain(tee(blob(chunks, 5), move |b| *sink.lock().unwrap() = Some(b))).await;
        assert_eq!(passed, b"abcde");
        assert_eq!(copy.lock().unwrap().as_deref(), Some(&b"abcde"[..]));
    }

    #[tokio::test]
    async fn short_long_or_failing_streams_hand_nothing_over() {
        for (chunks, len) in [
            (vec![Ok(Bytes::from_static(b"abc"))], 5),
            (vec![Ok(Bytes::from_static(b"abcdef"))], 5),
            (vec![Ok(Bytes::from_static(b"ab")), Err(std::io::Error::other("cut")), Ok(Bytes::from_static(b"cde"))], 5),
        ] {
            let copied = Arc::new(Mutex::new(false));
            let sink = Arc::clone(&copied);
            drain(tee(blob(chunks, len), move |_| *sink.lock().unwrap() = true)).await;
            assert!(!*copied.lock().unwrap());
        }
    }
}
