//! Typed configuration: built-in defaults, then `config.toml`, then environment variables,
//! deserialized once into the final types.
//!
//! The defaults (`config/defaults.toml`, every key with its value) are read as a TOML table, the
//! operator's file is merged over them, each variable of [`ENV`] replaces one key (read as the
//! type of its default), and the result is deserialized straight into [`Config`] — durations,
//! secrets and the database included. [`Config::validate`] then checks the rules that span
//! fields. Every failure names the setting, so a bad deployment stops at start-up. What each
//! setting means is written once, for operators, in the commented `config.toml`, so the fields
//! here carry no doc comments of their own.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use self::cidr::Cidr;
pub use self::database::{DatabaseBackend, PostgresUrl, Verify};
pub use self::env::{ENV, OTHER};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
use toml::{Table, Value};

mod cidr;
mod database;
mod env;

/// Every key and its default value.
const DEFAULTS: &str = include_str!("config/defaults.toml");

/// Keys set by a number or a name (`event_loops = "auto"`).
const NUMBER_OR_NAME: &[&str] = &["server.event_loops"];

/// Declares the sections of `config.toml`: deserialized as they are, unknown keys refused.
macro_rules! sections {
    ($($(#[$doc:meta])* $name:ident { $($(#[$attr:meta])* $field:ident: $ty:ty,)* })*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name { $($(#[$attr])* pub $field: $ty,)* }
    )*};
}

sections! {
    /// The configuration of one server process.
    Config {
        server: ServerConfig,
        database: DatabaseConfig,
        storage: StorageConfig,
        auth: AuthConfig,
        limits: Limits,
        transform: TransformConfig,
        cache: CacheConfig,
        quota: QuotaConfig,
        purge: PurgeConfig,
        log: LogConfig,
    }
    /// `[server]`: listener, timeouts and request limits.
    ServerConfig {
        host: IpAddr,
        port: u16,
        #[serde(rename = "header_read_timeout_secs", deserialize_with = "secs")]
        header_read_timeout: Duration,
        #[serde(rename = "idle_timeout_secs", deserialize_with = "secs")]
        idle_timeout: Duration,
        #[serde(rename = "body_timeout_secs", deserialize_with = "secs")]
        body_timeout: Duration,
        max_connections: usize,
        #[serde(deserialize_with = "event_loops")]
        event_loops: usize,
        trusted_proxies: Vec<Cidr>,
        #[serde(rename = "shutdown_grace_secs", deserialize_with = "secs")]
        shutdown_grace: Duration,
        max_json_bytes: usize,
    }
    /// `[database]`; the URL's scheme picks the backend.
    DatabaseConfig {
        #[serde(rename = "url")]
        backend: DatabaseBackend,
        pool_size: u32,
        #[serde(rename = "pool_timeout_secs", deserialize_with = "secs")]
        pool_timeout: Duration,
        sslrootcert: String,
    }
    /// `[storage]`: the data folder, key prefixes, and the bucket when one is named.
    StorageConfig {
        data_dir: PathBuf,
        s3: S3Config,
        originals_prefix: String,
        derived_prefix: String,
        #[serde(rename = "presign_ttl_secs", deserialize_with = "secs")]
        presign_ttl: Duration,
    }
    /// `[storage.s3]`; an empty bucket keeps objects in the data folder.
    S3Config {
        bucket: String,
        region: String,
        endpoint: String,
        force_path_style: bool,
        access_key_id: String,
        #[serde(deserialize_with = "secret")]
        secret_access_key: Option<SecretString>,
        #[serde(rename = "connect_timeout_secs", deserialize_with = "secs")]
        connect_timeout: Duration,
        #[serde(rename = "operation_timeout_secs", deserialize_with = "secs")]
        operation_timeout: Duration,
        max_attempts: u32,
    }
    /// `[auth]`: JWTs and how long lookups are cached.
    AuthConfig {
        #[serde(deserialize_with = "secret")]
        jwt_secret: Option<SecretString>,
        #[serde(rename = "jwt_ttl_secs", deserialize_with = "secs")]
        jwt_ttl: Duration,
        #[serde(rename = "lookup_ttl_secs", deserialize_with = "secs")]
        lookup_ttl: Duration,
        hash_workers: usize,
        hash_queue: usize,
        login_failures_per_user: u32,
        login_failures_per_ip: u32,
        registrations_per_ip: u32,
    }
    /// `[limits]` on uploads and transforms.
    Limits {
        max_upload_bytes: u64,
        max_pixels: u64,
        max_frames: u32,
        max_presets: u32,
        max_dimension: u32,
        #[serde(rename = "max_decode_mb", deserialize_with = "mebibytes")]
        max_decode_bytes: u64,
        #[serde(rename = "decode_budget_mb", deserialize_with = "mebibytes")]
        decode_budget_bytes: u64,
    }
    /// `[transform]`: the worker pool; 0 workers in the file means one per core.
    TransformConfig {
        workers: usize,
        queue: usize,
        #[serde(rename = "timeout_secs", deserialize_with = "secs")]
        timeout: Duration,
        #[serde(rename = "queue_wait_secs", deserialize_with = "secs")]
        queue_wait: Duration,
        avif_speed: u8,
        width_ladder: Vec<u32>,
        #[serde(rename = "auto_format_budget_ms", deserialize_with = "millis")]
        auto_format_budget: Duration,
        auto_format_max_age_secs: u32,
    }
    /// `[cache]`: the in-memory variant cache and whether variants go to the store.
    CacheConfig {
        #[serde(rename = "memory_mb", deserialize_with = "mebibytes")]
        memory_bytes: u64,
        store_variants: bool,
        #[serde(rename = "url_memo_mb", deserialize_with = "mebibytes")]
        url_memo_bytes: u64,
        #[serde(rename = "failure_ttl_secs", deserialize_with = "secs")]
        failure_ttl: Duration,
        #[serde(rename = "failure_memo_mb", deserialize_with = "mebibytes")]
        failure_memo_bytes: u64,
        public_max_age_secs: u32,
        #[serde(rename = "presets_mb", deserialize_with = "mebibytes")]
        presets_bytes: u64,
    }
    /// `[quota]`: daily transform budgets, by plan.
    QuotaConfig {
        daily_limit: u32,
        plans: BTreeMap<String, u32>,
    }
    /// `[purge]`: where the tags of changed images, presets and owners are sent for a CDN to
    /// purge (empty: nowhere).
    PurgeConfig {
        webhook_url: String,
        #[serde(rename = "timeout_secs", deserialize_with = "secs")]
        timeout: Duration,
        #[serde(rename = "give_up_after_secs", deserialize_with = "secs")]
        give_up_after: Duration,
    }
    /// `[log]`: `format` is `human` or `json`; `level` a tracing filter.
    LogConfig {
        format: LogFormat,
        level: String,
        access_log: bool,
        refusal_lines_per_sec: u32,
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[serde(alias = "text")]
    Human,
    /// One JSON object per line.
    Json,
}

impl QuotaConfig {
    /// The daily budget of `plan`; unknown plans get the default budget.
    pub fn limit_for(&self, plan: &str) -> u32 {
        self.plans.get(plan).copied().unwrap_or(self.daily_limit)
    }
}

/// A setting that could not be used, named (env name, `section.key` or file).
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct ConfigError {
    /// The setting or file.
    pub setting: String,
    /// Why it is wrong.
    pub message: String,
}

fn invalid(setting: &str, message: impl ToString) -> ConfigError {
    ConfigError { setting: setting.to_owned(), message: message.to_string() }
}

impl Config {
    /// Loads the configuration for the binary: `explicit` (or `IMGEDGE_CONFIG`, else
    /// `./config.toml` when present), then the process environment.
    ///
    /// # Errors
    /// Any unreadable file, unknown key or invalid value, named.
    pub fn load(explicit: Option<PathBuf>) -> Result<Self, ConfigError> {
        let path = explicit
            .or_else(|| std::env::var_os("IMGEDGE_CONFIG").map(PathBuf::from))
            .or_else(|| Some(PathBuf::from("config.toml")).filter(|p| p.exists()));
        let text = match &path {
            Some(path) => std::fs::read_to_string(path).map_err(|e| invalid(&path.display().to_string(), e))?,
            None => String::new(),
        };
        Self::parse(&text, |name| std::env::var(name).ok())?.validate()
    }

    /// The embedded default rooted at `data_dir`, ignoring files and the environment. Tests
    /// and tools start from this and adjust fields.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        let mut config = Self::parse("", |_| None).expect("the built-in defaults parse");
        config.storage.data_dir = data_dir.into();
        config.validate().expect("the built-in defaults are valid")
    }

    /// The defaults with TOML `text` merged over them and the variables `env` gives on top;
    /// call [`Config::validate`] next.
    ///
    /// # Errors
    /// Malformed TOML, an unknown key, or a value of the wrong type, named.
    pub fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut table: Table = DEFAULTS.parse().map_err(|e| invalid("built-in defaults", e))?;
        merge(&mut table, text.parse().map_err(|e| invalid("config file", e))?);
        for &(name, key) in ENV {
            let Some(raw) = env(name) else { continue };
            let mut at = &mut table;
            let (sections, last) = key.rsplit_once('.').unwrap_or(("", key));
            for section in sections.split('.') {
                at = at.get_mut(section).and_then(Value::as_table_mut).ok_or_else(|| invalid(key, "no section"))?;
            }
            let value = match at.get(last) {
                // A number or a name: the key's own parser reads the text.
                _ if NUMBER_OR_NAME.contains(&key) => Some(Value::String(raw.clone())),
                Some(Value::Integer(_)) => raw.trim().parse().map(Value::Integer).ok(),
                Some(Value::Boolean(_)) => boolean(&raw).map(Value::Boolean),
                Some(Value::Array(_)) => {
                    let items = raw.split(',').map(str::trim).filter(|item| !item.is_empty());
                    Some(Value::Array(items.map(|item| Value::String(item.to_owned())).collect()))
                }
                _ => Some(Value::String(raw.clone())),
            };
            at.insert(last.to_owned(), value.ok_or_else(|| invalid(name, format!("`{raw}` is not valid here")))?);
        }
        Self::deserialize(Value::Table(table)).map_err(|e| invalid("config", e))
    }

    /// Fills what follows from other settings and checks the rules that span fields.
    ///
    /// # Errors
    /// The first invalid setting, named.
    pub fn validate(mut self) -> Result<Self, ConfigError> {
        if self.database.backend == DatabaseBackend::Sqlite(PathBuf::new()) {
            self.database.backend = DatabaseBackend::Sqlite(self.storage.data_dir.join("imgedge.db"));
        }
        let secret = self.auth.jwt_secret.as_ref().map(|s| s.expose_secret().len());
        if secret.is_some_and(|len| len < 32) {
            return Err(invalid("auth.jwt_secret (JWT_SECRET)", "must be at least 32 characters"));
        }
        if secret.is_none() && matches!(self.database.backend, DatabaseBackend::Postgres(_)) {
            return Err(invalid("auth.jwt_secret (JWT_SECRET)", "is required with PostgreSQL: replicas share it"));
        }
        let (originals, derived) = (self.storage.originals_prefix.as_str(), self.storage.derived_prefix.as_str());
        for (name, prefix) in [("storage.originals_prefix", originals), ("storage.derived_prefix", derived)] {
            if !crate::ids::is_key_prefix(prefix) {
                return Err(invalid(name, format!("`{prefix}` must end with `/` and use only [A-Za-z0-9_./-]")));
            }
        }
        let s3 = &self.storage.s3;
        for (name, ok) in [
            (
                "storage.derived_prefix (overlaps originals)",
                !(originals.starts_with(derived) || derived.starts_with(originals)),
            ),
            ("storage.s3.endpoint (AWS_ENDPOINT_URL)", s3.endpoint.is_empty() || s3.endpoint.starts_with("http")),
            (
                "purge.webhook_url (PURGE_WEBHOOK_URL): an http:// or https:// URL",
                self.purge.webhook_url.is_empty() || crate::purges::is_webhook_url(&self.purge.webhook_url),
            ),
            ("purge.timeout_secs", !self.purge.timeout.is_zero()),
            ("AWS_ACCESS_KEY_ID (needs the secret too)", s3.access_key_id.is_empty() == s3.secret_access_key.is_none()),
            ("storage.s3.max_attempts", s3.max_attempts >= 1),
            ("database.pool_size (DATABASE_POOL_SIZE)", self.database.pool_size >= 1),
            ("auth.jwt_ttl_secs (JWT_TTL_SECS)", !self.auth.jwt_ttl.is_zero()),
            ("limits.max_upload_bytes (MAX_UPLOAD_BYTES)", self.limits.max_upload_bytes > 0),
            ("limits.max_pixels (MAX_PIXELS)", self.limits.max_pixels > 0),
            ("limits.max_frames (MAX_FRAMES)", self.limits.max_frames > 0),
            ("limits.max_dimension", (1..=65_535).contains(&self.limits.max_dimension)),
            ("transform.timeout_secs (TRANSFORM_TIMEOUT_SECS)", !self.transform.timeout.is_zero()),
            ("transform.queue_wait_secs (TRANSFORM_QUEUE_WAIT_SECS)", !self.transform.queue_wait.is_zero()),
            ("transform.avif_speed (0: the encoder's default)", self.transform.avif_speed <= 10),
            (
                "transform.width_ladder (ascending widths within limits.max_dimension)",
                !self.transform.width_ladder.is_empty()
                    && self.transform.width_ladder.windows(2).all(|w| w[0] < w[1])
                    && self.transform.width_ladder.iter().all(|w| (1..=self.limits.max_dimension).contains(w)),
            ),
            ("server.max_connections (MAX_CONNECTIONS)", self.server.max_connections >= 1),
            ("server.event_loops (EVENT_LOOPS): \"auto\" or 0 to 256", self.server.event_loops <= 256),
            ("server.header_read_timeout_secs (HEADER_TIMEOUT_SECS)", !self.server.header_read_timeout.is_zero()),
            ("server.body_timeout_secs (BODY_TIMEOUT_SECS)", !self.server.body_timeout.is_zero()),
            ("auth.hash_workers (HASH_WORKERS)", self.auth.hash_workers >= 1),
            ("limits.max_decode_mb (MAX_DECODE_MB)", self.limits.max_decode_bytes > 0),
            (
                "limits.decode_budget_mb (at least max_decode_mb)",
                self.limits.decode_budget_bytes >= self.limits.max_decode_bytes,
            ),
        ] {
            if !ok {
                return Err(invalid(name, "is not valid (see config.toml)"));
            }
        }
        if self.transform.workers == 0 {
            self.transform.workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        }
        Ok(self)
    }
}

/// Merges `over` into `base`, section by section.
fn merge(base: &mut Table, over: Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(Value::Table(inner)), Value::Table(value)) => merge(inner, value),
            (_, value) => drop(base.insert(key, value)),
        }
    }
}

fn boolean(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// `"auto"` (one per core) or a number (0: none, connections are tasks of the shared runtime).
fn event_loops<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Loops {
        Count(usize),
        Named(String),
    }
    match Loops::deserialize(d)? {
        Loops::Count(n) => Ok(n),
        Loops::Named(name) if name.trim() == "auto" => Ok(std::thread::available_parallelism().map_or(2, |n| n.get())),
        Loops::Named(name) => {
            name.trim().parse().map_err(|_| serde::de::Error::custom(format!("`{name}`: \"auto\" or a number")))
        }
    }
}

fn secs<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_secs)
}

fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_millis)
}

fn mebibytes<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    u64::deserialize(d)?.checked_mul(1 << 20).ok_or_else(|| serde::de::Error::custom("too many megabytes"))
}

/// An empty string is no secret.
fn secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    let value = String::deserialize(d)?;
    Ok((!value.trim().is_empty()).then(|| SecretString::from(value.trim().to_owned())))
}
