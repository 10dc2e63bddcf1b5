//! A bounded pool of CPU workers: jobs (transforms, upload checks, password hashing — each in a
//! pool of its own) run on the blocking threads, at most `workers` at once, with a bounded
//! queue in front (full → 503). A caller may give up waiting ([`WorkerPool::run_within`]); the
//! job itself always runs to its end, holding its worker, so the pool never runs more than
//! `workers` jobs at once.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

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
    /// When each waiting job began to wait, by arrival number (for the oldest wait).
    queued_at: Arc<Mutex<BTreeMap<u64, Instant>>>,
    arrivals: Arc<AtomicU64>,
    workers: usize,
    queue: usize,
    /// Longest a job waits for a worker before it is dropped unstarted.
    max_wait: Option<Duration>,
    memory: Option<MemoryBudget>,
}

impl WorkerPool {
    /// A pool running `workers` jobs at once with `queue` more waiting.
    pub fn new(workers: usize, queue: usize) -> Self {
        let workers = workers.max(1);
        Self {
            permits: Arc::new(Semaphore::new(workers)),
            waiting: Arc::default(),
            queued_at: Arc::default(),
            arrivals: Arc::default(),
            workers,
            queue,
            max_wait: None,
            memory: None,
        }
    }

    /// The pool with jobs that also reserve their memory from `budget` before they start
    /// ([`WorkerPool::run_holding`]).
    pub fn with_memory(mut self, budget: MemoryBudget) -> Self {
        self.memory = Some(budget);
        self
    }

    /// The pool with jobs that wait at most `max_wait` for a worker (and memory): a job still
    /// waiting then is dropped before it starts ([`PoolError::TimedOut`]), so that under
    /// overload the work done is for callers still there.
    pub fn with_max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = Some(max_wait);
        self
    }

    /// Jobs waiting for a worker (or for memory).
    pub fn queued(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// True when a job offered now would run or wait in the queue rather than be refused: a
    /// look that costs two atomic loads, for refusing work before anything is spent on it
    /// ([`WorkerPool::run_holding`] still decides).
    pub fn has_room(&self) -> bool {
        self.permits.available_permits() > 0 || self.waiting.load(Ordering::Relaxed) < self.queue
    }

    /// How long the job that has waited longest has been waiting; `None` when none waits.
    pub fn oldest_wait(&self) -> Option<Duration> {
        let queued = self.queued_at.lock().unwrap_or_else(PoisonError::into_inner);
        queued.values().next().map(Instant::elapsed)
    }

    /// Jobs running now.
    pub fn running(&self) -> usize {
        self.workers - self.permits.available_permits()
    }

    /// Bytes of memory reserved by jobs now.
    pub fn memory_in_use(&self) -> u64 {
        self.memory.as_ref().map_or(0, MemoryBudget::in_use)
    }

    /// [`WorkerPool::run_holding`], waiting at most `limit` for the result (queue time
    /// included).
    ///
    /// # Errors
    /// As [`WorkerPool::run`], and [`PoolError::TimedOut`] past `limit`.
    pub async fn run_within<T, F>(&self, limit: Duration, bytes: u64, job: F) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        tokio::time::timeout(limit, self.run_holding(bytes, job)).await.unwrap_or(Err(PoolError::TimedOut))
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
        self.run_holding(0, job).await
    }

    /// Runs `job` once a worker and `bytes` of the pool's memory budget are free; the job
    /// holds both until it ends. Waiting for either counts against the queue.
    ///
    /// # Errors
    /// As [`WorkerPool::run`].
    pub async fn run_holding<T, F>(&self, bytes: u64, job: F) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let memory = self.memory.as_ref().filter(|_| bytes > 0);
        let ready = memory.map_or(Some(None), |m| m.try_reserve(bytes).map(Some));
        let (reservation, permit) = match (ready, Arc::clone(&self.permits).try_acquire_owned()) {
            (Some(reservation), Ok(permit)) => (reservation, permit),
            (ready, _) => {
                if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue {
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                    return Err(PoolError::QueueFull);
                }
                let _waiting = Waiting::new(self);
                let wait = async {
                    let reservation = match (ready, memory) {
                        (Some(reservation), _) => reservation,
                        (None, Some(memory)) => Some(memory.reserve(bytes).await),
                        (None, None) => None,
                    };
                    let permit = Arc::clone(&self.permits).acquire_owned().await.map_err(|_| PoolError::QueueFull)?;
                    Ok((reservation, permit))
                };
                match self.max_wait {
                    Some(max_wait) => tokio::time::timeout(max_wait, wait).await.map_err(|_| PoolError::TimedOut)??,
                    None => wait.await?,
                }
            }
        };
        let span = tracing::Span::current();
        let handle = tokio::task::spawn_blocking(move || {
            let _held = (permit, reservation);
            let _entered = span.enter();
            std::panic::catch_unwind(AssertUnwindSafe(job))
        });
        match handle.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) | Err(_) => Err(PoolError::Panicked),
        }
    }
}

