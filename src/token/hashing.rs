//! The password-hashing gate: a bound on argon2 work that a flood cannot turn into
//! an unbounded queue.
//!
//! One argon2id verification holds 64 MiB and a core for tens of milliseconds. Before
//! this gate, every `/token` attempt went straight to `spawn_blocking`: a flood of
//! distinct usernames queued unbounded, uncancellable work and real users' logins
//! waited behind it until they timed out. Now:
//!
//! - at most `max_concurrent` hashes run at once (`[users] max_concurrent_hashes`,
//!   default: the number of CPUs), and at most `max_queued` more requests wait for a
//!   turn (`max_queued_hashes`); beyond that [`HashGate::admit`] refuses at once and
//!   the caller answers `503` with `Retry-After`;
//! - a waiter whose request is dropped (client gone, timeout) frees its place: the
//!   wait is an ordinary `Semaphore::acquire` future;
//! - work is only handed to the blocking pool once it holds a running permit, and it
//!   checks on start that its request still wants it: work not yet started never runs
//!   for a request that is gone. Work already running finishes (argon2 cannot be
//!   interrupted) and keeps its permit until then, so the bound counts it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why hashing did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    /// Every running and waiting place is taken: answer 503 now.
    #[error("password hashing is at capacity")]
    Busy,
    /// The blocking task failed (panicked or its runtime is gone).
    #[error("password hashing task failed: {0}")]
    Failed(String),
}

/// Counters, for tests and logs.
#[derive(Debug, Default)]
pub struct GateStats {
    pub started: AtomicU64,
    /// Work handed to the pool whose request was gone before it started.
    pub skipped: AtomicU64,
    pub refused: AtomicU64,
}

/// The gate; shared by every request of the process (it lives in `TokenRuntime`).
#[derive(Debug)]
pub struct HashGate {
    /// Running + waiting places.
    admitted: Arc<Semaphore>,
    running: Arc<Semaphore>,
    pub stats: Arc<GateStats>,
}

/// A place in the gate: held from [`HashGate::admit`] until the hash is done.
#[derive(Debug)]
pub struct Admission {
    _place: OwnedSemaphorePermit,
}

/// Sets `wanted` to false when the request's future is dropped before the work ran.
struct Wanted(Arc<AtomicBool>);

impl Drop for Wanted {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl HashGate {
    pub fn new(max_concurrent: usize, max_queued: usize) -> HashGate {
        let running = max_concurrent.max(1);
        HashGate {
            admitted: Arc::new(Semaphore::new(running.saturating_add(max_queued))),
            running: Arc::new(Semaphore::new(running)),
            stats: Arc::default(),
        }
    }

    /// The default number of concurrent hashes: one per CPU.
    pub fn default_concurrency() -> usize {
        std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
    }

    /// Takes a place, or refuses at once when every place is taken.
    pub fn admit(&self) -> Result<Admission, GateError> {
        match self.admitted.clone().try_acquire_owned() {
            Ok(p) => Ok(Admission { _place: p }),
            Err(_) => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                Err(GateError::Busy)
            }
        }
    }

