//! Prometheus metrics kept in plain atomics: nothing on the request path takes a lock.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::cache::Tier;

/// Status codes counted individually; others fall into `other`.
const STATUSES: [u16; 20] =
    [200, 201, 204, 302, 304, 400, 401, 403, 404, 405, 408, 409, 413, 415, 422, 429, 500, 503, 507, 0];

/// Upper bounds (seconds) of the latency buckets.
const BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// A fixed-bucket histogram.
#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&b| secs <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        #[allow(clippy::cast_precision_loss)] // microsecond sums stay far below 2^52
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// Process-wide counters.
pub struct Metrics {
    routes: Vec<&'static str>,
    requests: Vec<[AtomicU64; STATUSES.len()]>,
    latency: Vec<Histogram>,
    cache: [AtomicU64; 3],
    transforms_ok: AtomicU64,
    transforms_failed: AtomicU64,
    transform_time: Histogram,
    quota_rejections: AtomicU64,
    quota_charges: AtomicU64,
    quota_refunds: AtomicU64,
    overloaded: AtomicU64,
    failures_remembered: AtomicU64,
    auto_format_fallbacks: AtomicU64,
    store_reads: AtomicU64,
    claims: [AtomicU64; 3],
    in_flight: AtomicU64,
    connections: AtomicU64,
}

/// Gauges read at render time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    /// Transforms waiting for a worker.
    pub queue_depth: usize,
    /// Transforms running.
    pub transforms_running: usize,
    /// Bytes in the memory cache.
    pub memory_cache_bytes: u64,
    /// Bytes of pixel memory reserved by decodes running or about to run.
    pub decode_memory_bytes: u64,
    /// Database connections open and in use.
    pub db: crate::db::PoolState,
}

impl Metrics {
    /// Counters for requests labelled by `routes` (see [`crate::http::router::labels`]).
    pub fn new(routes: Vec<&'static str>) -> Self {
        Self {
            requests: routes.iter().map(|_| Default::default()).collect(),
            latency: routes.iter().map(|_| Histogram::default()).collect(),
            routes,
            cache: Default::default(),
            transforms_ok: AtomicU64::default(),
            transforms_failed: AtomicU64::default(),
            transform_time: Histogram::default(),
            quota_rejections: AtomicU64::default(),
            quota_charges: AtomicU64::default(),
            quota_refunds: AtomicU64::default(),
            overloaded: AtomicU64::default(),
            failures_remembered: AtomicU64::default(),
            auto_format_fallbacks: AtomicU64::default(),
            store_reads: AtomicU64::default(),
            claims: Default::default(),
            in_flight: AtomicU64::default(),
            connections: AtomicU64::default(),
        }
    }

    /// Counts a connection as open until the returned guard is dropped.
    pub fn connection_opened(self: &Arc<Self>) -> OpenConnection {
        self.connections.fetch_add(1, Ordering::Relaxed);
        OpenConnection(Arc::clone(self))
    }

    /// Connections open now.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Counts a request as in flight until the returned guard is dropped.
    pub fn request_started(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }

    /// Requests being answered now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts one finished request of the route at `route` (an index into the labels).
    pub fn request(&self, route: usize, status: u16, elapsed: Duration) {
        let i = STATUSES.iter().position(|&s| s == status).unwrap_or(STATUSES.len() - 1);
        if let Some(row) = self.requests.get(route) {
            row[i].fetch_add(1, Ordering::Relaxed);
        }
        if let Some(h) = self.latency.get(route) {
            h.observe(elapsed);
        }
    }

