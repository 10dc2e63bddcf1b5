//! The HTTP server: accept loop with graceful shutdown, and the per-request wrapper that adds
//! the request id, counts metrics, logs and renders errors.

pub mod body;
pub mod client;
pub mod conn;
pub mod handlers;
pub mod request;
pub mod response;
pub mod router;
pub mod state;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use self::body::Body;
use self::conn::{Activity, Deadlines, Guarded, Tracked};
use self::router::ROUTES;
use self::state::AppState;
use crate::error::Error;
use crate::telemetry::{self, RequestId};

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_CONTENT_TYPE_OPTIONS: HeaderName = HeaderName::from_static("x-content-type-options");

/// Streams an HTTP/2 connection may have open at once.
const H2_STREAMS: u32 = 64;

/// Pending connections a listening socket holds (as tokio's `TcpListener::bind`).
const LISTEN_BACKLOG: i32 = 1024;

/// Serves `listener` until `shutdown` completes, then lets in-flight requests finish for at
/// most `grace`. At most `server.max_connections` are served at once; more wait in the listen
/// backlog.
pub async fn serve(listener: TcpListener, state: Arc<AppState>, shutdown: impl Future<Output = ()>, grace: Duration) {
    let graceful = GracefulShutdown::new();
    let server = &state.config.server;
    let deadlines = Deadlines { header: server.header_read_timeout, idle: server.idle_timeout };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Head and idle deadlines are kept on the socket for every protocol (see `conn`); hyper's
    // own HTTP/1 header timeout would also end idle keep-alive connections early.
    // Half-close allowed: hyper otherwise reads the socket again while each request is in
    // flight, to notice a client that left, and as the request still holds its read buffer, that
    // read reserved a fresh 8 KB buffer for every request. A client that leaves is noticed when
    // its answer is written; its transform, if any, runs on for the others who ask (see
    // `delivery::flight`).
    builder.http1().timer(TokioTimer::new()).header_read_timeout(None).half_close(true);
    builder.http2().timer(TokioTimer::new()).max_concurrent_streams(H2_STREAMS);
    let slots = Arc::clone(&state.connections);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Accepted first, then a slot: an event loop waiting for a connection holds none, so
        // idle loops never keep the others under the cap. Beyond it, one connection per loop
        // waits here, the rest in the backlog.
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot,
            () = &mut shutdown => break,
        };
        let Ok(slot) = slot else { break };
        let _ = stream.set_nodelay(true);
        let open = state.shared.metrics.connection_opened();
        let activity = Activity::default();
        let io = TokioIo::new(Guarded::new(stream, deadlines, activity.clone()));
        let state = Arc::clone(&state);
        let service = service_fn(move |req: Request<Incoming>| {
            let request = activity.start();
            let state = Arc::clone(&state);
            async move { Ok::<_, Infallible>(handle(state, req, peer).await.map(|body| Tracked::new(body, request))) }
        });
        let conn = graceful.watch(builder.serve_connection(io, service).into_owned());
        tokio::spawn(async move {
            let _slot = (slot, open);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!(grace_secs = grace.as_secs(), "draining in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(grace) => tracing::warn!("grace period over; closing remaining connections"),
    }
}

/// `loops` listening sockets on `addr` (the first one's port when `addr`'s is 0), one per event
/// loop. On Linux each has its own accept queue (`SO_REUSEPORT`): the kernel spreads new
/// connections across them by address hash, and a loop never wakes for another's. Elsewhere
/// they are clones of one socket, accepted from by whichever loop is free.
///
/// # Errors
/// The address cannot be bound.
pub fn listeners(addr: SocketAddr, loops: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    use socket2::{Domain, Protocol, Socket, Type};
    let open = |addr: SocketAddr| -> std::io::Result<std::net::TcpListener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        // As tokio's own bind: a restart may bind while old connections linger in TIME_WAIT.
        socket.set_reuse_address(true)?;
        #[cfg(target_os = "linux")]
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(LISTEN_BACKLOG)?;
        Ok(socket.into())
    };
    let first = open(addr)?;
    let bound = first.local_addr()?;
    let mut all = vec![first];
    for _ in 1..loops.max(1) {
        let next = if cfg!(target_os = "linux") { open(bound)? } else { all[0].try_clone()? };
        all.push(next);
    }
    Ok(all)
}

