//! The token service: Portcullis' own OAuth 2.0 endpoints.
//!
//! | path | what |
//! |---|---|
//! | `POST {prefix}/token` | authorization_code (RFC 6749 §4.1, PKCE), password (§4.3), refresh_token (§6), client_credentials (§4.4) grants |
//! | `POST {prefix}/revoke` | RFC 7009: refresh tokens (their whole family) and access tokens (by `jti`) |
//! | `POST {prefix}/register` | optional self-registration, default roles only |
//! | `GET /.well-known/jwks.json` | the public signing keys (never an HMAC secret) |
//! | `GET /.well-known/oauth-authorization-server`, `/.well-known/openid-configuration` | RFC 8414 metadata (and OIDC Discovery with the code flow) |
//! | `GET/POST {prefix}/authorize`, `/userinfo`, `/logout`, `/login/{provider}` | browser sign-in: code + PKCE, OpenID Connect, external providers ([`browser`]) |
//!
//! Access tokens are RFC 9068 JWTs (`typ: at+jwt`, `kid`) signed with
//! `[tokens] signing_key`. Users come from the store (`store/`: SQLite by default,
//! PostgreSQL for fleets) or from read-only `[[users.static]]` entries; passwords are
//! argon2id (`password.rs`). `[roles]` maps a user's roles to the scopes a token may
//! carry. `/token` and `/register` are limited by the `login` (client IP + username)
//! and `login_ip` (client IP) policies, which count failed attempts only, and every
//! password hash goes through one bounded gate (`hashing.rs`: `503` when full).
//!
//! The configuration half ([`TokenService`]) is part of [`crate::Config`] and is
//! replaced on reload; the stateful half ([`TokenRuntime`]: the store connection pool
//! and the revoked-`jti` deny-list) lives as long as the process.

pub mod admin;
pub mod browser;
pub mod clients_admin;
pub(crate) mod denylist;
pub mod endpoint;
pub(crate) mod grants;
pub(crate) mod hashing;
pub(crate) mod keys;
pub mod password;
pub mod store;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub use grants::valid_username;

use denylist::DenyList;
use hashing::HashGate;
use keys::SigningKey;
use password::Hasher;
use store::{Store, StoreError};

/// Seconds since the epoch.
pub(crate) fn now_secs() -> i64 {
    i64::try_from(crate::auth::jwt::now_secs()).unwrap_or(i64::MAX)
}

/// What a token request may ask for beyond what the user's roles allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopePolicy {
    /// Grant the allowed part; the response's `scope` shows it (default).
    Narrow,
    /// Refuse the request with `invalid_scope`.
    Reject,
}

/// An OAuth grant Portcullis implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// RFC 6749 §4.3.
    Password,
    /// RFC 6749 §6.
    RefreshToken,
    /// RFC 6749 §4.4.
    ClientCredentials,
    /// RFC 6749 §4.1, with PKCE (RFC 7636).
    AuthorizationCode,
}

impl Grant {
    pub(crate) fn parse(s: &str) -> Option<Grant> {
        match s {
            "password" => Some(Grant::Password),
            "refresh_token" => Some(Grant::RefreshToken),
            "client_credentials" => Some(Grant::ClientCredentials),
            "authorization_code" => Some(Grant::AuthorizationCode),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Grant::Password => "password",
            Grant::RefreshToken => "refresh_token",
            Grant::ClientCredentials => "client_credentials",
            Grant::AuthorizationCode => "authorization_code",
        }
    }
}

/// One `[[clients]]` entry.
#[derive(Debug, Clone)]
pub struct Client {
    /// Its unique id.
    pub client_id: String,
    /// SHA-256 of the secret (lower-case hex); `None` for a public client.
    pub secret_sha256: Option<String>,
    /// The grants it may use.
    pub grants: Vec<Grant>,
    /// Scopes this client may obtain; for the password grant an empty list means "no
    /// limit beyond the user's roles".
    pub scopes: Vec<String>,
    /// Where codes may be sent (`/authorize`), compared exactly but for the port of a
    /// loopback `http` URI (RFC 8252 §7.3).
    pub redirect_uris: Vec<String>,
    /// Where `/logout` may send the browser back (matched like `redirect_uris`).
    pub post_logout_redirect_uris: Vec<String>,
    /// Ask the user before issuing a first code (false: a first-party client).
    pub require_consent: bool,
    /// PKCE S256 on every authorization request (always for public clients).
    pub require_pkce: bool,
}

