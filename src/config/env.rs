//! Every environment variable imgedge reads, in one place: the ones that set a configuration
//! key, and the few others (which file to read, the log filter's override, the command line's
//! secrets). A test holds the source and the README to this list.

/// Every environment variable and the `section.key` it sets.
pub const ENV: &[(&str, &str)] = &[
    ("HOST", "server.host"),
    ("PORT", "server.port"),
    ("HEADER_TIMEOUT_SECS", "server.header_read_timeout_secs"),
    ("IDLE_TIMEOUT_SECS", "server.idle_timeout_secs"),
    ("BODY_TIMEOUT_SECS", "server.body_timeout_secs"),
    ("MAX_CONNECTIONS", "server.max_connections"),
    ("TRUSTED_PROXIES", "server.trusted_proxies"),
    ("SHUTDOWN_GRACE_SECS", "server.shutdown_grace_secs"),
    ("DATABASE_URL", "database.url"),
    ("DATABASE_POOL_SIZE", "database.pool_size"),
    ("PGSSLROOTCERT", "database.sslrootcert"),
    ("DATA_DIR", "storage.data_dir"),
    ("AWS_S3_BUCKET", "storage.s3.bucket"),
    ("AWS_REGION", "storage.s3.region"),
    ("AWS_ENDPOINT_URL", "storage.s3.endpoint"),
    ("AWS_S3_FORCE_PATH_STYLE", "storage.s3.force_path_style"),
    ("AWS_ACCESS_KEY_ID", "storage.s3.access_key_id"),
    ("AWS_SECRET_ACCESS_KEY", "storage.s3.secret_access_key"),
    ("JWT_SECRET", "auth.jwt_secret"),
    ("JWT_TTL_SECS", "auth.jwt_ttl_secs"),
    ("LOOKUP_TTL_SECS", "auth.lookup_ttl_secs"),
    ("HASH_WORKERS", "auth.hash_workers"),
    ("LOGIN_FAILURES_PER_USER", "auth.login_failures_per_user"),
    ("LOGIN_FAILURES_PER_IP", "auth.login_failures_per_ip"),
    ("REGISTRATIONS_PER_IP", "auth.registrations_per_ip"),
    ("MAX_UPLOAD_BYTES", "limits.max_upload_bytes"),
    ("MAX_PIXELS", "limits.max_pixels"),
    ("MAX_FRAMES", "limits.max_frames"),
    ("MAX_PRESETS", "limits.max_presets"),
    ("MAX_DECODE_MB", "limits.max_decode_mb"),
    ("DECODE_BUDGET_MB", "limits.decode_budget_mb"),
    ("TRANSFORM_WORKERS", "transform.workers"),
    ("TRANSFORM_QUEUE", "transform.queue"),
    ("TRANSFORM_TIMEOUT_SECS", "transform.timeout_secs"),
    ("TRANSFORM_QUEUE_WAIT_SECS", "transform.queue_wait_secs"),
    ("CACHE_MEMORY_MB", "cache.memory_mb"),
    ("CACHE_STORE_VARIANTS", "cache.store_variants"),
    ("CACHE_FAILURE_TTL_SECS", "cache.failure_ttl_secs"),
    ("QUOTA_DAILY_LIMIT", "quota.daily_limit"),
    ("PURGE_WEBHOOK_URL", "purge.webhook_url"),
    ("LOG_FORMAT", "log.format"),
    ("LOG_LEVEL", "log.level"),
    ("ACCESS_LOG", "log.access_log"),
    ("LOG_REFUSAL_LINES_PER_SEC", "log.refusal_lines_per_sec"),
];

/// The variables that set no configuration key, and what reads them.
pub const OTHER: &[(&str, &str)] = &[
    ("IMGEDGE_CONFIG", "the configuration file, when --config is not given"),
    ("RUST_LOG", "a tracing filter that wins over LOG_LEVEL (tracing's own convention)"),
    ("IMGEDGE_SIGNING_KEY", "imgedge sign: the owner's signing key"),
    ("IMGEDGE_PASSWORD", "imgedge user create: the new user's password"),
];
