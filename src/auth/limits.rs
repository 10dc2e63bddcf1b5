//! Limits on failed logins (per username and per client address) and on registrations (per
//! client address), counted in this replica's memory: a fixed window opens at a key's first
//! counted attempt. Behind a load balancer each replica counts on its own, so the limit a client
//! meets is at most the replicas × the setting.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache;

use super::AuthError;

/// Keys tracked at once per limit; older windows are dropped first.
const KEYS: u64 = 100_000;

/// The limits of the owner API's unauthenticated routes.
#[derive(Clone)]
pub struct Guard {
    logins_by_user: Attempts,
    logins_by_address: Attempts,
    registrations: Attempts,
}

impl Guard {
    /// At most `per_user` and `per_address` failed logins a minute, `registrations` a client
    /// address may make an hour (0 turns a limit off).
    pub fn new(per_user: u32, per_address: u32, registrations: u32) -> Self {
        let minute = Duration::from_secs(60);
        Self {
            logins_by_user: Attempts::new(per_user, minute),
            logins_by_address: Attempts::new(per_address, minute),
            registrations: Attempts::new(registrations, Duration::from_secs(3600)),
        }
    }

    /// Whether `username` may try to log in from `address` now.
    ///
    /// # Errors
    /// [`AuthError::TooManyAttempts`] when either has used up its failures.
    pub fn may_log_in(&self, username: &str, address: IpAddr) -> Result<(), AuthError> {
        let user = username.to_lowercase();
        self.logins_by_user
            .check(&user)
            .and_then(|()| self.logins_by_address.check(&address.to_string()))
            .map_err(|retry_after| AuthError::TooManyAttempts { retry_after })
    }

    /// Counts a failed login.
    pub fn failed_login(&self, username: &str, address: IpAddr) {
        self.logins_by_user.record(&username.to_lowercase());
        self.logins_by_address.record(&address.to_string());
    }

    /// Counts a registration attempt from `address`.
    ///
    /// # Errors
    /// [`AuthError::TooManyAttempts`] when the address has used up its registrations.
    pub fn register(&self, address: IpAddr) -> Result<(), AuthError> {
        let key = address.to_string();
        self.registrations.check(&key).map_err(|retry_after| AuthError::TooManyAttempts { retry_after })?;
        self.registrations.record(&key);
        Ok(())
    }
}

/// Counted attempts per key within a window; `limit` 0 counts nothing.
#[derive(Clone)]
pub struct Attempts {
    limit: u32,
    window: Duration,
    counts: Option<Cache<String, Arc<Window>>>,
}

struct Window {
    opened: Instant,
    count: AtomicU32,
}

impl Attempts {
    /// At most `limit` counted attempts per key per `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        let counts = (limit > 0).then(|| Cache::builder().max_capacity(KEYS).time_to_live(window).build());
        Self { limit, window, counts }
    }

    /// `Err(seconds)` until the key may try again, when it has used up its attempts.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        let Some(window) = self.counts.as_ref().and_then(|c| c.get(key)) else { return Ok(()) };
        if window.count.load(Ordering::Relaxed) < self.limit {
            return Ok(());
        }
        let left = self.window.saturating_sub(window.opened.elapsed());
        Err((left.as_secs() + u64::from(left.subsec_nanos() > 0)).max(1))
    }

    /// Counts one attempt of `key`.
    pub fn record(&self, key: &str) {
        if let Some(counts) = &self.counts {
            let window = counts
                .get_with(key.to_owned(), || Arc::new(Window { opened: Instant::now(), count: AtomicU32::new(0) }));
            window.count.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_refused_after_its_limit_until_the_window_ends() {
        let attempts = Attempts::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert_eq!(attempts.check("alice"), Ok(()));
            attempts.record("alice");
        }
        let retry = attempts.check("alice").unwrap_err();
        assert!((59..=60).contains(&retry), "{retry}");
        assert_eq!(attempts.check("bob"), Ok(()), "keys are counted apart");
    }

    #[test]
    fn a_zero_limit_counts_nothing() {
        let attempts = Attempts::new(0, Duration::from_secs(60));
        for _ in 0..100 {
            attempts.record("x");
        }
        assert_eq!(attempts.check("x"), Ok(()));
    }

    #[test]
    fn windows_end() {
        let attempts = Attempts::new(1, Duration::from_millis(50));
        attempts.record("k");
        assert!(attempts.check("k").is_err());
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(attempts.check("k"), Ok(()));
    }
}