/// Serves `listeners` as [`serve`] does, each on an event loop of its own: a thread running a
/// current-thread runtime that takes a connection from accept to close. Nothing moves between
/// loops, so a request costs no wake-up of another thread (the shared runtime's work stealing
/// does, and on a small machine those wake-ups are a large part of a cache hit's CPU). What a
/// request waits for (transforms, password hashes, the database) runs where it always does,
/// and the loops share the state. On `shutdown` every loop drains as [`serve`] does; each keeps
/// running the tasks started on it (work another loop's request may be waiting for) until all
/// have drained. Dropping this future stops the loops the same way.
pub async fn serve_loops(
    listeners: Vec<std::net::TcpListener>,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let (stop, stopped) = tokio::sync::watch::channel(());
    let (draining, _) = tokio::sync::watch::channel(listeners.len());
    let mut exits = Vec::new();
    for (n, listener) in listeners.into_iter().enumerate() {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(e) => {
                tracing::error!(error = %e, "an event loop could not start; the others serve");
                draining.send_modify(|n| *n = n.saturating_sub(1));
                continue;
            }
        };
        let (state, mut stopped, left) = (Arc::clone(&state), stopped.clone(), draining.clone());
        let (exited, exit) = tokio::sync::oneshot::channel::<()>();
        let event_loop = move || {
            runtime.block_on(async {
                // Counted as drained however this loop ends, a panic included.
                let drained = Drained(left.clone());
                match TcpListener::from_std(listener) {
                    // A changed value never comes: the sender is dropped to stop.
                    Ok(listener) => {
                        serve(listener, state, async move { while stopped.changed().await.is_ok() {} }, grace).await
                    }
                    Err(e) => tracing::error!(error = %e, "an event loop could not take its socket"),
                }
                drop(drained);
                let _ = left.subscribe().wait_for(|n| *n == 0).await;
            });
            drop(runtime);
            let _ = exited.send(());
        };
        match std::thread::Builder::new().name(format!("http-{n}")).spawn(event_loop) {
            Ok(_) => exits.push(exit),
            Err(e) => {
                tracing::error!(error = %e, "an event loop could not start; the others serve");
                draining.send_modify(|n| *n = n.saturating_sub(1));
            }
        }
    }
    if exits.is_empty() {
        tracing::error!("no event loop started; nothing is served");
    }
    shutdown.await;
    drop(stop);
    for exit in exits {
        let _ = exit.await;
    }
}

/// One event loop's share of the count of loops still serving.
struct Drained(tokio::sync::watch::Sender<usize>);

