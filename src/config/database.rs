//! Which database the configuration names, and a PostgreSQL URL read the way libpq reads it:
//! `sslmode` (`disable`, `prefer` — the default —, `require`, `verify-ca`, `verify-full`) and
//! `sslrootcert`, else `PGSSLROOTCERT` (`database.sslrootcert`).

use std::path::PathBuf;

use serde::Deserialize;
use tokio_postgres::config::SslMode;

/// Which database holds users, images and quota.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum DatabaseBackend {
    /// Embedded SQLite file (an empty URL: `imgedge.db` in the data folder).
    Sqlite(PathBuf),
    /// PostgreSQL connection string.
    Postgres(String),
}

impl TryFrom<String> for DatabaseBackend {
    type Error = String;

    fn try_from(url: String) -> Result<Self, String> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            PostgresUrl::read(url, None)?;
            return Ok(Self::Postgres(url.to_owned()));
        }
        match url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).map(|p| p.split('?').next()) {
            _ if url.is_empty() => Ok(Self::Sqlite(PathBuf::new())),
            Some(Some(path)) if !path.is_empty() => Ok(Self::Sqlite(PathBuf::from(path))),
            Some(_) => Err("a sqlite URL needs a file path, e.g. sqlite://./data/imgedge.db".into()),
            None => Err("the database URL must start with postgres://, postgresql:// or sqlite://".into()),
        }
    }
}

/// How much of a PostgreSQL server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Nothing: encryption only.
    Nothing,
    /// The chain up to a trusted root.
    Chain,
    /// The chain and that it names the host.
    ChainAndHost,
}

/// A PostgreSQL URL with its TLS parameters taken out and understood.
#[derive(Debug, Clone)]
pub struct PostgresUrl {
    /// The rest of the URL, parsed, with the SSL mode set.
    pub config: tokio_postgres::Config,
    /// What TLS checks.
    pub verify: Verify,
    /// The root certificate file to check with (`sslrootcert`, else the configured default).
    pub root_cert: Option<String>,
}

impl PostgresUrl {
    /// Reads `url` without touching any file; `root_cert` is the configured default root
    /// certificate file (`PGSSLROOTCERT`), which `sslrootcert` in the URL overrides.
    ///
    /// # Errors
    /// A message naming the bad parameter.
    pub fn read(url: &str, root_cert: Option<&str>) -> Result<Self, String> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let (mut mode, mut root_cert) = (None, root_cert.filter(|p| !p.is_empty()).map(str::to_owned));
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("sslmode", value)) => mode = Some(value.to_owned()),
                Some(("sslrootcert", value)) => root_cert = Some(value.replace("%2F", "/")),
                _ => rest.push(pair),
            }
        }
        let url = if rest.is_empty() { base.to_owned() } else { format!("{base}?{}", rest.join("&")) };
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| format!("not a valid PostgreSQL URL: {e}"))?;
        let (ssl_mode, verify) = match mode.as_deref().unwrap_or("prefer") {
            "disable" => (SslMode::Disable, Verify::Nothing),
            "prefer" | "allow" => (SslMode::Prefer, Verify::Nothing),
            // As libpq: `require` with a root certificate checks the chain.
            "require" if root_cert.is_some() => (SslMode::Require, Verify::Chain),
            "require" => (SslMode::Require, Verify::Nothing),
            "verify-ca" => (SslMode::Require, Verify::Chain),
            "verify-full" => (SslMode::Require, Verify::ChainAndHost),
            other => {
                return Err(format!("sslmode `{other}` is not disable, prefer, require, verify-ca or verify-full"))
            }
        };
        config.ssl_mode(ssl_mode);
        Ok(Self { config, verify, root_cert })
    }
}
