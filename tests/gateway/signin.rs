//! Browser sign-in end to end (issue 12): the authorization code flow with PKCE, the
//! login and consent pages, OpenID Connect, external providers and replicas.
//!
//! - `flow`: a tiny browser over raw HTTP (one cookie jar, the forms' hidden fields),
//!   used by the Rust-side tests;
//! - `negative`: what must be refused, and what must never be redirected anywhere;
//! - `pages`: CSRF, session fixation, clickjacking headers, logout, the login limiter;
//! - `clients`: real clients — headless Chromium on the demo app, npm `openid-client`,
//!   Python authlib;
//! - `external`: npm `oidc-provider` as the external identity provider;
//! - `replicas`: a code issued by one gateway redeemed at another on one PostgreSQL.

mod clients;
mod external;
pub(crate) mod flow;
mod negative;
mod pages;
mod replicas;
mod stored_clients;

use crate::support::*;
use crate::token::{cheap_hasher, JOHNDOE_BCRYPT, WEB_SECRET};

/// A gateway whose issuer is its own URL (`http://127.0.0.1:PORT`), with the clients
/// the tests use; `extra` is appended.
pub(crate) struct SignIn {
    pub gw: portcullis::Gateway,
    pub base: String,
    pub store_url: String,
    _dir: Option<tempfile::TempDir>,
}

impl SignIn {
    pub fn addr(&self) -> std::net::SocketAddr {
        self.gw.addr
    }
}

/// The configuration text: `port` for the listener and the issuer, `store` a URL.
pub(crate) fn config_text(port: u16, store: &str, login_extra: &str, extra: &str) -> String {
    let alice = cheap_hasher().hash("wonderland").expect("hash");
    let web = portcullis::auth::api_key::hash(WEB_SECRET);
    format!(
        r#"
[server]
listen = "127.0.0.1:{port}"

[tokens]
issuer = "http://127.0.0.1:{port}"
audiences = ["api"]
signing_key = "es"
login_rate = "1000/1s"
login_ip_rate = "1000/1s"

[[tokens.keys]]
kid = "es"
alg = "ES256"
private_key = "{FIX}/es256.key"

[users]
store = "{store}"
argon2_memory = "8MiB"
argon2_iterations = 1
argon2_parallelism = 1

[[users.seed]]
username = "johndoe"
password_hash = "{JOHNDOE_BCRYPT}"
roles = ["user"]

[[users.seed]]
username = "alice"
password_hash = "{alice}"
roles = ["admin"]

[[clients]]
client_id = "spa"
grants = ["authorization_code", "refresh_token"]
redirect_uris = ["http://127.0.0.1:{port}/cb", "http://localhost:{port}/demo/", "http://127.0.0.1:{port}/demo/"]
post_logout_redirect_uris = ["http://127.0.0.1:{port}/cb", "http://localhost:{port}/demo/", "http://127.0.0.1:{port}/demo/"]

[[clients]]
client_id = "first"
grants = ["authorization_code"]
redirect_uris = ["https://first.example/cb"]
require_consent = false

[[clients]]
client_id = "native"
grants = ["authorization_code"]
redirect_uris = ["http://127.0.0.1/native"]
require_consent = false

[[clients]]
client_id = "web"
secret_sha256 = "{web}"
grants = ["authorization_code", "refresh_token"]
redirect_uris = ["https://web.example/cb"]
require_pkce = false

[login]
demo_client = "spa"
{login_extra}

[roles]
admin = ["items:read", "items:write"]
user = ["items:read"]

[[upstreams]]
name = "echo"
echo = true

[[routes]]
path = "/items/{{id}}"
methods = ["GET"]
upstream = "echo"
scopes = ["items:read"]
{extra}
"#
    )
}

/// Starts a gateway on SQLite (a temporary file) with [`config_text`].
pub(crate) async fn start(login_extra: &str, extra: &str) -> SignIn {
    let dir = tempfile::tempdir().expect("tmp");
    let store = format!("sqlite://{}/users.db", dir.path().display());
    let mut s = start_on(&store, login_extra, extra).await;
    s._dir = Some(dir);
    s
}

/// Starts a gateway on the store at `store`.
pub(crate) async fn start_on(store: &str, login_extra: &str, extra: &str) -> SignIn {
    start_at(closed_port().await.port(), store, login_extra, extra).await
}

/// Starts a gateway listening on `port` (its issuer's port).
pub(crate) async fn start_at(port: u16, store: &str, login_extra: &str, extra: &str) -> SignIn {
    start_text(port, store, &config_text(port, store, login_extra, extra)).await
}

/// Starts a gateway from configuration text listening on `port`.
pub(crate) async fn start_text(port: u16, store: &str, text: &str) -> SignIn {
    capture_logs();
    let config = portcullis::config::parse_str(text, std::path::Path::new("signin.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let gw = portcullis::Gateway::start(config)
        .await
        .expect("gateway starts");
    SignIn {
        base: format!("http://127.0.0.1:{port}"),
        gw,
        store_url: store.to_string(),
        _dir: None,
    }
}

/// `node` with the test package's dependencies (`.ci/js_deps.sh` installs them).
pub(crate) fn node_script(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    assert!(
        dir.join("node_modules/openid-client").exists(),
        "the npm test packages are missing (tests/js/node_modules): run `bash .ci/js_deps.sh` (or `bash .ci/run`)"
    );
    (std::path::PathBuf::from("node"), dir.join(name))
}

/// Runs a command off the async threads; (success, stdout, stderr).
pub(crate) async fn run(mut cmd: std::process::Command) -> (bool, String, String) {
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("the command runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}
