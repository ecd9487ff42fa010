//! `portcullis clients add|list|remove`: OAuth clients kept in the store, beside the
//! `[[clients]]` of the configuration (which win on a clash of ids). A confidential
//! client's secret is printed once and stored as its SHA-256 digest only.
//!
//! New clients get the authorization code grant (with PKCE, always) and refresh
//! tokens; the password grant only when asked for by name (RFC 9700 §2.4 deprecates
//! it: the client sees the user's password).

use anyhow::bail;

use super::browser::check_redirect_uri;
use super::store::{ClientRecord, Store};
use super::{Grant, TokenService};
use crate::auth::api_key;

/// A `clients` subcommand (also the clap definition of `portcullis clients …`).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ClientsAction {
    /// Add a client to the store; a confidential client's secret is printed once.
    Add {
        client_id: String,
        /// Where codes may be sent (repeat, or comma-separated).
        #[arg(long = "redirect-uri", value_delimiter = ',')]
        redirect_uris: Vec<String>,
        /// Where `/logout` may send the browser back.
        #[arg(long = "post-logout-redirect-uri", value_delimiter = ',')]
        post_logout_redirect_uris: Vec<String>,
        /// Grants (default: authorization_code,refresh_token).
        #[arg(
            long = "grant",
            value_delimiter = ',',
            default_value = "authorization_code,refresh_token"
        )]
        grants: Vec<String>,
        /// Scopes the client may obtain (default: no limit beyond the user's roles).
        #[arg(long = "scope", value_delimiter = ',')]
        scopes: Vec<String>,
        /// A confidential client: a secret is generated and printed once.
        #[arg(long)]
        confidential: bool,
        /// A first-party client: no consent page.
        #[arg(long)]
        no_consent: bool,
    },
    /// List the store's clients (and the configuration's).
    List,
    /// Remove a client, its consents and its refresh tokens.
    Remove { client_id: String },
}

/// Runs a `clients` subcommand against the configured store; returns what to print.
/// `audiences`: `[tokens] audiences` (a client id must not be one).
pub async fn clients(
    svc: &TokenService,
    audiences: &[String],
    action: ClientsAction,
) -> anyhow::Result<String> {
    let store = Store::open(&svc.store_url).await?;
    match action {
        ClientsAction::List => {
            let mut out = String::new();
            for c in store.list_clients().await? {
                out.push_str(&line(&c, "store"));
            }
            let mut cfg: Vec<_> = svc.clients.values().collect();
            cfg.sort_by(|a, b| a.client_id.cmp(&b.client_id));
            for c in cfg {
                let r = ClientRecord {
                    client_id: c.client_id.clone(),
                    secret_sha256: c.secret_sha256.clone(),
                    grants: c.grants.iter().map(|g| g.as_str().to_string()).collect(),
                    scopes: c.scopes.clone(),
                    redirect_uris: c.redirect_uris.clone(),
                    post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
                    require_consent: c.require_consent,
                };
                out.push_str(&line(&r, "gateway.toml"));
            }
            Ok(out)
        }
        ClientsAction::Remove { client_id } => {
            if svc.clients.contains_key(&client_id) {
                bail!("\"{client_id}\" is declared in the configuration ([[clients]]); remove it there");
            }
            if !store.remove_client(&client_id).await? {
                bail!("no client \"{client_id}\" in the store");
            }
            Ok(format!(
                "{client_id} removed; its consents and refresh tokens are revoked\n"
            ))
        }
        ClientsAction::Add {
            client_id,
            redirect_uris,
            post_logout_redirect_uris,
            grants,
            scopes,
            confidential,
            no_consent,
        } => {
            check_new(
                svc,
                &client_id,
                &redirect_uris,
                &post_logout_redirect_uris,
                &grants,
                confidential,
            )?;
            if audiences.contains(&client_id) {
                bail!("\"{client_id}\" is one of [tokens] audiences: give the client an id of its own");
            }
            let secret = confidential.then(|| {
                use base64::Engine as _;
                use ring::rand::SecureRandom as _;
                let mut b = [0u8; 32];
                ring::rand::SystemRandom::new()
                    .fill(&mut b)
                    .map(|()| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
            });
            let secret = match secret {
                Some(Ok(s)) => Some(s),
                Some(Err(_)) => bail!("no randomness for the client secret"),
                None => None,
            };
            let added = store
                .add_client(ClientRecord {
                    client_id: client_id.clone(),
                    secret_sha256: secret.as_deref().map(api_key::hash),
                    grants,
                    scopes,
                    redirect_uris,
                    post_logout_redirect_uris,
                    require_consent: !no_consent,
                })
                .await?;
            if !added {
                bail!("client \"{client_id}\" exists already");
            }
            Ok(match secret {
                Some(s) => format!(
                    "added {client_id} (confidential)\nclient_secret: {s}\n(shown once: only its SHA-256 is stored)\n"
                ),
                None => format!("added {client_id} (public: PKCE, no secret)\n"),
            })
        }
    }
}

fn line(c: &ClientRecord, source: &str) -> String {
    format!(
        "{}\t{}\tgrants={}\tredirect_uris={}\t{}\n",
        c.client_id,
        if c.secret_sha256.is_some() {
            "confidential"
        } else {
            "public"
        },
        c.grants.join(","),
        c.redirect_uris.join(","),
        source
    )
}

fn check_new(
    svc: &TokenService,
    id: &str,
    redirects: &[String],
    post_logout: &[String],
    grants: &[String],
    confidential: bool,
) -> anyhow::Result<()> {
    if id.is_empty()
        || id.len() > 128
        || !id.bytes().all(|b| (0x21..0x7f).contains(&b) && b != b':')
    {
        bail!("a client id is 1 to 128 visible characters, without ':'");
    }
    if svc.clients.contains_key(id) {
        bail!("\"{id}\" is declared in the configuration already");
    }
    let mut parsed = Vec::new();
    for g in grants {
        match Grant::parse(g) {
            Some(g) if svc.grants.contains(&g) => parsed.push(g),
            Some(_) => bail!("the grant \"{g}\" is not enabled in [tokens] grants"),
            None => bail!("\"{g}\" is not a grant (authorization_code, refresh_token, password, client_credentials)"),
        }
    }
    if parsed.contains(&Grant::ClientCredentials) && !confidential {
        bail!("client_credentials needs a confidential client (--confidential)");
    }
    if parsed.contains(&Grant::AuthorizationCode)
        && svc.signing.alg == jsonwebtoken::Algorithm::HS256
    {
        bail!("the authorization_code grant needs an RS256, ES256 or EdDSA signing key ([tokens] signing_key)");
    }
    if parsed.contains(&Grant::AuthorizationCode) && redirects.is_empty() {
        bail!("the authorization_code grant needs --redirect-uri");
    }
    for u in redirects.iter().chain(post_logout) {
        if let Err(why) = check_redirect_uri(u) {
            bail!("\"{u}\" {why}: use an absolute https URI (http only on loopback), without a fragment");
        }
    }
    Ok(())
}