impl Drop for Drained {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// One request: route, dispatch, and the wrapper every response gets.
///
/// No span per request: cache hits are a few microseconds and a span costs a noticeable part
/// of that. The request id travels as a task-local instead (see `telemetry::request_id`), and
/// the boundary logs carry it with method and path.
async fn handle(state: Arc<AppState>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let started = Instant::now();
    let _in_flight = state.shared.metrics.request_started();
    let request_id = request_id(&req);
    let method = req.method().clone();
    let uri = req.uri().clone();
    let (route, result) = telemetry::with_request_id(request_id.clone(), dispatch(&state, req, uri.path(), peer)).await;
    let mut res = match result {
        Ok(res) => res,
        Err(e) => {
            let status = e.status().as_u16();
            if let Some(reason) = e.overload_reason() {
                // Not an error of ours: the summary line, a second at most.
                let workers = &state.shared.workers;
                state.refusals.overloaded(reason, workers.queued(), workers.oldest_wait());
            } else if e.status().is_server_error() {
                tracing::error!(request_id = %request_id, method = %method, path = uri.path(), status, error = ?e, "request failed");
            } else {
                tracing::debug!(request_id = %request_id, method = %method, path = uri.path(), status, error = %e, "request refused");
            }
            response::error(&e)
        }
    };
    res.headers_mut().insert(X_REQUEST_ID.clone(), request_id.header());
    // Every answer, JSON and errors included: no browser guesses another type for our bytes.
    res.headers_mut().insert(X_CONTENT_TYPE_OPTIONS.clone(), HeaderValue::from_static("nosniff"));
    let status = res.status();
    if matches!(status, StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT) {
        // The body was not read to its end: the connection closes after this answer, and says
        // so, or a client would send its next request on it and lose it to the close.
        res.headers_mut().insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    let elapsed = started.elapsed();
    state.shared.metrics.request(route, status.as_u16(), elapsed);
    let refused = status.is_client_error() || status == StatusCode::SERVICE_UNAVAILABLE;
    if state.config.log.access_log && (!refused || state.refusals.line_allowed()) {
        // The query is left out: it carries signatures.
        tracing::info!(
            request_id = %request_id,
            method = %method,
            path = uri.path(),
            status = status.as_u16(),
            micros = elapsed.as_micros() as u64,
            "request"
        );
    }
    res
}

/// Routes and runs the handler; returns the route's index (for its metrics label) with the
/// result. `path` is `req`'s, borrowed from a copy of its URI that outlives the request (the
/// handler takes the request, and the route's parameters borrow from the path).
async fn dispatch<'a>(
    state: &'a AppState,
    req: Request<Incoming>,
    path: &'a str,
    peer: SocketAddr,
) -> (usize, Result<Response<Body>, Error>) {
    let (index, route, params) = match router::route(req.method(), path) {
        Ok((index, route, params)) => (index, route, params.with_peer(peer)),
        Err(e) => return (ROUTES.len(), Err(e)),
    };
    let head = req.method() == Method::HEAD;
    let result = (route.handler)(state, req, params).await;
    // HEAD on the JSON routes: same headers, no body (delivery builds its own HEAD answers).
    (index, result.map(|res| if head { strip_body(res) } else { res }))
}

fn strip_body(res: Response<Body>) -> Response<Body> {
    let (mut parts, body) = res.into_parts();
    if let Body::Full(Some(bytes)) = &body {
        parts.headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    }
    Response::from_parts(parts, Body::Empty)
}

/// The client's `X-Request-Id` when it is short and plain, else a new one.
fn request_id(req: &Request<Incoming>) -> RequestId {
    let incoming = req.headers().get(&X_REQUEST_ID).and_then(|v| RequestId::parse(v.as_bytes()));
    incoming.unwrap_or_else(new_request_id)
}

/// 32 hex digits: a random number drawn once per process, then a counter. Unique across
/// replicas and restarts, and no system call per request (a fresh UUID cost a `getrandom`,
/// 2 % of a memory hit's CPU).
fn new_request_id() -> RequestId {
    static PROCESS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let process = *PROCESS.get_or_init(|| uuid::Uuid::new_v4().as_u64_pair().0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    hex_id(process, n)
}

/// `process` and `n` as 16 lower-case hex digits each, written out by hand: `format!` took
/// a tenth of a cache hit's own work, a character at a time.
fn hex_id(process: u64, n: u64) -> RequestId {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut id = [0u8; 32];
    for (half, value) in [process, n].into_iter().enumerate() {
        for (i, digit) in id[half * 16..][..16].iter_mut().enumerate() {
            *digit = DIGITS[((value >> (60 - 4 * i)) & 0xf) as usize];
        }
    }
    RequestId::fresh(&id)
}

#[cfg(test)]
mod tests {
    /// Each event loop's socket takes a share of the connections to the one port.
    #[test]
    #[cfg(target_os = "linux")]
    fn event_loop_sockets_share_one_port_and_its_connections() {
        let listeners = super::listeners(([127, 0, 0, 1], 0).into(), 2).unwrap();
        let port = listeners[0].local_addr().unwrap().port();
        assert_ne!(port, 0);
        assert_eq!(listeners[1].local_addr().unwrap().port(), port);
        let clients: Vec<_> = (0..64).map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
        let accepted: Vec<usize> = listeners.iter().map(|l| std::iter::from_fn(|| l.accept().ok()).count()).collect();
        assert_eq!(accepted.iter().sum::<usize>(), clients.len(), "{accepted:?}");
        assert!(accepted.iter().all(|&n| n > 0), "every socket takes some: {accepted:?}");
    }

    #[test]
    fn fresh_request_ids_are_32_hex_digits_and_never_repeat() {
        for (process, n) in [(0, 0), (u64::MAX, 1), (0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210)] {
            assert_eq!(super::hex_id(process, n).as_str(), format!("{process:016x}{n:016x}"));
        }
        let ids: Vec<String> = (0..1000).map(|_| super::new_request_id().to_string()).collect();
        assert!(ids.iter().all(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())), "{}", ids[0]);
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
    }
}
