//! Typed configuration: `config.toml`, then environment variables on top.
//!
//! Raw values are read into [`Settings`] (the shape of `config.toml`), environment variables
//! override single fields, and [`Settings::validate`] turns the result into a [`Config`] of domain
//! types. Every failure names the setting, so a bad deployment stops at start-up.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

/// Fully validated configuration of one server process.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listener, timeouts and request limits.
    pub server: ServerConfig,
    /// Folder of the embedded default (SQLite file, blobs, generated JWT secret).
    pub data_dir: PathBuf,
    /// Metadata database.
    pub database: DatabaseConfig,
    /// Object store for originals and variants.
    pub storage: StorageConfig,
    /// JWTs and lookup caching.
    pub auth: AuthConfig,
    /// Upload and transform limits.
    pub limits: Limits,
    /// Transform worker pool.
    pub transform: TransformConfig,
    /// In-memory variant cache.
    pub cache: CacheConfig,
    /// Daily transform budgets.
    pub quota: QuotaConfig,
    /// Logging.
    pub log: LogConfig,
}

/// Listener and HTTP settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Interface to bind.
    pub host: IpAddr,
    /// Port to bind; 0 picks a free one.
    pub port: u16,
    /// Time allowed for a client to send the request head.
    pub header_read_timeout: Duration,
    /// How long in-flight requests may run after SIGTERM.
    pub shutdown_grace: Duration,
    /// Largest accepted JSON body.
    pub max_json_bytes: usize,
}

/// Which database holds users, images and quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseBackend {
    /// Embedded SQLite file.
    Sqlite(PathBuf),
    /// PostgreSQL connection string.
    Postgres(String),
}

/// Database settings.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// The backend, chosen by the `DATABASE_URL` scheme.
    pub backend: DatabaseBackend,
    /// Connections in the PostgreSQL pool.
    pub pool_size: u32,
    /// Longest wait for a pooled connection before the request fails.
    pub pool_timeout: Duration,
}

/// Which object store holds the bytes.
#[derive(Debug, Clone)]
pub enum StorageBackend {
    /// Files under a local folder.
    Fs(PathBuf),
    /// An S3 (or S3-compatible) bucket.
    S3(S3Config),
}

/// S3 connection settings.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// Bucket name (`AWS_S3_BUCKET`).
    pub bucket: String,
    /// Region (`AWS_REGION`).
    pub region: String,
    /// Custom endpoint for MinIO, R2, Ceph (`AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    /// Path-style addressing (`AWS_S3_FORCE_PATH_STYLE`).
    pub force_path_style: bool,
    /// Static access key; the SDK's environment chain is not consulted otherwise.
    pub access_key_id: Option<String>,
    /// Static secret key.
    pub secret_access_key: Option<SecretString>,
    /// Timeout for connecting to the store.
    pub connect_timeout: Duration,
    /// Timeout for a whole operation (first byte for reads).
    pub operation_timeout: Duration,
    /// Attempts per operation, first try included.
    pub max_attempts: u32,
}

/// Storage settings.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// The backend: a bucket if one is named, else files.
    pub backend: StorageBackend,
    /// Key prefix of originals.
    pub originals_prefix: String,
    /// Key prefix of cached variants.
    pub derived_prefix: String,
    /// Lifetime of presigned download URLs.
    pub presign_ttl: Duration,
}

/// Authentication settings.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// HS256 secret; `None` only on the embedded default, which generates one.
    pub jwt_secret: Option<SecretString>,
    /// Lifetime of issued JWTs.
    pub jwt_ttl: Duration,
    /// How long image and signing-key lookups are cached on a replica.
    pub lookup_ttl: Duration,
}

/// Limits on uploads and transforms.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest accepted upload.
    pub max_upload_bytes: u64,
    /// Largest accepted pixel count (width × height).
    pub max_pixels: u64,
    /// Largest `w_`/`h_` value.
    pub max_dimension: u32,
}

/// Transform worker pool settings.
#[derive(Debug, Clone)]
pub struct TransformConfig {
    /// Transforms running at once.
    pub workers: usize,
    /// Transforms waiting for a worker before new ones get 503.
    pub queue: usize,
    /// Longest a transform may take before it is answered with 503.
    pub timeout: Duration,
    /// rav1e speed for AVIF (1 slow and small … 10 fast).
    pub avif_speed: u8,
}

