//! What every handler receives: the configuration, the domain services, and the HTTP layer's
//! own limits (login attempts, connection slots).

use std::sync::Arc;

use crate::accounts::Accounts;
use crate::auth::limits::Guard;
use crate::config::Config;
use crate::delivery::Delivery;
use crate::images::Images;
use crate::metrics::Gauges;
use crate::presets::Presets;
use crate::services::Services;
use crate::shared::Shared;
use crate::signing::Signing;

/// Everything a request may need, built once at start-up.
pub struct AppState {
    /// The configuration.
    pub config: Config,
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
    /// Limits on failed logins and registrations.
    pub guard: Guard,
    /// Connection slots (`server.max_connections`).
    pub connections: Arc<tokio::sync::Semaphore>,
    /// How refusals are logged.
    pub refusals: crate::telemetry::refusals::Refusals,
}

impl AppState {
    /// Gauges for `/metrics`.
    pub fn gauges(&self) -> Gauges {
        Gauges {
            queue_depth: self.shared.workers.queued(),
            transforms_running: self.shared.workers.running(),
            memory_cache_bytes: self.shared.memory.weighted_size(),
            decode_memory_bytes: self.shared.workers.memory_in_use(),
            db: self.shared.db.pool_state(),
        }
    }
}

impl AppState {
    /// The state of a server with `config` over `services`.
    pub fn new(config: Config, services: Services) -> Self {
        let Services { shared, images, delivery, accounts, presets, signing } = services;
        let auth = &config.auth;
        let guard = Guard::new(auth.login_failures_per_user, auth.login_failures_per_ip, auth.registrations_per_ip);
        let connections = Arc::new(tokio::sync::Semaphore::new(config.server.max_connections));
        let refusals = crate::telemetry::refusals::Refusals::new(config.log.refusal_lines_per_sec);
        Self { config, shared, images, delivery, accounts, presets, signing, guard, connections, refusals }
    }
}