    /// Waits for a running permit (cancellable), then runs `work` on `pool`'s blocking
    /// threads. Dropping the returned future before the work starts means it never runs.
    pub async fn run<T: Send + 'static>(
        &self,
        admission: Admission,
        pool: &tokio::runtime::Handle,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, GateError> {
        let permit = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| GateError::Failed(e.to_string()))?;
        let wanted = Arc::new(AtomicBool::new(true));
        let guard = Wanted(wanted.clone());
        let stats = Arc::clone(&self.stats);
        let task = pool.spawn_blocking(move || {
            let _permit = permit;
            if !wanted.load(Ordering::Acquire) {
                stats.skipped.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            stats.started.fetch_add(1, Ordering::Relaxed);
            Some(work())
        });
        let out = task.await.map_err(|e| GateError::Failed(e.to_string()));
        drop(guard);
        drop(admission);
        out?.ok_or_else(|| GateError::Failed("the request was gone".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn a_full_gate_refuses_at_once_and_a_freed_place_admits_again() {
        let gate = HashGate::new(1, 1);
        let a = gate.admit().expect("running place");
        let b = gate.admit().expect("waiting place");
        assert_eq!(gate.admit().map(|_| ()), Err(GateError::Busy));
        assert_eq!(gate.stats.refused.load(Ordering::Relaxed), 1);
        drop(a);
        let _c = gate.admit().expect("a freed place is taken again");
        drop(b);
    }

    /// A waiter whose request is dropped frees its place, and its work never runs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_dropped_waiter_frees_its_place_and_its_work_never_runs() {
        let gate = Arc::new(HashGate::new(1, 1));
        let pool = tokio::runtime::Handle::current();
        // The one running place: work that waits until released.
        let (release, wait) = mpsc::channel::<()>();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let first = {
            let (gate, pool) = (gate.clone(), pool.clone());
            let admission = gate.admit().expect("place");
            tokio::spawn(async move {
                gate.run(admission, &pool, move || {
                    let _ = started_tx.send(());
                    let _ = wait.recv();
                })
                .await
            })
        };
        started_rx.await.expect("first hash started");
        // A second request waits for a turn (polled once: it is queued on the running
        // semaphore); the gate is now full.
        use futures_util::FutureExt as _;
        let ran = Arc::new(AtomicBool::new(false));
        let admission = gate.admit().expect("waiting place");
        let flag = ran.clone();
        let mut waiter =
            Box::pin(gate.run(admission, &pool, move || flag.store(true, Ordering::SeqCst)));
        assert!((&mut waiter).now_or_never().is_none(), "it waits");
        assert_eq!(gate.admit().map(|_| ()), Err(GateError::Busy));
        // Its client goes away.
        drop(waiter);
        // Its place is free at once, while the first hash still runs.
        let third = gate.admit().expect("the dropped waiter's place is free");
        drop(third);
        release.send(()).expect("release");
        first.await.expect("join").expect("first hash");
        assert!(!ran.load(Ordering::SeqCst), "dropped work must never run");
        assert_eq!(gate.stats.started.load(Ordering::Relaxed), 1);
    }

    /// Work already handed to the blocking pool, but not started when its request is
    /// dropped, is skipped.
    #[test]
    fn work_queued_in_the_pool_is_skipped_when_its_request_is_gone() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let pool = tokio::runtime::Handle::current();
            let gate = Arc::new(HashGate::new(4, 0));
            // Something else holds the pool's only thread.
            let (release, wait) = mpsc::channel::<()>();
            let (busy_tx, busy_rx) = tokio::sync::oneshot::channel();
            let other = pool.spawn_blocking(move || {
                let _ = busy_tx.send(());
                let _ = wait.recv();
            });
            busy_rx.await.expect("pool busy");
            let ran = Arc::new(AtomicBool::new(false));
            let req = {
                let (gate, pool, ran) = (gate.clone(), pool.clone(), ran.clone());
                let admission = gate.admit().expect("place");
                tokio::spawn(async move {
                    gate.run(admission, &pool, move || ran.store(true, Ordering::SeqCst))
                        .await
                })
            };
            // Wait until the request holds a running permit (its work is queued).
            while gate.running.available_permits() == 4 {
                tokio::task::yield_now().await;
            }
            req.abort();
            assert!(req.await.is_err_and(|e| e.is_cancelled()));
            release.send(()).expect("release");
            other.await.expect("other");
            // The pool runs queued work in order: once this is done, so is the skip.
            pool.spawn_blocking(|| ()).await.expect("drain");
            assert!(!ran.load(Ordering::SeqCst), "work of a gone request ran");
            assert_eq!(gate.stats.skipped.load(Ordering::Relaxed), 1);
            assert_eq!(gate.stats.started.load(Ordering::Relaxed), 0);
            // Its permit came back with it.
            assert_eq!(gate.running.available_permits(), 4);
        });
    }
}