/// Variant cache settings.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Bytes of variants kept in memory per replica.
    pub memory_bytes: u64,
    /// Whether variants are written to the object store.
    pub store_variants: bool,
}

/// Daily transform budgets.
#[derive(Debug, Clone)]
pub struct QuotaConfig {
    /// Budget of the default plan (`free`).
    pub daily_limit: u32,
    /// Budgets of other plans by name.
    pub plans: BTreeMap<String, u32>,
}

impl QuotaConfig {
    /// The daily budget of `plan`; unknown plans get the default budget.
    pub fn limit_for(&self, plan: &str) -> u32 {
        self.plans.get(plan).copied().unwrap_or(self.daily_limit)
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// Logging settings.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Output format.
    pub format: LogFormat,
    /// `tracing` filter directive, e.g. `info` or `imgedge=debug`.
    pub level: String,
    /// Whether every request is logged at `info`.
    pub access_log: bool,
}

/// A setting that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The config file is not valid TOML of the expected shape.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// A setting has a bad value.
    #[error("{setting}: {message}")]
    Invalid {
        /// The setting (env name or `section.key`).
        setting: String,
        /// Why it is wrong.
        message: String,
    },
}

fn invalid(setting: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { setting: setting.to_owned(), message: message.into() }
}

impl Config {
    /// Loads the configuration for the binary: `explicit` (or `IMGEDGE_CONFIG`, else
    /// `./config.toml` when present), then the process environment.
    ///
    /// # Errors
    /// Any unreadable file, unknown key or invalid value, named.
    pub fn load(explicit: Option<PathBuf>) -> Result<Self, ConfigError> {
        let explicit = explicit.or_else(|| std::env::var_os("IMGEDGE_CONFIG").map(PathBuf::from));
        let settings = match explicit {
            Some(path) => Settings::from_file(&path)?,
            None if Path::new("config.toml").exists() => Settings::from_file(Path::new("config.toml"))?,
            None => Settings::default(),
        };
        settings.with_env(|name| std::env::var(name).ok())?.validate()
    }

    /// The configuration of the embedded default rooted at `data_dir`, ignoring files and the
    /// environment. Tests and tools start from this and adjust fields.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        let mut settings = Settings::default();
        settings.storage.data_dir = data_dir.into().to_string_lossy().into_owned();
        settings.validate().expect("the built-in defaults are valid")
    }
}

