//! The idle-key sweep, off the request path.
//!
//! Every in-memory limiter registers itself here when it is made; one background
//! thread ("portcullis-rl-sweep", started on first use) wakes once a second and
//! sweeps each limiter whose interval (its rate's period, between 1 s and 60 s) has
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
    REGISTRY.get_or_init(|| {
        let spawned = std::thread::Builder::new()
            .name("portcullis-rl-sweep".into())
            .spawn(|| loop {
                std::thread::sleep(Duration::from_secs(1));
                pass(Instant::now());
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start the rate-limit sweeper; idle keys stay until the limit of keys is reached");
        }
        Mutex::new(Vec::new())
    })
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
