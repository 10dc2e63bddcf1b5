//! Single flight: concurrent requests for one missing variant share one piece of work.
//!
//! The work runs as its own task, so a requester that disconnects does not cancel it for the
//! others, and the task removes its entry when it ends.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::future::{BoxFuture, FutureExt, Shared};

/// The result of one piece of work, awaitable by many.
type Running<V> = Shared<BoxFuture<'static, Option<V>>>;

/// In-flight work by key.
pub struct Flights<K, V: Clone> {
    inner: Arc<Mutex<HashMap<K, Running<V>>>>,
}

impl<K, V: Clone> Clone for Flights<K, V> {
    fn clone(&self) -> Self {
        Self { inner: Arc::clone(&self.inner) }
    }
}

impl<K, V: Clone> Default for Flights<K, V> {
    fn default() -> Self {
        Self { inner: Arc::default() }
    }
}

impl<K, V> Flights<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Joins the work running for `key`, or starts `work()` for it. Returns the result and
    /// whether this caller started the work; `None` if the work task died (panicked).
    pub async fn run<F, W>(&self, key: K, work: W) -> (Option<V>, bool)
    where
        W: FnOnce() -> F,
        F: Future<Output = V> + Send + 'static,
    {
        let (shared, leader) = {
            let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(running) = map.get(&key) {
                (running.clone(), false)
            } else {
                let fut = work();
                let inner = Arc::clone(&self.inner);
                let task_key = key.clone();
                let task = tokio::spawn(async move {
                    let value = fut.await;
                    inner.lock().unwrap_or_else(PoisonError::into_inner).remove(&task_key);
                    value
                });
                let shared = async move { task.await.ok() }.boxed().shared();
                map.insert(key, shared.clone());
                (shared, true)
            }
        };
        (shared.await, leader)
    }

    /// True when work for `key` runs now (a caller would join it).
    pub fn contains(&self, key: &K) -> bool {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).contains_key(key)
    }

    /// Keys with work running now.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Callers awaiting work now, leaders included (each holds one clone of its work's
    /// future, beside the map's own).
    pub fn waiting(&self) -> usize {
        let map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        map.values().map(|running| running.strong_count().map_or(0, |n| n.saturating_sub(1))).sum()
    }

    /// True when nothing runs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn waiting_counts_every_caller_until_the_work_ends() {
        let flights: Flights<u32, u32> = Flights::default();
        let (open, gate) = tokio::sync::oneshot::channel::<()>();
        let gate = Arc::new(tokio::sync::Mutex::new(Some(gate)));
        let callers: Vec<_> = (0..3)
            .map(|_| {
                let (flights, gate) = (flights.clone(), Arc::clone(&gate));
                tokio::spawn(async move {
                    flights
                        .run(7, move || async move {
                            let _ = gate.lock().await.take().unwrap().await;
                            1
                        })
                        .await
                })
            })
            .collect();
        while flights.waiting() < 3 {
            tokio::task::yield_now().await;
        }
        assert_eq!((flights.waiting(), flights.len()), (3, 1));
        open.send(()).unwrap();
        for caller in callers {
            assert_eq!(caller.await.unwrap().0, Some(1));
        }
        assert_eq!(flights.waiting(), 0);
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_run() {
        let flights: Flights<u32, u32> = Flights::default();
        let runs = Arc::new(AtomicUsize::new(0));
        // On this one-threaded runtime the work cannot start before every call has joined: the
        // first poll of `join_all` registers all twenty.
        let calls = (0..20).map(|_| {
            let runs = Arc::clone(&runs);
            flights.run(7, move || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                42
            })
        });
        let results = futures_util::future::join_all(calls).await;
        let leaders = results.iter().filter(|r| r.1).count();
        assert!(results.iter().all(|r| r.0 == Some(42)));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(leaders, 1);
        assert!(flights.is_empty(), "finished work leaves the map");
    }

    #[tokio::test]
    async fn work_survives_a_cancelled_leader() {
        let flights: Flights<u32, u32> = Flights::default();
        let (started, has_started) = tokio::sync::oneshot::channel::<()>();
        let (finish, may_finish) = tokio::sync::oneshot::channel::<()>();
        let leader = tokio::spawn({
            let flights = flights.clone();
            async move {
                flights
                    .run(1, || async move {
                        started.send(()).unwrap();
                        may_finish.await.unwrap();
                        5
                    })
                    .await
            }
        });
        // The work is running: cancel the request that began it, then join the work and let
        // it finish (the join registers on its first poll, before the release is sent).
        has_started.await.unwrap();
        leader.abort();
        assert!(leader.await.unwrap_err().is_cancelled());
        let (joined, ()) = tokio::join!(flights.run(1, || async { 6 }), async { finish.send(()).unwrap() });
        assert_eq!(joined, (Some(5), false), "the cancelled leader's work answered");
    }
}
