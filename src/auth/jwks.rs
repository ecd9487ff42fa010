//! External issuers (`[[issuers]]`): tokens signed by an IdP (Keycloak, Auth0, an
//! OAuth proxy…), verified with the keys it publishes as a JWKS.
//!
//! The JWKS client is built to survive a misbehaving IdP and a hostile client:
//! - keys are fetched at start (`/readyz` answers 503 until every issuer has keys),
//!   then refreshed in the background at the `Cache-Control: max-age` the IdP gives,
//!   clamped to `[min_refresh, max_refresh]`;
//! - while the IdP is down the last keys keep serving; retries back off exponentially
//!   from one second up to `max_refresh`;
//! - one task per issuer does every fetch, so there is never more than one fetch at a
//!   time;
//! - a token with an unknown `kid` (key rotation) asks that task for a refetch and waits
//!   for it briefly, but at most once per `unknown_kid_cooldown`: forged `kid`s cannot
//!   make Portcullis hammer the IdP;
//! - the issuer is chosen by the token's `iss` among the configured ones, never by
//!   trying keys; each issuer's keys verify only the algorithms configured for it.
//!
//! Tokens are then held to exactly the rules Portcullis' own tokens meet: the same
//! header allow-list (`super::jwt::jws`) and the same claims check
//! (`super::jwt::claims::check`, with this issuer's leeway, lifetime bound and claim
//! mapping) — `nbf`, future `iat`, `max_lifetime`, NumericDate and claim types
//! included.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};
use tokio::sync::{watch, Notify};

use super::jwt::claims::{self, ClaimRules};
use super::jwt::jws::Jws;
use super::jwt::TokenError;
use super::principal::Principal;

/// Where an issuer's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    Url(String),
    /// `<issuer>/.well-known/openid-configuration` → `jwks_uri`.
    Discovery,
}

pub use super::principal::ClaimPath;

/// One `[[issuers]]` entry, typed: plain data, compared on reload (an unchanged entry
/// keeps its client, keys and refresher).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerConfig {
    pub issuer: String,
    pub source: JwksSource,
    pub algorithms: Vec<Algorithm>,
    /// The claim rules (issuer, audiences, leeway, lifetime bound, claim mapping).
    pub rules: ClaimRules,
    pub min_refresh: Duration,
    pub max_refresh: Duration,
    pub unknown_kid_cooldown: Duration,
}

type KeySet = HashMap<String, (Algorithm, Arc<DecodingKey>)>;

/// The keys of one issuer and the task that keeps them fresh.
pub struct JwksClient {
    pub config: IssuerConfig,
    keys: ArcSwap<KeySet>,
    /// Bumped after every fetch attempt, so waiters can tell it happened.
    version: watch::Sender<u64>,
    refetch: Arc<Notify>,
    last_refetch_request: Mutex<Option<Instant>>,
    fetches: AtomicU64,
    ready: AtomicBool,
    http: reqwest::Client,
}

impl std::fmt::Debug for JwksClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksClient")
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

