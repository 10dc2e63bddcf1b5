//! Refusals logged at the rate a person can read them. Under overload a replica refuses
//! thousands of requests a second; a line each would cost more than the refusal and bury the
//! log. So the access lines of 4xx and 503 answers are sampled (at most `per_sec` a second;
//! `/metrics` counts every one), and overload refusals are summed up in one `warn` line a
//! second per reason — how many the second before had, the transform queue's depth and its
//! oldest wait — instead of an error line each.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The sampler and the per-reason summaries.
#[derive(Debug)]
pub struct Refusals {
    per_sec: u32,
    lines: Window,
    /// Per reason: the second being counted and its count.
    reasons: Mutex<Vec<(&'static str, u64, u64)>>,
}

/// A count of events in the current second.
#[derive(Debug, Default)]
struct Window {
    second: AtomicU64,
    count: AtomicU32,
}

impl Window {
    /// Counts one event at `now`; true while the second's count is within `limit`.
    fn take(&self, now: u64, limit: u32) -> bool {
        let second = self.second.load(Ordering::Relaxed);
        if second != now && self.second.compare_exchange(second, now, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            self.count.store(0, Ordering::Release);
        }
        self.count.fetch_add(1, Ordering::AcqRel) < limit
    }
}

/// What [`Refusals::overloaded`] says once a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Refusals for this reason in the second before this one (0 when it had none).
    pub last_second: u64,
}

fn now_second() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Refusals {
    /// At most `per_sec` sampled access lines a second.
    pub fn new(per_sec: u32) -> Self {
        Self { per_sec, lines: Window::default(), reasons: Mutex::default() }
    }

    /// True when the access line of a refused request (4xx, 503) may be written now.
    pub fn line_allowed(&self) -> bool {
        self.lines.take(now_second(), self.per_sec)
    }

    /// Counts an overload refusal; the first one of each second writes the summary line.
    pub fn overloaded(&self, reason: &'static str, queue_depth: usize, oldest_wait: Option<Duration>) {
        if let Some(summary) = self.count(reason, now_second()) {
            tracing::warn!(
                reason,
                refused_last_second = summary.last_second,
                queue_depth,
                oldest_wait_ms = oldest_wait.map_or(0, |w| w.as_millis() as u64),
                "refusing transforms: overloaded"
            );
        }
    }

    /// Counts one refusal for `reason` at second `now`; `Some` when it is the first of that
    /// second, with the count of the second before.
    fn count(&self, reason: &'static str, now: u64) -> Option<Summary> {
        let mut reasons = self.reasons.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(entry) = reasons.iter_mut().find(|(r, _, _)| *r == reason) else {
            reasons.push((reason, now, 1));
            return Some(Summary { last_second: 0 });
        };
        if entry.1 == now {
            entry.2 += 1;
            return None;
        }
        let last_second = if entry.1 + 1 == now { entry.2 } else { 0 };
        *entry = (reason, now, 1);
        Some(Summary { last_second })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_summary_a_second_per_reason_with_the_count_of_the_second_before() {
        let r = Refusals::new(10);
        assert_eq!(r.count("busy", 100), Some(Summary { last_second: 0 }));
        for _ in 0..999 {
            assert_eq!(r.count("busy", 100), None);
        }
        assert_eq!(r.count("slow", 100), Some(Summary { last_second: 0 }), "each reason its own");
        assert_eq!(r.count("busy", 101), Some(Summary { last_second: 1000 }));
        assert_eq!(r.count("busy", 105), Some(Summary { last_second: 0 }), "a quiet second between");
    }

    #[test]
    fn access_lines_are_sampled_per_second() {
        let w = Window::default();
        let allowed = (0..100).filter(|_| w.take(7, 10)).count();
        assert_eq!(allowed, 10);
        assert!(w.take(8, 10), "a new second starts again");
    }
}
