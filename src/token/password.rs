//! Password hashing: argon2id for every new hash, bcrypt accepted for imported users.
//!
//! New hashes are argon2id PHC strings with the configured parameters (default: RFC
//! 9106 §4's second recommended option for memory-constrained machines, t=3, p=4,
//! m=64 MiB). A stored bcrypt hash (`$2a$`, `$2b$`, `$2y$`, as passlib writes them)
//! still verifies, and so does an argon2id hash made with other parameters; both
//! report [`Verdict::ValidNeedsRehash`] so that the caller can store a fresh hash.
//!
//! Verification is CPU-bound for tens of milliseconds: callers run it off the async
//! threads. [`Hasher::verify_unknown_user`] spends the same work on a dummy hash, so an
//! unknown username costs what a wrong password costs.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use ring::rand::SecureRandom as _;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over the memory (argon2 `t`).
    pub iterations: u32,
    /// Lanes (argon2 `p`).
    pub parallelism: u32,
}

impl Default for Argon2Params {
    /// RFC 9106 §4, second recommended option.
    fn default() -> Self {
        Argon2Params {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 4,
        }
    }
}

impl Argon2Params {
    /// Checks the parameters; the error is a sentence for the configuration report.
    pub(crate) fn validate(&self) -> Result<(), String> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map(|_| ())
            .map_err(|e| format!("not usable argon2 parameters: {e}"))?;
        if self.memory_kib < 8 * 1024 {
            return Err("less than 8MiB of memory makes argon2id too cheap to guess".into());
        }
        Ok(())
    }
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Wrong password (or not a hash this hasher reads).
    Invalid,
    /// Right password, and the hash is current.
    Valid,
    /// Valid, but the hash is bcrypt or uses other parameters: store a new one.
    ValidNeedsRehash,
}

/// Hashes and verifies passwords with fixed parameters.
#[derive(Debug, Clone)]
pub struct Hasher {
    params: Argon2Params,
    /// A hash of a random password with the current parameters, for unknown users
    /// (made on first use, shared by every clone: a clone that made its own would
    /// pay for a hash and a verification, and tell unknown users apart by time).
    dummy: std::sync::Arc<std::sync::OnceLock<String>>,
    /// Work done, shared by every clone: hashes made and verifications run. The
    /// "unknown users cost what wrong passwords cost" promise is tested on these
    /// counts, not on a stopwatch.
    work: std::sync::Arc<Work>,
}

#[derive(Debug, Default)]
struct Work {
    hashes: std::sync::atomic::AtomicU64,
    verifications: std::sync::atomic::AtomicU64,
}

/// Why a hash could not be made.
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

impl Hasher {
    /// A hasher that makes argon2id hashes with `params`.
    pub fn new(params: Argon2Params) -> Hasher {
        Hasher {
            params,
            dummy: std::sync::Arc::new(std::sync::OnceLock::new()),
            work: std::sync::Arc::default(),
        }
    }

    /// Hashes made and verifications run so far, by this hasher and its clones.
    pub fn work_done(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.work.hashes.load(Relaxed),
            self.work.verifications.load(Relaxed),
        )
    }

    /// The parameters new hashes are made with.
    pub fn params(&self) -> Argon2Params {
        self.params
    }

    fn argon2(&self) -> Result<Argon2<'static>, HashError> {
        let p = self.params;
        let params = Params::new(p.memory_kib, p.iterations, p.parallelism, None)
            .map_err(|e| HashError(e.to_string()))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// A new argon2id PHC string with a random 16-byte salt.
    pub fn hash(&self, password: &str) -> Result<String, HashError> {
        let mut salt = [0u8; 16];
        ring::rand::SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| HashError("no randomness".into()))?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| HashError(e.to_string()))?;
        self.work
            .hashes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.argon2()?
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| HashError(e.to_string()))
    }

    /// Checks `password` against a stored argon2 or bcrypt hash. A hash in any other
    /// format never verifies.
    pub fn verify(&self, password: &str, stored: &str) -> Verdict {
        self.work
            .verifications
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if is_bcrypt(stored) {
            return match bcrypt::verify(password, stored) {
                Ok(true) => Verdict::ValidNeedsRehash,
                _ => Verdict::Invalid,
            };
        }
        let Ok(parsed) = PasswordHash::new(stored) else {
            return Verdict::Invalid;
        };
        if !parsed.algorithm.as_str().starts_with("argon2") {
            return Verdict::Invalid;
        }
        // The parameters come from the stored hash itself.
        if Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_err()
        {
            return Verdict::Invalid;
        }
        let current = parsed.algorithm.as_str() == "argon2id"
            && Params::try_from(&parsed).is_ok_and(|p| {
                p.m_cost() == self.params.memory_kib
                    && p.t_cost() == self.params.iterations
                    && p.p_cost() == self.params.parallelism
            });
        if current {
            Verdict::Valid
        } else {
            Verdict::ValidNeedsRehash
        }
    }

    /// The work of a verification whose answer is always "invalid": for unknown users.
    pub fn verify_unknown_user(&self, password: &str) -> Verdict {
        let dummy = self.dummy.get_or_init(|| {
            let mut random = [0u8; 24];
            let _ = ring::rand::SystemRandom::new().fill(&mut random);
            self.hash(&format!("{random:?}")).unwrap_or_default()
        });
        let _ = self.verify(password, dummy);
        Verdict::Invalid
    }
}

/// Whether a stored hash is a bcrypt hash.
pub(crate) fn is_bcrypt(stored: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|p| stored.starts_with(p))
}

/// Whether a string looks like a hash this module can verify (for config checks).
pub(crate) fn is_supported_hash(stored: &str) -> bool {
    if is_bcrypt(stored) {
        return stored.parse::<bcrypt::HashParts>().is_ok();
    }
    PasswordHash::new(stored).is_ok_and(|h| h.algorithm.as_str().starts_with("argon2"))
}

#[cfg(test)]
mod tests;
