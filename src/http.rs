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
use crate::telemetry;

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_CONTENT_TYPE_OPTIONS: HeaderName = HeaderName::from_static("x-content-type-options");

/// Streams an HTTP/2 connection may have open at once.
const H2_STREAMS: u32 = 64;

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
    builder.http1().timer(TokioTimer::new()).header_read_timeout(None);
    builder.http2().timer(TokioTimer::new()).max_concurrent_streams(H2_STREAMS);
    let slots = Arc::clone(&state.connections);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot,
            () = &mut shutdown => break,
        };
        let Ok(slot) = slot else { break };
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
        let _ = stream.set_nodelay(true);
        let open = state.shared.metrics.connection_opened();
        let activity = Activity::default();
        let io = TokioIo::new(Guarded::new(stream, deadlines, activity.clone()));
        let state = Arc::clone(&state);
        let service = service_fn(move |mut req: Request<Incoming>| {
            let request = activity.start();
            req.extensions_mut().insert(client::Peer(peer));
            let state = Arc::clone(&state);
            async move { Ok::<_, Infallible>(handle(state, req).await.map(|body| Tracked::new(body, request))) }
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

/// One request: route, dispatch, and the wrapper every response gets.
///
/// No span per request: cache hits are a few microseconds and a span costs a noticeable part
/// of that. The request id travels as a task-local instead (see `telemetry::request_id`), and
/// the boundary logs carry it with method and path.
async fn handle(state: Arc<AppState>, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let _in_flight = state.shared.metrics.request_started();
    let request_id: Arc<str> = request_id(&req).into();
    let method = req.method().clone();
    let uri = req.uri().clone();
    let (route, result) = telemetry::with_request_id(Arc::clone(&request_id), dispatch(&state, req)).await;
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
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(X_REQUEST_ID.clone(), v);
    }
    // Every answer, JSON and errors included: no browser guesses another type for our bytes.
    res.headers_mut().insert(X_CONTENT_TYPE_OPTIONS.clone(), HeaderValue::from_static("nosniff"));
    let status = res.status();
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
/// result.
async fn dispatch(state: &AppState, req: Request<Incoming>) -> (usize, Result<Response<Body>, Error>) {
    let uri = req.uri().clone();
    let (index, route, params) = match router::route(req.method(), uri.path()) {
        Ok(matched) => matched,
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
fn request_id(req: &Request<Incoming>) -> String {
    let incoming = req.headers().get(&X_REQUEST_ID).and_then(|v| v.to_str().ok()).filter(|v| {
        (1..=128).contains(&v.len())
            && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    });
    incoming.map_or_else(new_request_id, str::to_owned)
}

/// 32 hex digits: a random number drawn once per process, then a counter. Unique across
/// replicas and restarts, and no system call per request (a fresh UUID cost a `getrandom`,
/// 2 % of a memory hit's CPU).
fn new_request_id() -> String {
    static PROCESS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let process = *PROCESS.get_or_init(|| uuid::Uuid::new_v4().as_u64_pair().0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{process:016x}{n:016x}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn fresh_request_ids_are_32_hex_digits_and_never_repeat() {
        let ids: Vec<String> = (0..1000).map(|_| super::new_request_id()).collect();
        assert!(ids.iter().all(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())), "{}", ids[0]);
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
    }
}
