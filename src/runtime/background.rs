//! The one background runtime ("portcullis-bg"): JWKS refreshers, Redis I/O, the
//! store's pool and its housekeeping (deny-list sync), the rate limiters' idle-key
//! sweep, password hashing (on its
//! blocking pool) and configuration reloads (parse and validate, off the request
//! threads).
//!
//! Workers only serve requests: before, a JWKS refresher or a Redis connection ran on
//! whichever worker touched it first, so one busy worker delayed every other worker's
//! key refresh or rate-limit decision, and the store and the sweep had threads of
//! their own.

use tokio::runtime::{Handle, Runtime};

/// Threads that run async background work (one is plenty: it is all I/O).
const ASYNC_THREADS: usize = 1;
/// Threads for blocking work: password hashing and reloads.
const BLOCKING_THREADS: usize = 8;

/// Owns the background runtime; shuts it down without blocking when dropped (the
/// gateway may be dropped inside another runtime).
pub struct Background {
    rt: Option<Runtime>,
    handle: Handle,
}

impl std::fmt::Debug for Background {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Background").finish_non_exhaustive()
    }
}

impl Background {
    pub fn start() -> std::io::Result<Background> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(ASYNC_THREADS)
            .max_blocking_threads(BLOCKING_THREADS)
            .thread_name("portcullis-bg")
            .enable_all()
            .build()?;
        let handle = rt.handle().clone();
        Ok(Background {
            rt: Some(rt),
            handle,
        })
    }

    /// Where background work is spawned.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
