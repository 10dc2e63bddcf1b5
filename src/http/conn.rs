//! Deadlines of a connection, whatever protocol it speaks, enforced on its socket.
//!
//! hyper's own HTTP/1 header timeout starts only once the protocol is known and also ends idle
//! keep-alive connections; HTTP/2 has none. So the socket is wrapped ([`Guarded`]) and the
//! service tells it when requests start and end ([`Activity`]):
//! - no request in progress, nothing received since the last one (or since the connection
//!   opened): the first request's head must start and end within `header_timeout`; later ones
//!   may wait `idle_timeout` (keep-alive);
//! - bytes of a new request head received: the head must be complete `header_timeout` after
//!   the first of them — for HTTP/1, an HTTP/2 preface, or anything else;
//! - a request in progress: reads have no deadline here (a stalled body is answered 408 by the
//!   handler), and a write that makes no progress for `idle_timeout` ends the connection (a
//!   client that never reads its response).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The deadlines a connection keeps.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// Time to send a whole request head, from its first byte (or from the connection's start).
    pub header: Duration,
    /// Time a connection may wait for its next request, or a write may make no progress.
    pub idle: Duration,
}

/// What the service reports about a connection's requests.
#[derive(Debug, Clone, Default)]
pub struct Activity(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    /// Requests being answered (bodies included).
    in_flight: AtomicUsize,
    /// Requests started so far.
    started: AtomicU64,
    /// When the last request ended.
    idle_since: Mutex<Option<Instant>>,
}

impl Activity {
    /// Marks a request as started; it ends when the returned guard is dropped (after its
    /// response body).
    pub fn start(&self) -> RequestGuard {
        self.0.in_flight.fetch_add(1, Ordering::AcqRel);
        self.0.started.fetch_add(1, Ordering::AcqRel);
        RequestGuard(Arc::clone(&self.0))
    }
}

/// A request in progress on its connection.
#[derive(Debug)]
pub struct RequestGuard(Arc<Shared>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        *self.0.idle_since.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A socket with the connection's deadlines.
pub struct Guarded<S> {
    inner: S,
    deadlines: Deadlines,
    activity: Activity,
    opened: Instant,
    /// First byte of a head being received, and the request count it belongs after.
    head_started: Option<(Instant, u64)>,
    /// When a write first found the socket full, until one makes progress.
    write_blocked: Option<Instant>,
    read_timer: Timer,
    write_timer: Timer,
}

/// A sleep re-armed only when the deadline moves earlier than it is armed for, or when it fires
/// before the deadline. A keep-alive connection's deadline moves later with every request, and
/// re-arming a tokio timer takes the timer wheel's lock: re-arming lazily keeps that off the
/// path of every request.
struct Timer {
    sleep: Pin<Box<Sleep>>,
    armed_for: Option<Instant>,
}

impl Timer {
    fn new() -> Self {
        Self { sleep: Box::pin(tokio::time::sleep(Duration::from_secs(3600))), armed_for: None }
    }

    /// Polls for `deadline` (registering the task to wake at or before it); true once it has
    /// passed.
    fn expired(&mut self, deadline: Instant, cx: &mut Context<'_>) -> bool {
        if self.armed_for.is_none_or(|armed| deadline < armed) {
            self.arm(deadline);
        }
        while self.sleep.as_mut().poll(cx).is_ready() {
            // Fired: at `deadline`, or at an earlier one it was armed for.
            if self.armed_for.is_some_and(|armed| armed >= deadline) {
                return true;
            }
            self.arm(deadline);
        }
        false
    }

    fn arm(&mut self, deadline: Instant) {
        self.sleep.as_mut().reset(deadline);
        self.armed_for = Some(deadline);
    }
}

impl<S> Guarded<S> {
    /// Wraps `inner`; `activity` is the handle the connection's service reports to.
    pub fn new(inner: S, deadlines: Deadlines, activity: Activity) -> Self {
        let now = Instant::now();
        Self {
            inner,
            deadlines,
            activity,
            opened: now,
            head_started: None,
            write_blocked: None,
            read_timer: Timer::new(),
            write_timer: Timer::new(),
        }
    }

    /// When reading must have made the head complete, or `None` while a request runs.
    fn read_deadline(&mut self) -> Option<Instant> {
        let shared = &self.activity.0;
        if shared.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let started = shared.started.load(Ordering::Acquire);
        match self.head_started {
            Some((at, after)) if after == started => Some(at + self.deadlines.header),
            _ => {
                self.head_started = None;
                let idle_since = *shared.idle_since.lock().unwrap_or_else(PoisonError::into_inner);
                Some(idle_since.map_or(self.opened + self.deadlines.header, |t| t + self.deadlines.idle))
            }
        }
    }

    /// A write's outcome, ending the connection when writes have been blocked too long.
    fn write_progress<T>(&mut self, written: Poll<io::Result<T>>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if written.is_ready() {
            self.write_blocked = None;
            return written;
        }
        let blocked = *self.write_blocked.get_or_insert_with(Instant::now);
        if self.write_timer.expired(blocked + self.deadlines.idle, cx) {
            return Poll::Ready(Err(timed_out("did not read its response in time")));
        }
        Poll::Pending
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("connection {what}"))
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(deadline) = this.read_deadline() {
            if this.read_timer.expired(deadline, cx) {
                return Poll::Ready(Err(timed_out("sent no complete request head in time")));
            }
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        let shared = &this.activity.0;
        if buf.filled().len() > before && this.head_started.is_none() && shared.in_flight.load(Ordering::Acquire) == 0 {
            this.head_started = Some((Instant::now(), shared.started.load(Ordering::Acquire)));
        }
        read
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, data);
        this.write_progress(written, cx)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.write_progress(written, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A response body that keeps its request counted as in progress until it is sent or dropped.
pub struct Tracked<B> {
    body: B,
    _request: RequestGuard,
}

impl<B> Tracked<B> {
    /// `body`, counted under `request`.
    pub fn new(body: B, request: RequestGuard) -> Self {
        Self { body, _request: request }
    }
}

impl<B: http_body::Body + Unpin> http_body::Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `expired` at tokio's paused clock, `secs` from now.
    fn at(secs: u64) -> Instant {
        Instant::now() + Duration::from_secs(secs)
    }

    #[tokio::test(start_paused = true)]
    async fn a_timer_fires_at_its_latest_deadline_and_re_arms_only_for_an_earlier_one() {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut timer = Timer::new();
        let first = at(10);
        assert!(!timer.expired(first, &mut cx));
        // The deadline moves later (a keep-alive request ended): not re-armed.
        let later = at(20);
        assert!(!timer.expired(later, &mut cx));
        assert_eq!(timer.armed_for, Some(first));
        // Armed for 10 s, it fires then; the deadline is 20 s: not expired, re-armed.
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(!timer.expired(later, &mut cx));
        assert_eq!(timer.armed_for, Some(later));
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(timer.expired(later, &mut cx), "at its deadline");
        // An earlier deadline (a head started) re-arms at once.
        let mut timer = Timer::new();
        assert!(!timer.expired(at(60), &mut cx));
        let head = at(5);
        assert!(!timer.expired(head, &mut cx));
        assert_eq!(timer.armed_for, Some(head));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(timer.expired(head, &mut cx));
    }
}