/// JWK → (algorithm, key), when the algorithm is one the issuer allows.
fn decode_jwk(
    jwk: &jsonwebtoken::jwk::Jwk,
    allowed: &[Algorithm],
) -> Option<(Algorithm, DecodingKey)> {
    let alg = match (&jwk.common.key_algorithm, &jwk.algorithm) {
        (Some(a), _) => match a {
            jsonwebtoken::jwk::KeyAlgorithm::RS256 => Algorithm::RS256,
            jsonwebtoken::jwk::KeyAlgorithm::ES256 => Algorithm::ES256,
            jsonwebtoken::jwk::KeyAlgorithm::EdDSA => Algorithm::EdDSA,
            _ => return None,
        },
        (None, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
        (None, AlgorithmParameters::EllipticCurve(_)) => Algorithm::ES256,
        (None, AlgorithmParameters::OctetKeyPair(_)) => Algorithm::EdDSA,
        // Symmetric keys are never accepted from a JWKS.
        (None, AlgorithmParameters::OctetKey(_)) => return None,
    };
    if !allowed.contains(&alg) {
        return None;
    }
    DecodingKey::from_jwk(jwk).ok().map(|k| (alg, k))
}

/// `max-age` from a `Cache-Control` header.
fn max_age(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = h.get(reqwest::header::CACHE_CONTROL)?.to_str().ok()?;
    v.split(',')
        .filter_map(|d| d.trim().strip_prefix("max-age="))
        .find_map(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
}

impl JwksClient {
    pub fn new(config: IssuerConfig) -> Arc<JwksClient> {
        let http = super::http_client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(3))
            .build()
            .unwrap_or_default();
        Arc::new(JwksClient {
            config,
            keys: ArcSwap::from_pointee(HashMap::new()),
            version: watch::channel(0).0,
            refetch: Arc::new(Notify::new()),
            last_refetch_request: Mutex::new(None),
            fetches: AtomicU64::new(0),
            ready: AtomicBool::new(false),
            http,
        })
    }

    /// Takes over the keys of the client this one replaces, when both fetch the same
    /// key set (same issuer, source and algorithms; only rules or refresh timings
    /// changed): a reload then never serves without keys, nor flips readiness.
    pub fn inherit_keys(&self, old: &JwksClient) {
        let (a, b) = (&self.config, &old.config);
        if a.issuer == b.issuer && a.source == b.source && a.algorithms == b.algorithms {
            self.keys.store(old.keys.load_full());
            self.ready.store(old.is_ready(), Ordering::Relaxed);
        }
    }

    /// Whether keys were fetched at least once.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Number of JWKS fetches attempted (for tests and metrics).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    async fn jwks_url(&self) -> Result<String, String> {
        match &self.config.source {
            JwksSource::Url(u) => Ok(u.clone()),
            JwksSource::Discovery => {
                let base = self.config.issuer.trim_end_matches('/');
                let url = format!("{base}/.well-known/openid-configuration");
                let doc: Value = self
                    .http
                    .get(&url)
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .map_err(|e| format!("discovery {url}: {e}"))?
                    .json()
                    .await
                    .map_err(|e| format!("discovery {url}: {e}"))?;
                doc.get("jwks_uri")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| format!("discovery {url}: no jwks_uri"))
            }
        }
    }

    /// Fetches the key set once; returns the IdP's max-age, if it gave one. Counted in
    /// `portcullis_jwks_fetches_total` (with the server's metrics).
    async fn fetch(&self) -> Result<Option<Duration>, String> {
        let result = self.fetch_once().await;
        #[cfg(feature = "server")]
        {
            use crate::metrics::{metrics, unix_now, IssuerLabel, IssuerResult};
            let issuer = self.config.issuer.clone();
            let ok = result.is_ok();
            let labels = IssuerResult {
                issuer: issuer.clone(),
                result: if ok { "success" } else { "failure" },
            };
            metrics().jwks_fetches.get_or_create(&labels).inc();
            if ok {
                metrics()
                    .jwks_last_success
                    .get_or_create(&IssuerLabel { issuer })
                    .set(unix_now());
            }
        }
        result
    }

    async fn fetch_once(&self) -> Result<Option<Duration>, String> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let url = self.jwks_url().await?;
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("{url}: {e}"))?;
        let age = max_age(resp.headers());
        let set: JwkSet = resp
            .json()
            .await
            .map_err(|e| format!("{url}: not a JWKS: {e}"))?;
        let mut keys = KeySet::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            if let Some((alg, key)) = decode_jwk(jwk, &self.config.algorithms) {
                keys.insert(kid, (alg, Arc::new(key)));
            }
        }
        if keys.is_empty() {
            return Err(format!(
                "{url}: no usable key (with a kid and an allowed algorithm)"
            ));
        }
        self.keys.store(Arc::new(keys));
        self.ready.store(true, Ordering::Relaxed);
        Ok(age)
    }

    /// The refresh loop, on `rt` (the background runtime); ends when the client is
    /// dropped (a reload that changes or removes the issuer).
    pub fn spawn_refresher(self: &Arc<Self>, rt: &tokio::runtime::Handle) {
        let weak: Weak<JwksClient> = Arc::downgrade(self);
        rt.spawn(async move {
            let mut backoff = Duration::from_secs(1);
            loop {
                let Some(me) = weak.upgrade() else { return };
                let wait = match me.fetch().await {
                    Ok(age) => {
                        backoff = Duration::from_secs(1);
                        age.unwrap_or(me.config.max_refresh)
                            .clamp(me.config.min_refresh, me.config.max_refresh)
                    }
                    Err(e) => {
                        tracing::warn!(issuer = %me.config.issuer, error = %e, retry_in = ?backoff, "JWKS fetch failed; keeping the last keys");
                        let b = backoff;
                        backoff = (backoff * 2).min(me.config.max_refresh);
                        b
                    }
                };
                me.version.send_modify(|v| *v += 1);
                // Wait without keeping the client alive: a reload drops it.
                let refetch = me.refetch.clone();
                drop(me);
                let notified = refetch.notified();
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = notified => {}
                }
            }
        });
    }

    fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Option<(Algorithm, Arc<DecodingKey>)> {
        let keys = self.keys.load();
        match kid {
            Some(k) => keys.get(k).cloned(),
            None => {
                let mut same = keys.values().filter(|(a, _)| *a == alg);
                match (same.next(), same.next()) {
                    (Some(k), None) => Some(k.clone()),
                    _ => None,
                }
            }
        }
    }

    /// The key for a token; an unknown `kid` triggers at most one refetch per cooldown.
    async fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Option<(Algorithm, Arc<DecodingKey>)> {
        if let Some(k) = self.lookup(kid, alg) {
            return Some(k);
        }
        let mut rx = self.version.subscribe();
        if *rx.borrow_and_update() == 0 {
            // The first fetch has not finished: wait for it rather than spend the
            // unknown-kid refetch (a key rotated in the next cooldown would be refused).
            let _ = tokio::time::timeout(Duration::from_secs(3), rx.changed()).await;
            return self.lookup(kid, alg);
        }
        let allowed = {
            let mut last = self
                .last_refetch_request
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let ok = last.is_none_or(|t| t.elapsed() >= self.config.unknown_kid_cooldown);
            if ok {
                *last = Some(Instant::now());
            }
            ok
        };
        if !allowed {
            return None;
        }
        self.refetch.notify_one();
        let _ = tokio::time::timeout(Duration::from_secs(3), rx.changed()).await;
        self.lookup(kid, alg)
    }

    /// Verifies a token of this issuer.
    pub async fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        let jws = Jws::parse(token)?;
        let alg = jws
            .header
            .alg
            .filter(|a| self.config.algorithms.contains(a))
            .ok_or(TokenError::WrongAlgorithm)?;
        let (key_alg, key) = self
            .key_for(jws.header.kid.as_deref(), alg)
            .await
            .ok_or(TokenError::UnknownKey)?;
        if key_alg != alg {
            return Err(TokenError::WrongAlgorithm);
        }
        jws.verify_signature(&key, key_alg)?;
        claims::check(
            &self.config.rules,
            jws.claims()?,
            jws.header.at_jwt,
            claims::now_f64(),
        )
    }
}

/// Reads `iss` from a token's payload without verifying anything: only to choose which
/// issuer's rules and keys will verify it.
pub fn peek_issuer(token: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let v: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    v.get("iss")?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests;
