//! Tracing set-up, the request id of the task being served, and the process shutdown signal.

pub mod refusals;

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::{LogConfig, LogFormat};

/// Installs the global tracing subscriber: human lines by default, JSON with `LOG_FORMAT=json`.
/// `RUST_LOG`, when set, wins over the configured level.
pub fn init(config: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only for a person at a terminal: a file or a log collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = fmt().with_env_filter(filter).with_target(false).with_ansi(ansi);
    // A second init (tests start many servers) keeps the first subscriber.
    let _ = match config.format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init(),
    };
}

/// A request's id: ASCII, 1 to 128 bytes of letters, digits and `-_.:`, held as the header
/// value it is answered with. A clone shares the bytes, and the answer's `X-Request-Id` is that
/// clone: no check and no copy per answer (an `Arc<str>` made into a header cost a second
/// allocation and a scan of every byte on each hit).
#[derive(Clone)]
pub struct RequestId(http::HeaderValue);

impl RequestId {
    /// `id` when it is a plain id as above.
    pub fn parse(id: &[u8]) -> Option<Self> {
        let plain = (1..=128).contains(&id.len())
            && id.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        if !plain {
            return None;
        }
        // A copy: a value borrowed from the request would keep its connection's read buffer.
        http::HeaderValue::from_bytes(id).ok().map(Self)
    }

    /// A new id of 32 hex digits, which are plain: not checked again against the rules above.
    pub fn fresh(id: &[u8; 32]) -> Self {
        http::HeaderValue::from_bytes(id).map_or_else(|_| Self::none(), Self)
    }

    /// `-`: no request's id.
    fn none() -> Self {
        Self(http::HeaderValue::from_static("-"))
    }

    /// The value for the answer's header.
    pub fn header(&self) -> http::HeaderValue {
        self.0.clone()
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Always text: only ASCII is ever held.
        self.0.to_str().unwrap_or("-")
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

tokio::task_local! {
    /// The id of the request the current task serves.
    static REQUEST_ID: RequestId;
}

/// Runs `fut` with `id` as the current request id. A plain function, not an `async fn`: that
/// would hold `fut` twice in its state (once as its argument, once inside the scope).
pub fn with_request_id<F: std::future::Future>(
    id: RequestId,
    fut: F,
) -> tokio::task::futures::TaskLocalFuture<RequestId, F> {
    REQUEST_ID.scope(id, fut)
}

/// The id of the request being served, or `-` outside a request. Spans of work that outlives
/// the request handler (uploads, transforms) record it, so their log lines can be joined with
/// the access log without a span per request on the hot path.
pub fn request_id() -> RequestId {
    REQUEST_ID.try_with(RequestId::clone).unwrap_or_else(|_| RequestId::none())
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received, shutting down"),
        () = term => tracing::info!("SIGTERM received, shutting down"),
    }
}

#[cfg(test)]
mod tests {
    use super::RequestId;

    #[test]
    fn only_short_plain_ids_are_taken_and_they_answer_as_sent() {
        let longest = "a".repeat(128);
        for id in ["abc-123", "trace_1.2:x", longest.as_str()] {
            let parsed = RequestId::parse(id.as_bytes()).unwrap();
            assert_eq!(parsed.as_str(), id);
            assert_eq!(parsed.header(), id);
        }
        for id in ["", "bad id", "a/b", "é", &"a".repeat(129)] {
            assert!(RequestId::parse(id.as_bytes()).is_none(), "{id:?}");
        }
        let outside = super::request_id();
        assert_eq!(outside.to_string(), "-");
    }
}