/// The pixel memory all decodes may hold at once. A job reserves what it will need before it
/// takes a worker and holds the reservation until it ends; when the budget is spent, the next
/// job waits (in its queue) for memory to be given back.
#[derive(Debug, Clone)]
pub struct MemoryBudget {
    kib: Arc<Semaphore>,
    total_kib: u32,
}

/// Memory reserved from a [`MemoryBudget`]; given back when dropped.
#[derive(Debug)]
pub struct Reservation(#[allow(dead_code)] tokio::sync::OwnedSemaphorePermit); // held for its drop

impl MemoryBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: u64) -> Self {
        let total_kib = u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX).min(Semaphore::MAX_PERMITS as u32);
        Self { kib: Arc::new(Semaphore::new(total_kib as usize)), total_kib }
    }

    /// Waits until `bytes` are free and reserves them (a request for more than the whole
    /// budget reserves all of it).
    pub async fn reserve(&self, bytes: u64) -> Reservation {
        // The semaphore is never closed.
        Reservation(
            Arc::clone(&self.kib).acquire_many_owned(self.kib_of(bytes)).await.expect("the budget is never closed"),
        )
    }

    /// Reserves `bytes` when they are free now.
    pub fn try_reserve(&self, bytes: u64) -> Option<Reservation> {
        Arc::clone(&self.kib).try_acquire_many_owned(self.kib_of(bytes)).ok().map(Reservation)
    }

    fn kib_of(&self, bytes: u64) -> u32 {
        u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX).clamp(1, self.total_kib.max(1))
    }

    /// Bytes reserved now.
    pub fn in_use(&self) -> u64 {
        u64::from(self.total_kib).saturating_sub(self.kib.available_permits() as u64) * 1024
    }
}

/// Counts a job as waiting (already added to `waiting`), and since when, until it gets a
/// worker or gives up.
struct Waiting<'a> {
    pool: &'a WorkerPool,
    arrival: u64,
}

impl<'a> Waiting<'a> {
    fn new(pool: &'a WorkerPool) -> Self {
        let arrival = pool.arrivals.fetch_add(1, Ordering::Relaxed);
        pool.queued_at.lock().unwrap_or_else(PoisonError::into_inner).insert(arrival, Instant::now());
        Self { pool, arrival }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.pool.queued_at.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.arrival);
        self.pool.waiting.fetch_sub(1, Ordering::AcqRel);
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
        assert!(!pool.has_room(), "the cheap look agrees");
        assert_eq!(pool.run(|| 2).await, Err(PoolError::QueueFull));
        let waited = pool.oldest_wait().expect("one job waits");
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(pool.oldest_wait().unwrap() >= waited + Duration::from_millis(20));
        release.send(()).unwrap();
        assert!(busy.await.unwrap().is_ok());
        assert_eq!(queued.await.unwrap(), Ok(1));
        assert_eq!((pool.queued(), pool.oldest_wait()), (0, None));
        assert!(pool.has_room());
    }

    #[tokio::test]
    async fn a_job_that_waited_too_long_is_dropped_before_it_starts() {
        let pool = WorkerPool::new(1, 4).with_max_wait(Duration::from_millis(50));
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let busy = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(move || wait.recv().ok()).await }
        });
        while pool.running() == 0 {
            tokio::task::yield_now().await;
        }
        let ran = Arc::new(AtomicUsize::new(0));
        let late = {
            let ran = Arc::clone(&ran);
            pool.run(move || ran.fetch_add(1, Ordering::SeqCst)).await
        };
        assert_eq!(late, Err(PoolError::TimedOut));
        release.send(()).unwrap();
        assert!(busy.await.unwrap().is_ok());
        assert_eq!(pool.run(|| 3).await, Ok(3), "the worker is free again");
        assert_eq!((ran.load(Ordering::SeqCst), pool.queued()), (0, 0), "the dropped job never ran");
    }

    #[tokio::test]
    async fn a_caller_stops_waiting_but_the_job_runs_to_its_end() {
        let pool = WorkerPool::new(1, 1);
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let result = pool
            .run_within(Duration::from_millis(50), 0, move || {
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
    async fn reservations_wait_for_memory_to_be_given_back() {
        let budget = MemoryBudget::new(10 << 20);
        let first = budget.reserve(6 << 20).await;
        assert_eq!(budget.in_use(), 6 << 20);
        let second = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reserve(6 << 20).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!second.is_finished(), "12 MB do not fit in 10");
        drop(first);
        let second = second.await.unwrap();
        assert_eq!(budget.in_use(), 6 << 20);
        drop(second);
        assert_eq!(budget.in_use(), 0);
        let _all = budget.reserve(1 << 40).await;
        assert_eq!(budget.in_use(), 10 << 20, "more than the budget takes all of it");
    }

    #[tokio::test]
    async fn panics_are_contained() {
        let pool = WorkerPool::new(1, 1);
        let result: Result<(), _> = pool.run(|| panic!("decoder bug")).await;
        assert_eq!(result, Err(PoolError::Panicked));
        assert_eq!(pool.run(|| 7).await, Ok(7), "the worker is free again");
    }
}
