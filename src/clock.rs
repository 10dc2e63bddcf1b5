//! Time source, injectable so quota day boundaries are tested without waiting.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

/// Where "now" comes from.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// Offset added to the system time, in seconds; tests move it forward.
    offset_secs: Arc<AtomicI64>,
    /// A time that does not run (tests): "now" is it plus the offset.
    frozen: Option<DateTime<Utc>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that reads `start` now and runs on from there (tests pin the time of day, so a
    /// run near midnight does not cross into another quota day).
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        let clock = Self::default();
        clock.advance((start - Utc::now()).num_seconds());
        clock
    }

    /// A clock that stands at `at` until it is moved with [`Clock::advance`] (tests that want
    /// exact answers, such as the seconds to midnight).
    pub fn frozen_at(at: DateTime<Utc>) -> Self {
        Self { frozen: Some(at), ..Self::default() }
    }

    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        let now = self.frozen.unwrap_or_else(Utc::now);
        // Most clocks are never moved, and chrono's addition was a quarter of reading the time.
        match self.offset_secs.load(Ordering::Relaxed) {
            0 => now,
            offset => now + TimeDelta::seconds(offset),
        }
    }

    /// Today's UTC date.
    pub fn today(&self) -> NaiveDate {
        self.now().date_naive()
    }

    /// Moves this clock (and every clone of it) forward by `secs`.
    pub fn advance(&self, secs: i64) {
        self.offset_secs.fetch_add(secs, Ordering::Relaxed);
    }

    /// Seconds since the Unix epoch.
    pub fn unix(&self) -> i64 {
        self.now().timestamp()
    }
}

/// The next UTC midnight after `now`.
pub fn next_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    let tomorrow = now.date_naive().succ_opt().unwrap_or(now.date_naive());
    tomorrow.and_hms_opt(0, 0, 0).map_or(now, |t| t.and_utc())
}

/// An RFC 3339 UTC timestamp with microseconds, as used in every API response.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_midnight_is_the_start_of_tomorrow() {
        let now = DateTime::parse_from_rfc3339("2026-03-01T23:59:30Z").unwrap().with_timezone(&Utc);
        assert_eq!(rfc3339(next_midnight(now)), "2026-03-02T00:00:00.000000Z");
    }

    #[test]
    fn advancing_a_clone_moves_the_original() {
        let clock = Clock::system();
        let before = clock.today();
        clock.clone().advance(86_400);
        assert_eq!(clock.today(), before.succ_opt().unwrap());
    }
}
