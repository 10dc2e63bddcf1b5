//! The atomic daily transform quota: one conditional UPDATE per charge, the day is the UTC
//! date, no counters in memory and no cron.

use chrono::{DateTime, NaiveDate, Utc};

use crate::clock::{next_midnight, Clock};
use crate::config::QuotaConfig;
use crate::db::{Db, DbError, User};
use crate::ids::UserId;

/// The owner's budget for today is spent.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum QuotaError {
    /// Every transform of today's budget is used.
    #[error("daily transform quota of {limit} is used up; it resets at the next UTC midnight")]
    Exceeded {
        /// Today's budget.
        limit: u32,
        /// Seconds until the next UTC midnight.
        retry_after: u64,
    },
}

/// A charge that may have to be given back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// Who paid.
    pub user: UserId,
    /// The UTC day charged.
    pub day: NaiveDate,
    /// Transforms used that day, this one included.
    pub used: u32,
}

/// Today's quota as shown by `GET /v1/me`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    /// Budget per UTC day.
    pub limit: u32,
    /// Used today.
    pub used: u32,
    /// Left today.
    pub remaining: u32,
    /// Next UTC midnight, RFC 3339.
    pub resets_at: String,
}

/// Charges and reports daily budgets.
#[derive(Clone)]
pub struct Quota {
    db: Db,
    clock: Clock,
    config: QuotaConfig,
}

impl Quota {
    /// Budgets from `config`, kept in `db`, days from `clock`.
    pub fn new(db: Db, clock: Clock, config: QuotaConfig) -> Self {
        Self { db, clock, config }
    }

    /// Takes one transform from `user`'s budget for today.
    ///
    /// # Errors
    /// `Ok(Err(QuotaError))` when the budget is spent; `Err(DbError)` when the database fails.
    pub async fn charge(&self, user: &UserId, plan: &str) -> Result<Result<Charge, QuotaError>, DbError> {
        let now = self.clock.now();
        let day = now.date_naive();
        let limit = self.config.limit_for(plan);
        Ok(match self.db.charge_quota(user, day, limit).await? {
            Some(used) => Ok(Charge { user: user.clone(), day, used }),
            None => Err(QuotaError::Exceeded { limit, retry_after: seconds_to_midnight(now) }),
        })
    }

    /// Gives a charge back (the transform failed).
    ///
    /// # Errors
    /// The database call fails.
    pub async fn refund(&self, charge: &Charge) -> Result<(), DbError> {
        self.db.refund_quota(&charge.user, charge.day).await
    }

    /// Today's quota of `user`.
    pub fn status(&self, user: &User) -> Status {
        let now = self.clock.now();
        let limit = self.config.limit_for(&user.plan);
        let used = user.used_on(now.date_naive());
        Status {
            limit,
            used,
            remaining: limit.saturating_sub(used),
            resets_at: crate::clock::rfc3339(next_midnight(now)),
        }
    }
}

/// Whole seconds from `now` to the next UTC midnight, at least 1.
pub fn seconds_to_midnight(now: DateTime<Utc>) -> u64 {
    let secs = ((next_midnight(now) - now).num_milliseconds() + 999).div_euclid(1000);
    u64::try_from(secs.max(1)).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_counts_to_midnight() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(seconds_to_midnight(t("2026-01-01T23:59:59Z")), 1);
        assert_eq!(seconds_to_midnight(t("2026-01-01T23:59:59.500Z")), 1);
        assert_eq!(seconds_to_midnight(t("2026-01-01T00:00:00Z")), 86_400);
        assert_eq!(seconds_to_midnight(t("2026-01-01T12:00:00Z")), 43_200);
    }
}
