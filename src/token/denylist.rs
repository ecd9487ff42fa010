//! Revoked access tokens, by `jti`, until they expire.
//!
//! Revocations are rare and checks are on every authenticated request, so the list is
//! an immutable map swapped atomically (copy on write): a check is one atomic load and,
//! only when the list is not empty, one hash lookup. The store holds the list for
//! every replica; each one reloads it every [`SYNC_EVERY`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use super::now_secs;

/// How often the list is reloaded from the store.
pub const SYNC_EVERY: Duration = Duration::from_secs(5);

/// `jti` → expiry (seconds since the epoch).
#[derive(Debug, Default)]
pub struct DenyList {
    map: ArcSwap<HashMap<String, i64>>,
}

impl DenyList {
    /// Whether a token with this `jti` has been revoked (and is not yet expired).
    pub fn contains(&self, jti: &str) -> bool {
        let map = self.map.load();
        !map.is_empty() && map.get(jti).is_some_and(|&exp| exp > now_secs())
    }

    /// Adds one entry (a revocation made here).
    pub fn insert(&self, jti: &str, expires_at: i64) {
        self.map.rcu(|m| {
            let mut m = HashMap::clone(m);
            m.insert(jti.to_string(), expires_at);
            m
        });
    }

    /// Replaces the list with the store's, keeping local entries the store has not
    /// returned yet only if they are still live (a revocation is never undone).
    pub fn replace(&self, from_store: Vec<(String, i64)>) {
        let now = now_secs();
        self.map.rcu(|old| {
            let mut m: HashMap<String, i64> = from_store.iter().cloned().collect();
            for (j, &exp) in old.iter() {
                if exp > now {
                    m.entry(j.clone()).or_insert(exp);
                }
            }
            Arc::new(m)
        });
    }

    pub fn len(&self) -> usize {
        self.map.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.load().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_until_expiry_and_never_undone_by_a_sync() {
        let d = DenyList::default();
        assert!(!d.contains("a"));
        d.insert("a", now_secs() + 60);
        d.insert("old", now_secs() - 1);
        assert!(d.contains("a"));
        assert!(!d.contains("old"), "an expired entry no longer matters");
        // A sync from a store that has not seen "a" yet keeps it; expired ones go.
        d.replace(vec![("b".into(), now_secs() + 60)]);
        assert!(d.contains("a") && d.contains("b"));
        assert_eq!(d.len(), 2);
    }
}
