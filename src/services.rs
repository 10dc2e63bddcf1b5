//! The domain services and the collaborators they share, opened from the configuration: what
//! the HTTP server and the command line are both built on.

use std::path::Path;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use crate::accounts::Accounts;
use crate::auth::JwtKeys;
use crate::cache::MemoryCache;
use crate::clock::Clock;
use crate::config::Config;
use crate::db::{self, DbError};
use crate::delivery::{Delivery, DeliverySettings};
use crate::images::Images;
use crate::lookups::Lookups;
use crate::metrics::Metrics;
use crate::presets::Presets;
use crate::purges::Purges;
use crate::quota::Quota;
use crate::shared::Shared;
use crate::signing::Signing;
use crate::storage::{self, BlobKeys, StorageError};
use crate::workers::{MemoryBudget, WorkerPool};

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
    /// `PURGE_WEBHOOK_URL` cannot be used.
    #[error("{0}")]
    PurgeWebhook(String),
    /// The generated JWT secret file holds something unusable.
    #[error("{0} holds a secret shorter than 32 characters")]
    ShortSecret(String),
}

/// The domain services over one set of shared collaborators: what the server's handlers and the
/// command line both call.
pub struct Services {
    /// Backends, caches, pool, quota, clock and counters.
    pub shared: Shared,
    /// Originals.
    pub images: Images,
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
    pub async fn open(config: &Config, clock: Clock, metrics: Arc<Metrics>) -> Result<Self, StartupError> {
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
        let shared = Shared {
            keys: BlobKeys::new(&config.storage),
            lookups: Lookups::new(db.clone(), clock.clone(), config.auth.lookup_ttl, memo, cache.presets_bytes),
            memory: MemoryCache::new(cache.memory_bytes.saturating_sub(memo)),
            workers: WorkerPool::new(config.transform.workers, config.transform.queue)
                .with_memory(MemoryBudget::new(config.limits.decode_budget_bytes))
                .with_max_wait(config.transform.queue_wait),
            hashing: WorkerPool::new(config.auth.hash_workers, config.auth.hash_queue),
            quota: Quota::new(db.clone(), clock.clone(), config.quota.clone()),
            jwt: JwtKeys::new(secret.expose_secret().as_bytes(), config.auth.jwt_ttl),
            purges: Purges::new(db.clone(), &config.purge).map_err(StartupError::PurgeWebhook)?,
            metrics,
            limits: config.limits.clone(),
            db,
            store,
            clock,
        };
        let images = Images::new(shared.clone(), config.transform.timeout);
        let settings = DeliverySettings {
            avif_speed: crate::transform::encode::avif::speed(config.transform.avif_speed),
            store_variants: cache.store_variants,
            timeout: config.transform.timeout,
            width_ladder: config.transform.width_ladder.clone(),
            failure_ttl: cache.failure_ttl,
            failure_memo_bytes: cache.failure_memo_bytes,
            public_max_age: i64::from(cache.public_max_age_secs),
            auto_format_budget: config.transform.auto_format_budget,
            auto_format_max_age: config.transform.auto_format_max_age_secs,
        };
        let delivery = Delivery::new(shared.clone(), settings);
        Ok(Self {
            accounts: Accounts::new(shared.clone(), images.clone()),
            presets: Presets::new(shared.clone()),
            signing: Signing::new(shared.clone(), delivery.clone()),
            shared,
            images,
            delivery,
        })
    }
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