impl Client {
    /// A stored client, with only the grants the server serves.
    pub fn from_record(r: store::ClientRecord, served: &[Grant]) -> Client {
        Client {
            client_id: r.client_id,
            secret_sha256: r.secret_sha256,
            grants: r
                .grants
                .iter()
                .filter_map(|g| Grant::parse(g))
                .filter(|g| served.contains(g))
                .collect(),
            scopes: r.scopes,
            redirect_uris: r.redirect_uris,
            post_logout_redirect_uris: r.post_logout_redirect_uris,
            require_consent: r.require_consent,
            // Stored clients always use PKCE.
            require_pkce: true,
        }
    }
}

/// A user declared in the configuration (`[[users.static]]` or `[[users.seed]]`).
#[derive(Debug, Clone)]
pub struct ConfigUser {
    /// Unique; see [`valid_username`].
    pub username: String,
    /// argon2id (or bcrypt) PHC string, never a password.
    pub password_hash: String,
    /// Role names from `[roles]`.
    pub roles: Vec<String>,
}

/// `[registration]` when enabled.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Roles every registered user gets.
    pub default_roles: Vec<String>,
    /// Shortest password accepted, in characters.
    pub min_password_length: usize,
}

/// `[users] max_concurrent_hashes` and `max_queued_hashes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashLimits {
    /// Hashes computed at once.
    pub concurrent: usize,
    /// Hashes waiting; beyond this a login is answered `503`.
    pub queued: usize,
}

/// The token service's configuration, typed and checked.
#[derive(Debug)]
pub struct TokenService {
    /// `iss` of issued tokens and the metadata's `issuer` (no trailing `/`).
    pub issuer: String,
    /// `aud` of issued tokens.
    pub audience: String,
    /// The key named by `[tokens] signing_key`.
    pub signing: Arc<SigningKey>,
    /// Public JWKs of every configured asymmetric key (rotation: all are published).
    pub jwks: serde_json::Value,
    /// Lifetime of access tokens.
    pub access_ttl: Duration,
    /// Lifetime of refresh tokens.
    pub refresh_ttl: Duration,
    /// Whether unavailable requested scopes are dropped or refused.
    pub scope_policy: ScopePolicy,
    /// The public client that requests without client authentication act as.
    pub default_client: Option<String>,
    /// `[[clients]]`, by id.
    pub clients: HashMap<String, Client>,
    /// Path prefix of `/token`, `/revoke` and `/register` ("" or "/oauth"…).
    pub endpoint_prefix: String,
    /// Refuse a token request without `grant_type` (otherwise username + password
    /// mean the password grant, as FastAPI's `OAuth2PasswordRequestForm` accepts).
    pub require_grant_type: bool,
    /// Grants served at all (`[tokens] grants`); every other one is
    /// `unsupported_grant_type`.
    pub grants: Vec<Grant>,
    /// The store URL (may hold a password: never logged).
    pub store_url: String,
    /// `[[users.static]]`, by name: read-only, never in the store.
    pub static_users: HashMap<String, ConfigUser>,
    /// `[[users.seed]]`: added to the store on start when missing.
    pub seed_users: Vec<ConfigUser>,
    /// Hashes and verifies passwords (`[users] argon2_*`).
    pub hasher: Hasher,
    /// The login policies used when `[rate_limits]` does not configure them.
    pub login_defaults: crate::ratelimit::LoginDefaults,
    /// The size of the hashing gate (read when the runtime starts).
    pub hash_limits: HashLimits,
    /// `[registration]`, when enabled.
    pub registration: Option<Registration>,
    /// Signing keys created because `create_if_missing` found no file: written on start.
    pub created_keys: Vec<(std::path::PathBuf, String)>,
    /// `[login]`: the sign-in pages, sessions, codes and external providers.
    pub login: browser::LoginSettings,
}

impl TokenService {
    /// The scopes a set of roles allows.
    pub(crate) fn role_scopes(roles: &[String], map: &HashMap<String, Vec<String>>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in roles {
            for s in map.get(r).into_iter().flatten() {
                if !out.contains(s) {
                    out.push(s.clone());
                }
            }
        }
        out
    }