/// Raw settings in the shape of `config.toml`; every field has a default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    server: ServerSettings,
    database: DatabaseSettings,
    storage: StorageSettings,
    auth: AuthSettings,
    limits: LimitSettings,
    transform: TransformSettings,
    cache: CacheSettings,
    quota: QuotaSettings,
    log: LogSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ServerSettings {
    host: String,
    port: u16,
    header_read_timeout_secs: u64,
    shutdown_grace_secs: u64,
    max_json_bytes: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            host: "0.0.0.0".into(),
            port: 8080,
            header_read_timeout_secs: 10,
            shutdown_grace_secs: 25,
            max_json_bytes: 64 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct DatabaseSettings {
    url: String,
    pool_size: u32,
    pool_timeout_secs: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self { url: String::new(), pool_size: 16, pool_timeout_secs: 5 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct StorageSettings {
    data_dir: String,
    s3_bucket: String,
    s3_region: String,
    s3_endpoint: String,
    s3_force_path_style: bool,
    s3_access_key_id: String,
    s3_secret_access_key: String,
    s3_connect_timeout_secs: u64,
    s3_operation_timeout_secs: u64,
    s3_max_attempts: u32,
    originals_prefix: String,
    derived_prefix: String,
    presign_ttl_secs: u64,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            data_dir: "./data".into(),
            s3_bucket: String::new(),
            s3_region: "us-east-1".into(),
            s3_endpoint: String::new(),
            s3_force_path_style: false,
            s3_access_key_id: String::new(),
            s3_secret_access_key: String::new(),
            s3_connect_timeout_secs: 3,
            s3_operation_timeout_secs: 20,
            s3_max_attempts: 3,
            originals_prefix: "originals/".into(),
            derived_prefix: "derived/".into(),
            presign_ttl_secs: 300,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct AuthSettings {
    jwt_secret: String,
    jwt_ttl_secs: u64,
    lookup_ttl_secs: u64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self { jwt_secret: String::new(), jwt_ttl_secs: 24 * 3600, lookup_ttl_secs: 10 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct LimitSettings {
    max_upload_bytes: u64,
    max_pixels: u64,
    max_dimension: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self { max_upload_bytes: 20 * 1024 * 1024, max_pixels: 50_000_000, max_dimension: 8192 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct TransformSettings {
    workers: usize,
    queue: usize,
    timeout_secs: u64,
    avif_speed: u8,
}

impl Default for TransformSettings {
    fn default() -> Self {
        Self { workers: 0, queue: 64, timeout_secs: 30, avif_speed: 8 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct CacheSettings {
    memory_mb: u64,
    store_variants: bool,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self { memory_mb: 256, store_variants: true }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct QuotaSettings {
    daily_limit: u32,
    plans: BTreeMap<String, u32>,
}

impl Default for QuotaSettings {
    fn default() -> Self {
        Self { daily_limit: 20, plans: BTreeMap::new() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct LogSettings {
    format: String,
    level: String,
    access_log: bool,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self { format: "human".into(), level: "info".into(), access_log: true }
    }
}

/// One environment variable and the field it sets.
type EnvSetter = fn(&mut Settings, &str) -> Result<(), ConfigError>;

/// Environment variables and the settings they override, in the order they are applied.
const ENV: &[(&str, EnvSetter)] = &[
    ("HOST", |s, v| set_string(&mut s.server.host, v)),
    ("PORT", |s, v| set_parsed(&mut s.server.port, v, "PORT")),
    ("SHUTDOWN_GRACE_SECS", |s, v| set_parsed(&mut s.server.shutdown_grace_secs, v, "SHUTDOWN_GRACE_SECS")),
    ("DATABASE_URL", |s, v| set_string(&mut s.database.url, v)),
    ("DATABASE_POOL_SIZE", |s, v| set_parsed(&mut s.database.pool_size, v, "DATABASE_POOL_SIZE")),
    ("DATA_DIR", |s, v| set_string(&mut s.storage.data_dir, v)),
    ("AWS_S3_BUCKET", |s, v| set_string(&mut s.storage.s3_bucket, v)),
    ("AWS_REGION", |s, v| set_string(&mut s.storage.s3_region, v)),
    ("AWS_ENDPOINT_URL", |s, v| set_string(&mut s.storage.s3_endpoint, v)),
    ("AWS_S3_FORCE_PATH_STYLE", |s, v| set_bool(&mut s.storage.s3_force_path_style, v, "AWS_S3_FORCE_PATH_STYLE")),
    ("AWS_ACCESS_KEY_ID", |s, v| set_string(&mut s.storage.s3_access_key_id, v)),
    ("AWS_SECRET_ACCESS_KEY", |s, v| set_string(&mut s.storage.s3_secret_access_key, v)),
    ("JWT_SECRET", |s, v| set_string(&mut s.auth.jwt_secret, v)),
    ("JWT_TTL_SECS", |s, v| set_parsed(&mut s.auth.jwt_ttl_secs, v, "JWT_TTL_SECS")),
    ("LOOKUP_TTL_SECS", |s, v| set_parsed(&mut s.auth.lookup_ttl_secs, v, "LOOKUP_TTL_SECS")),
    ("MAX_UPLOAD_BYTES", |s, v| set_parsed(&mut s.limits.max_upload_bytes, v, "MAX_UPLOAD_BYTES")),
    ("MAX_PIXELS", |s, v| set_parsed(&mut s.limits.max_pixels, v, "MAX_PIXELS")),
    ("TRANSFORM_WORKERS", |s, v| set_parsed(&mut s.transform.workers, v, "TRANSFORM_WORKERS")),
    ("TRANSFORM_QUEUE", |s, v| set_parsed(&mut s.transform.queue, v, "TRANSFORM_QUEUE")),
    ("TRANSFORM_TIMEOUT_SECS", |s, v| set_parsed(&mut s.transform.timeout_secs, v, "TRANSFORM_TIMEOUT_SECS")),
    ("CACHE_MEMORY_MB", |s, v| set_parsed(&mut s.cache.memory_mb, v, "CACHE_MEMORY_MB")),
    ("CACHE_STORE_VARIANTS", |s, v| set_bool(&mut s.cache.store_variants, v, "CACHE_STORE_VARIANTS")),
    ("QUOTA_DAILY_LIMIT", |s, v| set_parsed(&mut s.quota.daily_limit, v, "QUOTA_DAILY_LIMIT")),
    ("LOG_FORMAT", |s, v| set_string(&mut s.log.format, v)),
    ("LOG_LEVEL", |s, v| set_string(&mut s.log.level, v)),
    ("ACCESS_LOG", |s, v| set_bool(&mut s.log.access_log, v, "ACCESS_LOG")),
];

fn set_string(field: &mut String, value: &str) -> Result<(), ConfigError> {
    value.clone_into(field);
    Ok(())
}

fn set_parsed<T: std::str::FromStr>(field: &mut T, value: &str, name: &str) -> Result<(), ConfigError>
where
    T::Err: std::fmt::Display,
{
    *field = value.trim().parse().map_err(|e| invalid(name, format!("`{value}` is not valid: {e}")))?;
    Ok(())
}

fn set_bool(field: &mut bool, value: &str, name: &str) -> Result<(), ConfigError> {
    *field = match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => true,
        "0" | "false" | "no" | "off" => false,
        _ => return Err(invalid(name, format!("`{value}` is not a boolean (true/false)"))),
    };
    Ok(())
}

impl Settings {
    /// Reads settings from a TOML file; missing keys keep their defaults.
    ///
    /// # Errors
    /// The file is unreadable, not TOML, or has an unknown key.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse { path: path.to_owned(), message })
    }

    /// Parses settings from TOML text.
    ///
    /// # Errors
    /// The parser's message when the text is not valid.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Applies the documented environment variables read through `env`.
    ///
    /// # Errors
    /// A variable whose value cannot be parsed, named.
    pub fn with_env(mut self, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        for (name, set) in ENV {
            if let Some(value) = env(name) {
                set(&mut self, &value)?;
            }
        }
        Ok(self)
    }

    /// Checks every value and converts it to its domain type.
    ///
    /// # Errors
    /// The first invalid setting, named.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let s = self;
        let host: IpAddr = s
            .server
            .host
            .parse()
            .map_err(|_| invalid("server.host (HOST)", format!("`{}` is not an IP address", s.server.host)))?;
        let data_dir = PathBuf::from(nonempty(&s.storage.data_dir).unwrap_or("./data"));
        let backend = database_backend(&s.database.url, &data_dir)?;
        let jwt_secret = nonempty(&s.auth.jwt_secret).map(|v| SecretString::from(v.to_owned()));
        if let Some(secret) = nonempty(&s.auth.jwt_secret) {
            if secret.len() < 32 {
                return Err(invalid("auth.jwt_secret (JWT_SECRET)", "must be at least 32 characters"));
            }
        }
        if matches!(backend, DatabaseBackend::Postgres(_)) && jwt_secret.is_none() {
            return Err(invalid(
                "auth.jwt_secret (JWT_SECRET)",
                "is required with PostgreSQL: every replica must sign and check tokens with the same secret",
            ));
        }
        if s.database.pool_size == 0 {
            return Err(invalid("database.pool_size (DATABASE_POOL_SIZE)", "must be at least 1"));
        }
        let storage_backend = match nonempty(&s.storage.s3_bucket) {
            None => StorageBackend::Fs(data_dir.join("blobs")),
            Some(bucket) => StorageBackend::S3(s3_config(&s.storage, bucket)?),
        };
        for (name, prefix) in [
            ("storage.originals_prefix", &s.storage.originals_prefix),
            ("storage.derived_prefix", &s.storage.derived_prefix),
        ] {
            if !crate::storage::BlobKey::is_valid_prefix(prefix) {
                return Err(invalid(
                    name,
                    format!("`{prefix}` must be non-empty, end with `/` and use only [A-Za-z0-9_./-]"),
                ));
            }
        }
        if s.storage.originals_prefix.starts_with(&s.storage.derived_prefix)
            || s.storage.derived_prefix.starts_with(&s.storage.originals_prefix)
        {
            return Err(invalid(
                "storage.derived_prefix",
                "originals and derived prefixes must not contain each other",
            ));
        }
        positive("auth.jwt_ttl_secs (JWT_TTL_SECS)", s.auth.jwt_ttl_secs)?;
        positive("limits.max_upload_bytes (MAX_UPLOAD_BYTES)", s.limits.max_upload_bytes)?;
        positive("limits.max_pixels (MAX_PIXELS)", s.limits.max_pixels)?;
        if !(1..=65_535).contains(&s.limits.max_dimension) {
            return Err(invalid("limits.max_dimension", "must be between 1 and 65535"));
        }
        positive("transform.timeout_secs (TRANSFORM_TIMEOUT_SECS)", s.transform.timeout_secs)?;
        if !(1..=10).contains(&s.transform.avif_speed) {
            return Err(invalid("transform.avif_speed", "must be between 1 and 10"));
        }
        let workers = match s.transform.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let format = match s.log.format.to_ascii_lowercase().as_str() {
            "human" | "text" | "" => LogFormat::Human,
            "json" => LogFormat::Json,
            other => return Err(invalid("log.format (LOG_FORMAT)", format!("`{other}` is not `human` or `json`"))),
        };
        Ok(Config {
            server: ServerConfig {
                host,
                port: s.server.port,
                header_read_timeout: Duration::from_secs(s.server.header_read_timeout_secs.max(1)),
                shutdown_grace: Duration::from_secs(s.server.shutdown_grace_secs),
                max_json_bytes: s.server.max_json_bytes.max(1024),
            },
            data_dir,
            database: DatabaseConfig {
                backend,
                pool_size: s.database.pool_size,
                pool_timeout: Duration::from_secs(s.database.pool_timeout_secs.max(1)),
            },
            storage: StorageConfig {
                backend: storage_backend,
                originals_prefix: s.storage.originals_prefix,
                derived_prefix: s.storage.derived_prefix,
                presign_ttl: Duration::from_secs(s.storage.presign_ttl_secs.clamp(1, 7 * 24 * 3600)),
            },
            auth: AuthConfig {
                jwt_secret,
                jwt_ttl: Duration::from_secs(s.auth.jwt_ttl_secs),
                lookup_ttl: Duration::from_secs(s.auth.lookup_ttl_secs),
            },
            limits: Limits {
                max_upload_bytes: s.limits.max_upload_bytes,
                max_pixels: s.limits.max_pixels,
                max_dimension: s.limits.max_dimension,
            },
            transform: TransformConfig {
                workers,
                queue: s.transform.queue,
                timeout: Duration::from_secs(s.transform.timeout_secs),
                avif_speed: s.transform.avif_speed,
            },
            cache: CacheConfig {
                memory_bytes: s.cache.memory_mb * 1024 * 1024,
                store_variants: s.cache.store_variants,
            },
            quota: QuotaConfig { daily_limit: s.quota.daily_limit, plans: s.quota.plans },
            log: LogConfig { format, level: s.log.level, access_log: s.log.access_log },
        })
    }
}

fn nonempty(value: &str) -> Option<&str> {
    let value = value.trim();
    (!value.is_empty()).then_some(value)
}

fn positive(name: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(invalid(name, "must be greater than 0"));
    }
    Ok(())
}

fn database_backend(url: &str, data_dir: &Path) -> Result<DatabaseBackend, ConfigError> {
    const NAME: &str = "database.url (DATABASE_URL)";
    let Some(url) = nonempty(url) else {
        return Ok(DatabaseBackend::Sqlite(data_dir.join("imgedge.db")));
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        url.parse::<tokio_postgres::Config>().map_err(|e| invalid(NAME, format!("not a valid PostgreSQL URL: {e}")))?;
        return Ok(DatabaseBackend::Postgres(url.to_owned()));
    }
    if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        let path = path.split('?').next().unwrap_or_default();
        if path.is_empty() {
            return Err(invalid(NAME, "a sqlite URL needs a file path, e.g. sqlite://./data/imgedge.db"));
        }
        return Ok(DatabaseBackend::Sqlite(PathBuf::from(path)));
    }
    Err(invalid(NAME, "must start with postgres://, postgresql:// or sqlite://"))
}

fn s3_config(s: &StorageSettings, bucket: &str) -> Result<S3Config, ConfigError> {
    let endpoint = nonempty(&s.s3_endpoint).map(str::to_owned);
    if let Some(endpoint) = &endpoint {
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(invalid("storage.s3_endpoint (AWS_ENDPOINT_URL)", "must start with http:// or https://"));
        }
    }
    let access_key_id = nonempty(&s.s3_access_key_id).map(str::to_owned);
    let secret_access_key = nonempty(&s.s3_secret_access_key).map(|v| SecretString::from(v.to_owned()));
    if access_key_id.is_some() != secret_access_key.is_some() {
        return Err(invalid("AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY", "set both or neither"));
    }
    if s.s3_max_attempts == 0 {
        return Err(invalid("storage.s3_max_attempts", "must be at least 1"));
    }
    Ok(S3Config {
        bucket: bucket.to_owned(),
        region: nonempty(&s.s3_region).unwrap_or("us-east-1").to_owned(),
        endpoint,
        force_path_style: s.s3_force_path_style,
        access_key_id,
        secret_access_key,
        connect_timeout: Duration::from_secs(s.s3_connect_timeout_secs.max(1)),
        operation_timeout: Duration::from_secs(s.s3_operation_timeout_secs.max(1)),
        max_attempts: s.s3_max_attempts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn defaults_are_the_embedded_backends() {
        let config = Settings::default().validate().unwrap();
        assert_eq!(config.database.backend, DatabaseBackend::Sqlite(PathBuf::from("./data/imgedge.db")));
        assert!(matches!(config.storage.backend, StorageBackend::Fs(ref p) if p == Path::new("./data/blobs")));
        assert_eq!(config.server.port, 8080);
        assert_eq!(config.quota.daily_limit, 20);
    }

    #[test]
    fn environment_overrides_the_file() {
        let settings = Settings::from_toml("[server]\nport = 9000\n[quota]\ndaily_limit = 5\n").unwrap();
        let config = settings.with_env(env(&[("PORT", "0"), ("DATA_DIR", "/tmp/x")])).unwrap().validate().unwrap();
        assert_eq!(config.server.port, 0);
        assert_eq!(config.quota.daily_limit, 5);
        assert_eq!(config.database.backend, DatabaseBackend::Sqlite(PathBuf::from("/tmp/x/imgedge.db")));
    }

    #[test]
    fn postgres_without_jwt_secret_is_refused() {
        let err = Settings::default()
            .with_env(env(&[("DATABASE_URL", "postgres://u@localhost/db")]))
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("JWT_SECRET"), "{err}");
    }

    #[test]
    fn short_jwt_secret_is_refused() {
        let err = Settings::default().with_env(env(&[("JWT_SECRET", "short")])).unwrap().validate().unwrap_err();
        assert!(err.to_string().contains("at least 32"), "{err}");
    }

    #[test]
    fn unparsable_port_names_the_variable() {
        let err = Settings::default().with_env(env(&[("PORT", "eighty")])).unwrap_err();
        assert!(err.to_string().starts_with("PORT:"), "{err}");
    }

    #[test]
    fn unknown_key_in_file_is_refused() {
        let err = Settings::from_toml("[server]\nprot = 1\n").unwrap_err();
        assert!(err.contains("prot"), "{err}");
    }

    #[test]
    fn unknown_database_scheme_is_refused() {
        let err = Settings::default().with_env(env(&[("DATABASE_URL", "mysql://x")])).unwrap().validate().unwrap_err();
        assert!(err.to_string().contains("DATABASE_URL"), "{err}");
    }

    #[test]
    fn bucket_selects_s3_with_endpoint_and_path_style() {
        let config = Settings::default()
            .with_env(env(&[
                ("AWS_S3_BUCKET", "b"),
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
                ("AWS_S3_FORCE_PATH_STYLE", "true"),
            ]))
            .unwrap()
            .validate()
            .unwrap();
        let StorageBackend::S3(s3) = config.storage.backend else { panic!("expected S3") };
        assert_eq!(s3.bucket, "b");
        assert!(s3.force_path_style);
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
    }

    #[test]
    fn the_repository_config_file_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
        Settings::from_file(&path).unwrap().validate().unwrap();
    }

    #[test]
    fn plan_limits_fall_back_to_the_default() {
        let settings = Settings::from_toml("[quota]\ndaily_limit = 7\nplans = { pro = 500 }\n").unwrap();
        let config = settings.validate().unwrap();
        assert_eq!(config.quota.limit_for("pro"), 500);
        assert_eq!(config.quota.limit_for("free"), 7);
    }
}
