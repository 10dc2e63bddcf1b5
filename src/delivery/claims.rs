//! Fleet-wide single flight: replicas that share PostgreSQL make each variant once.
//!
//! The in-process flight ([`super::flight`]) joins the requests of one replica; a claim joins
//! the replicas. Before a transform, a replica claims the variant in the database with a lease,
//! which it renews while it works and gives up when the variant is in the store (or making it
//! failed). A replica that finds the claim held waits for the result in the store and asks for
//! the claim again, which it wins once the holder let go — or, if the holder died, once its
//! lease ran out. The owner's charge is written on the claim, so a take-over never charges twice.

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use tokio::task::JoinHandle;

use crate::db::{Claim, Db, DbError};
use crate::metrics::{ClaimOutcome, Metrics};
use crate::transform::VariantKey;

/// Claims held in the shared database, for one replica.
#[derive(Clone)]
pub(super) struct Claims {
    db: Db,
    metrics: Arc<Metrics>,
    /// This replica, as the database records the holder.
    holder: Arc<str>,
    lease: Duration,
}

/// A won claim. Renewed in the background while held; released when dropped.
pub(super) struct Held {
    claims: Claims,
    key: String,
    renewing: JoinHandle<()>,
    /// The day a previous holder (whose lease ran out) charged the owner for this variant.
    pub charged_on: Option<NaiveDate>,
}

impl Claims {
    /// Claims over `db` with leases of `lease`; `None` when no other process shares the
    /// database (the in-process flight is then the whole story).
    pub fn new(db: Db, metrics: Arc<Metrics>, lease: Duration) -> Option<Self> {
        db.shared_by_replicas().then(|| {
            let holder = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()).into();
            Self { db, metrics, holder, lease }
        })
    }

    /// Claims `key`; `None` while another replica's lease on it runs.
    pub async fn claim(&self, key: &VariantKey) -> Result<Option<Held>, DbError> {
        let key = key.hex();
        let (taken_over, charged_on) = match self.db.claim_variant(&key, &self.holder, self.lease).await? {
            Claim::Won { taken_over, charged_on } => (taken_over, charged_on),
            Claim::Held => return Ok(None),
        };
        self.metrics.claim(if taken_over { ClaimOutcome::TakenOver } else { ClaimOutcome::Won });
        if taken_over {
            tracing::warn!(variant = %key, "took over a claim whose holder stopped renewing it");
        }
        let renewing = tokio::spawn(renew(self.clone(), key.clone()));
        Ok(Some(Held { claims: self.clone(), key, renewing, charged_on }))
    }
}

/// Renews the claim on `key` every third of the lease, for as long as it is held.
async fn renew(claims: Claims, key: String) {
    loop {
        tokio::time::sleep(claims.lease / 3).await;
        match claims.db.renew_claim(&key, &claims.holder, claims.lease).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(variant = %key, "lost a claim while making the variant (the lease ran out)");
                return;
            }
            // The next renewal may get through; the lease leaves time for two more.
            Err(e) => tracing::warn!(variant = %key, error = ?e, "could not renew a claim"),
        }
    }
}

impl Held {
    /// Records on the claim that the owner was charged on `day`.
    pub async fn charged(&self, day: NaiveDate) -> Result<(), DbError> {
        self.claims.db.claim_charged(&self.key, &self.claims.holder, day).await
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.renewing.abort();
        let (claims, key) = (self.claims.clone(), std::mem::take(&mut self.key));
        // Whoever waits sees the variant in the store first, then the claim free. Should the
        // release fail, the lease runs out instead.
        tokio::spawn(async move {
            if let Err(e) = claims.db.release_claim(&key, &claims.holder).await {
                tracing::warn!(variant = %key, error = ?e, "could not release a claim; its lease will run out");
            }
        });
    }
}
