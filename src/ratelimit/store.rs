//! The keyed GCRA state behind [`super::Limiter`]: a governor [`StateStore`] that is
//! fair when full.
//!
//! governor's own `DashMapStateStore` inserts every key it is asked about, so the only
//! way to bound it was to send *every* decision to one overflow key once full — and one
//! client rotating keys then limited everybody. This store decides per key instead:
//!
//! - a key it already tracks is always measured on its own state, full or not;
//! - a new key gets its own state while fewer than `max_keys` are tracked (an exact
//!   bound: the count is reserved before the entry is made);
//! - a new key arriving when the store is full is measured on one shared overflow
//!   state, until the sweep ([`super::sweep`]) frees room.
//!
//! The GCRA arithmetic stays governor's (the closure passed to `measure_and_replace`);
//! this store only chooses which state the closure sees and swaps it atomically, as
//! governor's `InMemoryState` does. It can also give one cell back ([`KeyStore::refund`]),
//! which is how the login policies count failed attempts only.

use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::StateStore;

use super::Key;

/// One GCRA state: the theoretical arrival time in nanoseconds since the limiter
/// started; 0 means "never used" (governor's convention).
#[derive(Debug, Default)]
pub(super) struct Tat(AtomicU64);

impl Tat {
    /// governor's compare-and-swap loop: the closure decides, the swap only happens if
    /// nobody changed the state meanwhile.
    fn measure<T, E>(&self, f: impl Fn(Option<Nanos>) -> Result<(T, Nanos), E>) -> Result<T, E> {
        let mut prev = self.0.load(Ordering::Acquire);
        loop {
            let (result, next) = f(NonZeroU64::new(prev).map(|n| Nanos::from(n.get())))?;
            match self.0.compare_exchange_weak(
                prev,
                next.into(),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(result),
                Err(now) => prev = now,
            }
        }
    }

    /// Takes one emission interval back; 0 is "fresh", and nothing goes below it.
    fn refund(&self, interval: u64) {
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tat| {
                (tat != 0).then(|| tat.saturating_sub(interval))
            });
    }

    fn is_older_than(&self, nanos: u64) -> bool {
        self.0.load(Ordering::Relaxed) <= nanos
    }
}

/// Which state a decision was taken on (for refunds and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Own,
    Overflow,
}

/// Keyed states with a fair cap on their number.
#[derive(Debug)]
pub(super) struct KeyStore {
    map: DashMap<Key, Tat>,
    /// Entries in `map`, reserved before an insertion so the cap is exact.
    len: AtomicUsize,
    max_keys: usize,
    overflow: Tat,
    /// Decisions taken on the overflow state (a flood shows here).
    overflowed: AtomicU64,
}

impl KeyStore {
    pub(super) fn new(max_keys: usize) -> KeyStore {
        KeyStore {
            map: DashMap::new(),
            len: AtomicUsize::new(0),
            max_keys: max_keys.max(1),
            overflow: Tat::default(),
            overflowed: AtomicU64::new(0),
        }
    }

    pub(super) fn overflowed(&self) -> u64 {
        self.overflowed.load(Ordering::Relaxed)
    }

    /// Where a decision for `key` is taken, without creating anything.
    pub(super) fn slot_of(&self, key: &Key) -> Slot {
        if self.map.contains_key(key) || self.len.load(Ordering::Relaxed) < self.max_keys {
            Slot::Own
        } else {
            Slot::Overflow
        }
    }

    /// Gives one cell back to the state `key` is measured on now.
    pub(super) fn refund(&self, key: &Key, interval: u64) {
        if let Some(t) = self.map.get(key) {
            t.refund(interval);
        } else if self.len.load(Ordering::Relaxed) >= self.max_keys {
            self.overflow.refund(interval);
        }
    }

    fn reserve(&self) -> bool {
        self.len
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_keys).then_some(n + 1)
            })
            .is_ok()
    }
}

/// The store as governor owns it; the limiter keeps a second handle for refunds and
/// counters (governor lends no reference to its store).
#[derive(Debug)]
pub(super) struct Shared(pub(super) Arc<KeyStore>);

impl StateStore for Shared {
    type Key = Key;

    fn measure_and_replace<T, F, E>(&self, key: &Key, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        self.0.measure(key, f)
    }
}

impl ShrinkableKeyedStateStore<Key> for Shared {
    fn retain_recent(&self, drop_below: Nanos) {
        self.0.retain_recent(u64::from(drop_below));
    }

    fn shrink_to_fit(&self) {
        self.0.map.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.len() == 0
    }
}

impl KeyStore {
    pub(super) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    fn measure<T, E>(
        &self,
        key: &Key,
        f: impl Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    ) -> Result<T, E> {
        // Fast path, and the promise to existing clients: their own state, always.
        if let Some(t) = self.map.get(key) {
            return t.measure(f);
        }
        match self.map.entry(key.clone()) {
            Entry::Occupied(e) => e.get().measure(f),
            Entry::Vacant(v) => {
                if self.reserve() {
                    v.insert(Tat::default()).measure(f)
                } else {
                    drop(v);
                    self.overflowed.fetch_add(1, Ordering::Relaxed);
                    self.overflow.measure(f)
                }
            }
        }
    }

    fn retain_recent(&self, below: u64) {
        self.map.retain(|_, t| {
            let keep = !t.is_older_than(below);
            if !keep {
                self.len.fetch_sub(1, Ordering::AcqRel);
            }
            keep
        });
    }
}
