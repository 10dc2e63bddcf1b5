//! The process allocator, tuned for a server whose long-lived bytes (cached variants) are made
//! between short-lived multi-megabyte pixel buffers.
//!
//! glibc's malloc by default raises its mmap threshold each time a large mapped block is freed,
//! so after a few transforms every pixel buffer up to 32 MB lands in the heaps, and a heap only
//! shrinks from its top: anything long-lived left above the freed buffers pins them. Under the
//! mixed load of `benches/soak.sh` that was 0.7–1.3 GB resident for a 256 MB cache and ~300 MB
//! of live heap. What keeps it at the budget, each part measured (README, "Memory"):
//! - two arenas instead of up to 8 per core, so buffers freed on many threads are not held
//!   many times over;
//! - a fixed mmap threshold of 16 MiB: the largest buffers (argon2's 19 MiB, big decodes) are
//!   mappings returned on free, and the threshold no longer climbs;
//! - a 16 MiB trim threshold, so a heap keeps a working set at its top instead of returning and
//!   faulting it back on every request (an 8 MiB one cost ~10 % of PNG throughput);
//! - [`release_free_pages`] hands whole free pages anywhere in the heaps back every 2 s;
//! - the memory cache moves each entry out of the heap before keeping it (`cache::memory`).
//!
//! On the same soak jemalloc (LD_PRELOAD) held 441 MB and was ~20 % slower on cold PNG
//! transforms, mimalloc held 467 MB; so the default allocator stays, tuned.

use std::time::Duration;

/// How often free pages go back to the system. Each pass takes the arena locks for about a
/// millisecond; pages handed back are faulted in again when reused.
pub const TRIM_PERIOD: Duration = Duration::from_secs(2);

/// Blocks this large are mappings of their own, returned to the system when freed.
const MMAP_THRESHOLD: i32 = 16 << 20;

/// Free memory a heap keeps at its top before it shrinks.
const TRIM_THRESHOLD: i32 = 16 << 20;

/// Allocator settings; call first thing in `main`, before any other thread exists.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters, and no other thread exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

/// Starts a thread that hands free heap pages back to the system every `period`.
pub fn release_free_pages(period: Duration) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let trim = move || loop {
            std::thread::sleep(period);
            // SAFETY: malloc_trim is thread-safe; it only releases pages malloc holds free.
            unsafe { libc::malloc_trim(0) };
        };
        if let Err(e) = std::thread::Builder::new().name("malloc-trim".into()).spawn(trim) {
            tracing::warn!(error = %e, "cannot start the malloc-trim thread; free heap pages stay resident");
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = period;
}
