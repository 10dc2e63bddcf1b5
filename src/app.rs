//! Wiring: build every part from the configuration, bind, serve until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;

use crate::accounts::Accounts;
use crate::auth::limits::Guard;
use crate::auth::JwtKeys;
use crate::cache::{Lookups, MemoryCache};
use crate::clock::Clock;
use crate::config::{Config, DatabaseBackend};
use crate::db::{self, DbError};
use crate::delivery::{Delivery, DeliverySettings};
use crate::http::router;
use crate::library::Library;
use crate::metrics::{Gauges, Metrics};
use crate::parts::Parts;
use crate::presets::Presets;
use crate::quota::Quota;
use crate::signing::Signing;
use crate::storage::{self, BlobKeys, StorageError};
use crate::workers::{MemoryBudget, WorkerPool};

/// Everything a request may need, built once at start-up.
pub struct AppState {
    /// The configuration.
    pub config: Config,
    /// Backends, caches, pool, quota, clock and counters.
    pub parts: Parts,
    /// Originals.
    pub library: Library,
    /// `/i` answers.
    pub delivery: Delivery,
    /// Owners' accounts.
    pub accounts: Accounts,
    /// Owners' presets.
    pub presets: Presets,
    /// Signed URLs.
    pub signing: Signing,
    /// Limits on failed logins and registrations.
    pub guard: Guard,
    /// Connection slots (`server.max_connections`).
    pub connections: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    /// Gauges for `/metrics`.
    pub fn gauges(&self) -> Gauges {
        Gauges {
            queue_depth: self.parts.workers.queued(),
            transforms_running: self.parts.workers.running(),
            memory_cache_bytes: self.parts.memory.weighted_size(),
            decode_memory_bytes: self.parts.workers.memory_in_use(),
            db: self.parts.db.pool_state(),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The database could not be opened, reached or migrated.
    #[error("database")]
    Db(#[from] DbError),
    /// The object store could not be opened.
    #[error("object store")]
    Storage(#[from] StorageError),
    /// Binding the port, or reading or writing a file of the data folder, failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The generated JWT secret file holds something unusable.
    #[error("{0} holds a secret shorter than 32 characters")]
    ShortSecret(String),
}

/// The domain services over one set of parts: what the server's handlers and the command line
/// both call.
pub struct Services {
    /// Backends, caches, pool, quota, clock and counters.
    pub parts: Parts,
    /// Originals.
    pub library: Library,
    /// `/i` answers.
    pub delivery: Delivery,
    /// Owners' accounts.
    pub accounts: Accounts,
    /// Owners' presets.
    pub presets: Presets,
    /// Signed URLs.
    pub signing: Signing,
}

impl Services {
    /// Connects the backends (applying migrations) and builds every service on them.
    ///
    /// # Errors
    /// A backend cannot be reached, or the JWT secret cannot be read or made.
    pub async fn open(config: &Config, clock: Clock) -> Result<Self, StartupError> {
        let secret = jwt_secret(config).await?;
        let db = db::connect(&config.database).await?;
        let store = storage::open(&config.storage).await?;
        let cache = &config.cache;
        // CACHE_MEMORY_MB bounds every cache of a replica: the URL memo (at most an eighth of
        // it) comes out of the variant cache's share. With the variant cache off, the memo still
        // answers store hits, within its own url_memo_mb.
        let memo = match cache.memory_bytes {
            0 => cache.url_memo_bytes,
            memory => cache.url_memo_bytes.min(memory / 8),
        };
        let parts = Parts {
            keys: BlobKeys::new(&config.storage),
            lookups: Lookups::new(db.clone(), config.auth.lookup_ttl, memo, cache.presets_bytes),
            memory: MemoryCache::new(cache.memory_bytes.saturating_sub(memo)),
            workers: WorkerPool::new(config.transform.workers, config.transform.queue)
                .with_memory(MemoryBudget::new(config.limits.decode_budget_bytes)),
            hashing: WorkerPool::new(config.auth.hash_workers, config.auth.hash_queue),
            quota: Quota::new(db.clone(), clock.clone(), config.quota.clone()),
            jwt: JwtKeys::new(secret.expose_secret().as_bytes(), config.auth.jwt_ttl),
            metrics: Arc::new(Metrics::new(router::labels())),
            limits: config.limits.clone(),
            db,
            store,
            clock,
        };
        let library = Library::new(parts.clone(), config.transform.timeout);
        let settings = DeliverySettings {
            avif_speed: config.transform.avif_speed,
            store_variants: cache.store_variants,
            timeout: config.transform.timeout,
            width_ladder: config.transform.width_ladder.clone(),
            failure_ttl: cache.failure_ttl,
            failure_memo_bytes: cache.failure_memo_bytes,
            public_max_age: i64::from(cache.public_max_age_secs),
        };
        let delivery = Delivery::new(parts.clone(), settings);
        Ok(Self {
            accounts: Accounts::new(parts.clone(), library.clone()),
            presets: Presets::new(parts.clone()),
            signing: Signing::new(parts.clone(), delivery.clone()),
            parts,
            library,
            delivery,
        })
    }
}

/// A bound, ready server.
pub struct App {
    listener: TcpListener,
    state: Arc<AppState>,
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
        let Services { parts, library, delivery, accounts, presets, signing } = Services::open(&config, clock).await?;
        let addr = SocketAddr::new(config.server.host, config.server.port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartupError::Io { what: format!("cannot bind {addr}"), source })?;
        let auth = &config.auth;
        let guard = Guard::new(auth.login_failures_per_user, auth.login_failures_per_ip, auth.registrations_per_ip);
        let connections = Arc::new(tokio::sync::Semaphore::new(config.server.max_connections));
        let state = AppState { config, parts, library, delivery, accounts, presets, signing, guard, connections };
        Ok(Self { listener, state: Arc::new(state) })
    }

    /// The bound address (the real port when configured with 0).
    pub fn addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::new(self.state.config.server.host, 0))
    }

    /// The shared state (tests inspect it).
    pub fn state(&self) -> Arc<AppState> {
        Arc::clone(&self.state)
    }

    /// Serves until `shutdown` completes, then drains in-flight requests.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let addr = self.addr();
        let backend = match &self.state.config.database.backend {
            DatabaseBackend::Sqlite(path) => format!("sqlite {}", path.display()),
            DatabaseBackend::Postgres(_) => "postgres".to_owned(),
        };
        tracing::info!(%addr, database = %backend, "imgedge listening");
        let library = self.state.library.clone();
        tokio::spawn(async move { library.backfill().await });
        let grace = self.state.config.server.shutdown_grace;
        crate::http::serve(self.listener, self.state, shutdown, grace).await;
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

/// The configured JWT secret, or on the embedded default one kept in `DATA_DIR/jwt_secret`
/// (generated on first start).
async fn jwt_secret(config: &Config) -> Result<SecretString, StartupError> {
    if let Some(secret) = &config.auth.jwt_secret {
        return Ok(secret.clone());
    }
    let path = config.storage.data_dir.join("jwt_secret");
    let shown = path.display().to_string();
    match tokio::fs::read_to_string(&path).await {
        Ok(secret) if secret.trim().len() >= 32 => return Ok(SecretString::from(secret.trim().to_owned())),
        Ok(_) => return Err(StartupError::ShortSecret(shown)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(StartupError::Io { what: format!("cannot read {shown}"), source }),
    }
    let secret = crate::auth::SigningKey::generate().to_hex();
    write_private(&path, &secret)
        .await
        .map_err(|source| StartupError::Io { what: format!("cannot write {shown}"), source })?;
    tracing::warn!(path = %shown, "JWT_SECRET is not set: generated one for this data folder (set JWT_SECRET in production)");
    Ok(SecretString::from(secret))
}

async fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    use tokio::io::AsyncWriteExt;
    let mut file = options.open(path).await?;
    file.write_all(contents.as_bytes()).await?;
    file.sync_all().await
}