    /// Writes the signing keys generated for missing files (mode 0600, never
    /// overwriting a file that appeared meanwhile).
    pub(crate) fn persist_created_keys(&self) -> std::io::Result<()> {
        use std::io::Write as _;
        for (path, pem) in &self.created_keys {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt as _;
                opts.mode(0o600);
            }
            let mut f = opts.open(path)?;
            f.write_all(pem.as_bytes())?;
            tracing::info!(path = %path.display(), "created a new signing key");
        }
        Ok(())
    }
}

/// The token service's state: the store and the deny-list of revoked access tokens.
#[derive(Debug)]
pub struct TokenRuntime {
    pub store: Store,
    pub deny: Arc<DenyList>,
    /// The URL the store was opened with (a reload naming another needs a restart).
    pub store_url: String,
    /// Bounds password hashing for the whole process (sized at start; a reload that
    /// changes `[users] max_*_hashes` needs a restart).
    pub gate: HashGate,
    /// The key of the sign-in forms' CSRF tokens (a secret shared by replicas through
    /// the store).
    pub csrf_key: ring::hmac::Key,
    /// External providers' endpoints and keys, found at first use.
    pub providers: std::sync::Mutex<HashMap<String, Arc<browser::external::ProviderRuntime>>>,
}

/// The CSRF key, from the store (made by the first replica to start).
async fn csrf_key(store: &Store) -> Result<ring::hmac::Key, StoreError> {
    use base64::Engine as _;
    use ring::rand::SecureRandom as _;
    let mut fresh = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut fresh)
        .map_err(|_| StoreError::Other("no randomness".into()))?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let stored = store.secret("csrf", b64.encode(fresh)).await?;
    let bytes = b64
        .decode(stored)
        .map_err(|_| StoreError::Other("the stored CSRF secret is not base64".into()))?;
    Ok(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &bytes))
}

impl TokenRuntime {
    /// Opens (creating and migrating) the store, seeds `[[users.seed]]` users that do
    /// not exist yet, loads the deny-list and starts its periodic refresh.
    pub async fn start(
        svc: &TokenService,
        bg: &tokio::runtime::Handle,
    ) -> Result<Arc<TokenRuntime>, StoreError> {
        let store = Store::open_on(&svc.store_url, bg.clone()).await?;
        for u in &svc.seed_users {
            if store
                .add_user(&u.username, &u.password_hash, &u.roles)
                .await?
            {
                tracing::info!(user = %u.username, "seeded a user into the store");
            }
        }
        let deny = Arc::new(DenyList::default());
        deny.replace(store.revoked_jtis().await?);
        let rt = Arc::new(TokenRuntime {
            csrf_key: csrf_key(&store).await?,
            store,
            deny,
            store_url: svc.store_url.clone(),
            gate: HashGate::new(svc.hash_limits.concurrent, svc.hash_limits.queued),
            providers: Default::default(),
        });
        rt.spawn_deny_sync();
        Ok(rt)
    }

    /// The store opened to read, for `explain`: the revoked tokens loaded once; no user
    /// is seeded and nothing is refreshed.
    pub async fn reader(
        svc: &TokenService,
        bg: &tokio::runtime::Handle,
    ) -> Result<Arc<TokenRuntime>, StoreError> {
        let store = Store::open_on(&svc.store_url, bg.clone()).await?;
        let deny = Arc::new(DenyList::default());
        deny.replace(store.revoked_jtis().await?);
        Ok(Arc::new(TokenRuntime {
            csrf_key: csrf_key(&store).await?,
            store,
            deny,
            store_url: svc.store_url.clone(),
            gate: HashGate::new(svc.hash_limits.concurrent, svc.hash_limits.queued),
            providers: Default::default(),
        }))
    }

    /// Every 5 s, the deny-list is reloaded from the store, so a revocation made on
    /// another replica takes effect here too. Stops when the runtime is dropped.
    fn spawn_deny_sync(self: &Arc<TokenRuntime>) {
        let weak = Arc::downgrade(self);
        self.store.spawn(async move {
            let mut tick = tokio::time::interval(denylist::SYNC_EVERY);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(rt) = weak.upgrade() else { return };
                match rt.store.revoked_jtis().await {
                    Ok(list) => rt.deny.replace(list),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not refresh the revoked-token list")
                    }
                }
            }
        });
    }
}
