//! The idle-key sweep, off the request path.
//!
//! Every in-memory limiter registers itself here when it is made; a janitor on the
//! gateway's background runtime (`crate::runtime`, [`spawn_janitor`]) wakes once a
//! second and sweeps each limiter whose interval (its rate's period, between 1 s and 60 s) has
//! passed: keys whose state is back to "fresh" are dropped, which frees room for new
//! keys once a flood has filled the store. A request never pays for a sweep (before,
//! every 1,024th decision walked the whole map), and limiters of a replaced
//! configuration are forgotten once dropped (only weak references are held).

use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

/// Something the sweeper can clean.
pub(super) trait Sweep: Send + Sync {
    fn sweep(&self);
}

struct Entry {
    limiter: Weak<dyn Sweep>,
    every: Duration,
    next: Instant,
}

fn registry() -> &'static Mutex<Vec<Entry>> {
    static REGISTRY: OnceLock<Mutex<Vec<Entry>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(Vec::new()))
}

/// Runs a pass every second on `rt` (the background runtime), each on its blocking
/// pool (a pass may walk large maps); ends with the runtime.
pub(crate) fn spawn_janitor(rt: &tokio::runtime::Handle) {
    rt.spawn(async {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tick.tick().await;
            if tokio::task::spawn_blocking(|| pass(Instant::now()))
                .await
                .is_err()
            {
                return;
            }
        }
    });
}

/// Registers a limiter to be swept every `every` (clamped to 1 s – 60 s).
pub(super) fn register(limiter: Weak<dyn Sweep>, every: Duration) {
    let every = every.clamp(Duration::from_secs(1), Duration::from_secs(60));
    let entry = Entry {
        limiter,
        every,
        next: Instant::now() + every,
    };
    if let Ok(mut r) = registry().lock() {
        r.push(entry);
    }
}

/// One pass at `now`: drops dead limiters, sweeps the due ones (outside the lock).
pub(super) fn pass(now: Instant) -> usize {
    let due: Vec<Arc<dyn Sweep>> = match registry().lock() {
        Ok(mut r) => {
            r.retain(|e| e.limiter.strong_count() > 0);
            r.iter_mut()
                .filter(|e| e.next <= now)
                .filter_map(|e| {
                    e.next = now + e.every;
                    e.limiter.upgrade()
                })
                .collect()
        }
        Err(_) => return 0,
    };
    for l in &due {
        l.sweep();
    }
    due.len()
}
