//! The server: open the services from the configuration, bind, serve until told to stop; and
//! `imgedge sweep`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::clock::Clock;
use crate::config::{Config, DatabaseBackend};
use crate::db;
use crate::http::router;
use crate::http::state::AppState;
use crate::metrics::Metrics;
pub use crate::services::{Services, StartupError};
use crate::storage::{self, BlobKeys};

/// A bound, ready server.
pub struct App {
    listeners: Listeners,
    state: Arc<AppState>,
}

/// Where connections are accepted.
enum Listeners {
    /// One socket, its connections tasks of the runtime that runs the app.
    Shared(TcpListener),
    /// A socket per event loop, all bound to the same address (see [`crate::http::serve_loops`]).
    Loops(Vec<std::net::TcpListener>),
}

impl App {
    /// Connects the backends, applies migrations and binds the port.
    ///
    /// # Errors
    /// Any backend that cannot be reached, or a port that cannot be bound.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        Self::build_with_clock(config, Clock::system()).await
    }

    /// [`App::build`] with an injected clock (tests move it across midnight).
    ///
    /// # Errors
    /// As [`App::build`].
    pub async fn build_with_clock(config: Config, clock: Clock) -> Result<Self, StartupError> {
        let metrics = Arc::new(Metrics::new(router::labels()));
        let services = Services::open(&config, clock, metrics).await?;
        let addr = SocketAddr::new(config.server.host, config.server.port);
        let cannot_bind = |source| StartupError::Io { what: format!("cannot bind {addr}"), source };
        let listeners = match config.server.event_loops {
            0 => Listeners::Shared(TcpListener::bind(addr).await.map_err(cannot_bind)?),
            loops => Listeners::Loops(crate::http::listeners(addr, loops).map_err(cannot_bind)?),
        };
        Ok(Self { listeners, state: Arc::new(AppState::new(config, services)) })
    }

    /// The bound address (the real port when configured with 0).
    pub fn addr(&self) -> SocketAddr {
        let bound = match &self.listeners {
            Listeners::Shared(listener) => listener.local_addr(),
            Listeners::Loops(listeners) => listeners[0].local_addr(),
        };
        bound.unwrap_or_else(|_| SocketAddr::new(self.state.config.server.host, 0))
    }

    /// The shared state (tests inspect it).
    pub fn state(&self) -> Arc<AppState> {
        Arc::clone(&self.state)
    }

    /// Serves until `shutdown` completes, then drains in-flight requests. The background work
    /// started here (the start-up backfill, the purge webhook's sender) stops when the shutdown
    /// begins.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let addr = self.addr();
        let backend = match &self.state.config.database.backend {
            DatabaseBackend::Sqlite(path) => format!("sqlite {}", path.display()),
            DatabaseBackend::Postgres(_) => "postgres".to_owned(),
        };
        let loops = match &self.listeners {
            Listeners::Shared(_) => 0,
            Listeners::Loops(listeners) => listeners.len(),
        };
        tracing::info!(%addr, database = %backend, event_loops = loops, "imgedge listening");
        let (stopping, mut stop) = tokio::sync::watch::channel(false);
        let images = self.state.images.clone();
        let mut stop_purges = stop.clone();
        let backfill = tokio::spawn(async move {
            tokio::select! {
                _ = images.backfill() => {}
                _ = stop.changed() => tracing::info!("start-up backfill stopped for the shutdown"),
            }
        });
        // What is still queued at the shutdown stays in the database for the next sender.
        let purges = self.state.shared.purges.clone();
        let sender = tokio::spawn(async move {
            purges
                .send_until(async move {
                    let _ = stop_purges.changed().await;
                })
                .await;
        });
        let shutdown = async move {
            shutdown.await;
            let _ = stopping.send(true);
        };
        let grace = self.state.config.server.shutdown_grace;
        match self.listeners {
            Listeners::Shared(listener) => crate::http::serve(listener, self.state, shutdown, grace).await,
            Listeners::Loops(listeners) => crate::http::serve_loops(listeners, self.state, shutdown, grace).await,
        }
        let _ = backfill.await;
        let _ = sender.await;
        tracing::info!("imgedge stopped");
    }
}

/// Runs `imgedge sweep` against the configured backends.
///
/// # Errors
/// A backend cannot be reached, or the sweep fails part way.
pub async fn sweep(
    config: &Config,
    grace: std::time::Duration,
    dry_run: bool,
) -> Result<crate::sweep::Report, crate::BoxError> {
    let db = db::connect(&config.database).await?;
    let store = storage::open(&config.storage).await?;
    let keys = BlobKeys::new(&config.storage);
    Ok(crate::sweep::sweep(&db, &store, &keys, grace, dry_run, std::time::SystemTime::now()).await?)
}