    /// Counts a variant served from `tier`.
    pub fn cache(&self, tier: Tier) {
        let i = match tier {
            Tier::Memory => 0,
            Tier::Store => 1,
            Tier::Miss => 2,
        };
        self.cache[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a transform that ran for `elapsed`.
    pub fn transform(&self, ok: bool, elapsed: Duration) {
        if ok {
            self.transforms_ok.fetch_add(1, Ordering::Relaxed);
        } else {
            self.transforms_failed.fetch_add(1, Ordering::Relaxed);
        }
        self.transform_time.observe(elapsed);
    }

    /// Counts a request refused by the quota.
    pub fn quota_rejected(&self) {
        self.quota_rejections.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a charge to a daily quota (a database write).
    pub fn quota_charged(&self) {
        self.quota_charges.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a charge given back (a database write).
    pub fn quota_refunded(&self) {
        self.quota_refunds.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a transform refused by a full queue or a timeout.
    pub fn overloaded(&self) {
        self.overloaded.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request answered with the remembered error of its variant's failed transform.
    pub fn failure_remembered(&self) {
        self.failures_remembered.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a `fmt_auto` answer given in a cheaper format because the slow one was not made
    /// within the budget.
    pub fn auto_format_fallback(&self) {
        self.auto_format_fallbacks.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a variant read whole from the object store (not a streamed one's repeated reads).
    pub fn store_read(&self) {
        self.store_reads.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a fleet-wide claim on a variant: won (this replica makes it), waited (another
    /// replica was making it), or taken over (its holder's lease ran out).
    pub fn claim(&self, outcome: ClaimOutcome) {
        self.claims[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self, gauges: Gauges) -> String {
        let mut out = String::with_capacity(16 * 1024);
        out.push_str("# HELP imgedge_http_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE imgedge_http_requests_total counter\n");
        for (route, row) in self.routes.iter().zip(&self.requests) {
            for (status, n) in STATUSES.iter().zip(row) {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    let status = if *status == 0 { "other".to_owned() } else { status.to_string() };
                    let _ = writeln!(out, "imgedge_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}");
                }
            }
        }
        out.push_str("# HELP imgedge_http_request_duration_seconds Time to response head by route.\n");
        out.push_str("# TYPE imgedge_http_request_duration_seconds histogram\n");
        for (route, h) in self.routes.iter().zip(&self.latency) {
            if h.count.load(Ordering::Relaxed) > 0 {
                h.render(&mut out, "imgedge_http_request_duration_seconds", &format!("route=\"{route}\""));
            }
        }
        out.push_str("# HELP imgedge_cache_requests_total Variants served by cache tier.\n");
        out.push_str("# TYPE imgedge_cache_requests_total counter\n");
        for (tier, n) in ["hit-memory", "hit-store", "miss"].iter().zip(&self.cache) {
            let _ = writeln!(out, "imgedge_cache_requests_total{{tier=\"{tier}\"}} {}", n.load(Ordering::Relaxed));
        }
        out.push_str("# HELP imgedge_transforms_total Transforms run, by outcome.\n");
        out.push_str("# TYPE imgedge_transforms_total counter\n");
        let _ =
            writeln!(out, "imgedge_transforms_total{{outcome=\"ok\"}} {}", self.transforms_ok.load(Ordering::Relaxed));
        let _ = writeln!(
            out,
            "imgedge_transforms_total{{outcome=\"error\"}} {}",
            self.transforms_failed.load(Ordering::Relaxed)
        );
        out.push_str("# HELP imgedge_transform_duration_seconds Time spent in the pixel pipeline.\n");
        out.push_str("# TYPE imgedge_transform_duration_seconds histogram\n");
        self.transform_time.render(&mut out, "imgedge_transform_duration_seconds", "");
        let counters = [
            (
                "imgedge_quota_rejections_total",
                "Requests refused because the daily quota was spent.",
                &self.quota_rejections,
            ),
            (
                "imgedge_quota_charges_total",
                "Transforms charged to a daily quota (one write each).",
                &self.quota_charges,
            ),
            ("imgedge_quota_refunds_total", "Charges given back after a failed transform.", &self.quota_refunds),
            ("imgedge_overloaded_total", "Transforms refused by a full queue or a timeout.", &self.overloaded),
            (
                "imgedge_failures_remembered_total",
                "Requests answered with the remembered error of a failed transform, without one.",
                &self.failures_remembered,
            ),
            (
                "imgedge_auto_format_fallbacks_total",
                "fmt_auto answers in a cheaper format while AVIF or JPEG XL was still being made.",
                &self.auto_format_fallbacks,
            ),
            ("imgedge_store_reads_total", "Variants read from the object store.", &self.store_reads),
            ("imgedge_claims_won_total", "Variants this replica claimed fleet-wide and made.", &self.claims[0]),
            (
                "imgedge_claims_waited_total",
                "Misses that waited for another replica to make the variant.",
                &self.claims[1],
            ),
            (
                "imgedge_claims_taken_over_total",
                "Claims taken over because their holder's lease ran out.",
                &self.claims[2],
            ),
        ];
        for (name, help, value) in counters {
            let _ =
                writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", value.load(Ordering::Relaxed));
        }
        let gauges = [
            ("imgedge_http_requests_in_flight", "Requests being answered now.", self.in_flight.load(Ordering::Relaxed)),
            ("imgedge_http_connections", "Connections being served.", self.connections.load(Ordering::Relaxed)),
            ("imgedge_transform_queue_depth", "Transforms waiting for a worker.", gauges.queue_depth as u64),
            ("imgedge_transforms_running", "Transforms running now.", gauges.transforms_running as u64),
            ("imgedge_memory_cache_bytes", "Bytes held by the in-memory variant cache.", gauges.memory_cache_bytes),
            ("imgedge_decode_memory_bytes", "Pixel memory reserved by decodes.", gauges.decode_memory_bytes),
            ("imgedge_db_connections", "Database connections open.", u64::from(gauges.db.open)),
            (
                "imgedge_db_connections_in_use",
                "Database connections in use (SQLite: calls running or waiting for its one connection).",
                u64::from(gauges.db.in_use),
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        }
        out
    }
}

/// An open connection; counted down when dropped.
pub struct OpenConnection(Arc<Metrics>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What became of a fleet-wide claim on a variant (see [`Metrics::claim`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// Claimed: this replica makes the variant.
    Won = 0,
    /// Another replica held it; this one waited for the stored result.
    Waited = 1,
    /// The holder's lease had run out; this replica took the claim over.
    TakenOver = 2,
}

/// A request in flight; counted down when dropped.
pub struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::new(vec!["deliver_variant", "unmatched"]);
        m.request(0, 200, Duration::from_millis(3));
        m.request(0, 299, Duration::from_millis(3));
        m.cache(Tier::Memory);
        m.transform(true, Duration::from_millis(40));
        let db = crate::db::PoolState { open: 4, in_use: 1 };
        let text = m.render(Gauges { queue_depth: 3, db, ..Gauges::default() });
        assert!(text.contains("imgedge_http_requests_total{route=\"deliver_variant\",status=\"200\"} 1"), "{text}");
        assert!(text.contains("imgedge_http_requests_total{route=\"deliver_variant\",status=\"other\"} 1"));
        assert!(text.contains("imgedge_http_request_duration_seconds_bucket{route=\"deliver_variant\",le=\"0.005\"} 2"));
        assert!(text.contains("imgedge_cache_requests_total{tier=\"hit-memory\"} 1"));
        assert!(text.contains("imgedge_transforms_total{outcome=\"ok\"} 1"));
        assert!(text.contains("imgedge_transform_duration_seconds_count 1"));
        assert!(text.contains("imgedge_transform_queue_depth 3"));
        assert!(text.contains("imgedge_db_connections 4\n") && text.contains("imgedge_db_connections_in_use 1\n"));
    }
}
