//! The verified-token cache: a hot client costs one map lookup instead of a signature
//! check.
//!
//! - One cache per worker (no lock contention), owned by the runtime
//!   (`crate::runtime`): a reload keeps the caches only when token verification
//!   (`[tokens]` keys and their material, claim rules, and every `[[issuers]]` entry)
//!   is unchanged, so a cached principal never outlives the key that verified it and
//!   a key removed from the configuration stops working at once.
//! - The key is the whole token, compared in full (a hash alone could be collided to
//!   borrow someone else's cached identity); the map's hasher is the standard
//!   randomly-keyed SipHash, so keys cannot be crafted to collide in buckets either.
//!   Keys are bytes: the authentication layer looks up the raw `Bearer` header value
//!   before parsing it (`layer/auth.rs`), since a byte-identical token passed the
//!   parse when it was verified.
//! - An entry lives until the token's `exp` or `max_age` after it was verified,
//!   whichever comes first: revoking a token (or a key) takes effect within `max_age`.
//! - Only successes are cached, only for tokens already valid (`nbf` passed).
//! - At `capacity` entries, expired ones are dropped; if that frees nothing the map is
//!   cleared (bounded memory under a flood of distinct tokens; the next requests pay a
//!   signature check each).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::principal::Principal;

struct Entry {
    principal: Arc<Principal>,
    until: Instant,
}

/// A worker's cache of verified tokens.
pub struct TokenCache {
    max_age: Duration,
    capacity: usize,
    map: Mutex<HashMap<Box<[u8]>, Entry>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("max_age", &self.max_age)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    pub fn new(max_age: Duration, capacity: usize) -> TokenCache {
        TokenCache {
            max_age,
            capacity,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Box<[u8]>, Entry>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached principal for this exact token, if still fresh.
    pub fn get(&self, token: &(impl AsRef<[u8]> + ?Sized)) -> Option<Arc<Principal>> {
        if self.capacity == 0 {
            return None;
        }
        let token = token.as_ref();
        let now = Instant::now();
        let mut map = self.map();
        match map.get(token) {
            Some(e) if e.until > now => Some(e.principal.clone()),
            Some(_) => {
                map.remove(token);
                None
            }
            None => None,
        }
    }

    /// Remembers a verified token until `exp` (seconds since the epoch) or `max_age`.
    /// Only a well-formed bearer token is taken (what `bearer::extract` returns): the
    /// authentication layer finds entries by the header's raw bytes, before parsing,
    /// and relies on every key being one the parse would return as it is.
    pub fn insert(&self, token: &str, principal: Arc<Principal>, exp: u64) {
        if self.capacity == 0 || self.max_age.is_zero() || !super::bearer::is_b64token(token) {
            return;
        }
        let token = token.as_bytes();
        let now_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let left = Duration::from_secs(exp.saturating_sub(now_unix)).min(self.max_age);
        if left.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut map = self.map();
        if map.len() >= self.capacity {
            map.retain(|_, e| e.until > now);
            if map.len() >= self.capacity {
                map.clear();
            }
        }
        map.insert(
            token.into(),
            Entry {
                principal,
                until: now + left,
            },
        );
    }

    /// Number of cached tokens.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(sub: &str) -> Arc<Principal> {
        Arc::new(Principal {
            subject: sub.into(),
            scopes: vec![],
            roles: vec![],
            client_id: None,
            issuer: "i".into(),
            expires_at: 0,
            claims: Default::default(),
            expand_roles: true,
        })
    }

    fn far() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            + 3600
    }

    #[test]
    fn exact_token_only() {
        let c = TokenCache::new(Duration::from_secs(30), 10);
        c.insert("aaa.bbb.ccc", p("alice"), far());
        assert_eq!(
            c.get("aaa.bbb.ccc").map(|p| p.subject.clone()).as_deref(),
            Some("alice")
        );
        assert!(c.get("aaa.bbb.ccd").is_none());
        assert!(c.get("aaa.bbb.cc").is_none());
    }

    #[test]
    fn entries_expire_with_the_token_or_max_age() {
        let c = TokenCache::new(Duration::from_secs(30), 10);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        c.insert("expired", p("a"), now.saturating_sub(1));
        assert!(
            c.get("expired").is_none(),
            "an already expired token is not cached"
        );
        let c = TokenCache::new(Duration::from_millis(1), 10);
        c.insert("t", p("a"), far());
        std::thread::sleep(Duration::from_millis(5));
        assert!(c.get("t").is_none(), "max_age bounds an entry");
        assert!(c.is_empty());
    }

    #[test]
    fn memory_is_bounded() {
        let c = TokenCache::new(Duration::from_secs(30), 100);
        for i in 0..10_000 {
            c.insert(&format!("token-{i}"), p("a"), far());
            assert!(c.len() <= 100);
        }
        let off = TokenCache::new(Duration::from_secs(30), 0);
        off.insert("t", p("a"), far());
        assert!(off.get("t").is_none(), "capacity 0 turns the cache off");
    }

    #[test]
    fn only_well_formed_tokens_are_kept() {
        let c = TokenCache::new(Duration::from_secs(60), 10);
        for bad in ["a b", " a", "a,b", "", "==", "caf\u{e9}"] {
            c.insert(bad, p("mallory"), far());
            assert!(c.get(bad).is_none(), "{bad:?} kept");
        }
        assert!(c.is_empty());
        c.insert("a.b-c_d~e+f/g==", p("alice"), far());
        assert!(c.get("a.b-c_d~e+f/g==").is_some());
    }
}
