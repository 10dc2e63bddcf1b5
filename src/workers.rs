//! A bounded pool of CPU workers: jobs (transforms, upload checks, password hashing — each in a
//! pool of its own) run on the blocking threads, at most `workers` at once, with a bounded
//! queue in front (full → 503). A caller may give up waiting ([`WorkerPool::run_within`]); the
//! job itself always runs to its end, holding its worker, so the pool never runs more than
//! `workers` jobs at once.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

/// Why a job did not produce a result.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum PoolError {
    /// Every worker is busy and the queue is full.
    #[error("worker queue is full")]
    QueueFull,
    /// The caller stopped waiting for the job at its deadline.
    #[error("job timed out")]
    TimedOut,
    /// The job panicked (a decoder bug on hostile input).
    #[error("job panicked")]
    Panicked,
}

/// Bounded pool of CPU workers.
#[derive(Debug, Clone)]
pub struct WorkerPool {
    permits: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    workers: usize,
    queue: usize,
}

impl WorkerPool {
    /// A pool running `workers` jobs at once with `queue` more waiting.
    pub fn new(workers: usize, queue: usize) -> Self {
        let workers = workers.max(1);
        Self { permits: Arc::new(Semaphore::new(workers)), waiting: Arc::default(), workers, queue }
    }

    /// Jobs waiting for a worker.
    pub fn queued(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Jobs running now.
    pub fn running(&self) -> usize {
        self.workers - self.permits.available_permits()
    }

    /// [`WorkerPool::run`], waiting at most `limit` for the result (queue time included).
    ///
    /// # Errors
    /// As [`WorkerPool::run`], and [`PoolError::TimedOut`] past `limit`.
    pub async fn run_within<T, F>(&self, limit: Duration, job: F) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        tokio::time::timeout(limit, self.run(job)).await.unwrap_or(Err(PoolError::TimedOut))
    }

    /// Runs `job` on a worker and returns its result.
    ///
    /// # Errors
    /// [`PoolError::QueueFull`] when every worker is busy and the queue is full,
    /// [`PoolError::Panicked`] when the job panics.
    pub async fn run<T, F>(&self, job: F) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let permit = match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue {
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                    return Err(PoolError::QueueFull);
                }
                let _waiting = Waiting(&self.waiting);
                Arc::clone(&self.permits).acquire_owned().await.map_err(|_| PoolError::QueueFull)?
            }
        };
        let span = tracing::Span::current();
        let handle = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let _entered = span.enter();
            std::panic::catch_unwind(AssertUnwindSafe(job))
        });
        match handle.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) | Err(_) => Err(PoolError::Panicked),
        }
    }
}

/// Counts a job as waiting until it gets a worker or gives up.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_and_returns_their_value() {
        let pool = WorkerPool::new(2, 4);
        assert_eq!(pool.run(|| 21 * 2).await, Ok(42));
    }

    #[tokio::test]
    async fn a_full_queue_refuses_new_jobs() {
        let pool = WorkerPool::new(1, 1);
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let busy = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(move || wait.recv().ok()).await }
        });
        while pool.running() == 0 {
            tokio::task::yield_now().await;
        }
        let queued = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(|| 1).await }
        });
        while pool.queued() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(pool.run(|| 2).await, Err(PoolError::QueueFull));
        release.send(()).unwrap();
        assert!(busy.await.unwrap().is_ok());
        assert_eq!(queued.await.unwrap(), Ok(1));
        assert_eq!(pool.queued(), 0);
    }

    #[tokio::test]
    async fn a_caller_stops_waiting_but_the_job_runs_to_its_end() {
        let pool = WorkerPool::new(1, 1);
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let result = pool
            .run_within(Duration::from_millis(50), move || {
                wait.recv().ok();
                done.send(()).ok();
            })
            .await;
        assert_eq!(result, Err(PoolError::TimedOut));
        assert_eq!(pool.running(), 1, "the job keeps its worker");
        release.send(()).unwrap();
        finished.recv_timeout(Duration::from_secs(5)).expect("the job finished");
    }

    #[tokio::test]
    async fn panics_are_contained() {
        let pool = WorkerPool::new(1, 1);
        let result: Result<(), _> = pool.run(|| panic!("decoder bug")).await;
        assert_eq!(result, Err(PoolError::Panicked));
        assert_eq!(pool.run(|| 7).await, Ok(7), "the worker is free again");
    }
}
