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

tokio::task_local! {
    /// The id of the request the current task serves.
    static REQUEST_ID: std::sync::Arc<str>;
}

/// Runs `fut` with `id` as the current request id. A plain function, not an `async fn`: that
/// would hold `fut` twice in its state (once as its argument, once inside the scope).
pub fn with_request_id<F: std::future::Future>(
    id: std::sync::Arc<str>,
    fut: F,
) -> tokio::task::futures::TaskLocalFuture<std::sync::Arc<str>, F> {
    REQUEST_ID.scope(id, fut)
}

/// The id of the request being served, or `-` outside a request. Spans of work that outlives
/// the request handler (uploads, transforms) record it, so their log lines can be joined with
/// the access log without a span per request on the hot path.
pub fn request_id() -> std::sync::Arc<str> {
    REQUEST_ID.try_with(std::sync::Arc::clone).unwrap_or_else(|_| std::sync::Arc::from("-"))
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
