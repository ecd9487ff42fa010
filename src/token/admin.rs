//! `portcullis users …`, `portcullis hash-password` and `portcullis keys generate`:
//! the operator's side of the token service. Passwords come from a prompt or stdin,
//! never from the command line (it is visible in the process list and shell history).

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::Path;

use anyhow::{bail, Context as _};

use super::keys;
use super::store::Store;
use super::{valid_username, TokenService};

/// Reads a password: a hidden prompt (asked twice) on a terminal, else one line of
/// stdin.
pub fn read_password(prompt: &str) -> anyhow::Result<String> {
    let pw = if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password(prompt)?;
        let b = rpassword::prompt_password("again: ")?;
        if a != b {
            bail!("the two passwords differ");
        }
        a
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if pw.is_empty() {
        bail!("empty password");
    }
    if pw.len() > super::endpoint::MAX_PASSWORD_BYTES {
        bail!(
            "password longer than {} bytes",
            super::endpoint::MAX_PASSWORD_BYTES
        );
    }
    Ok(pw)
}

/// A `users` subcommand (also the clap definition of `portcullis users …`).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum UsersAction {
    /// Add a user; the password is read from a prompt or stdin.
    Add {
        username: String,
        /// Comma-separated roles from the `[roles]` table.
        #[arg(
            long,
            value_delimiter = ',',
            help = "Comma-separated roles from [roles]"
        )]
        roles: Vec<String>,
    },
    /// List users (store and static).
    List,
    /// Set a new password, read from a prompt or stdin.
    Passwd { username: String },
    /// Replace a user's roles.
    SetRoles {
        username: String,
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
    },
    /// Refuse a user's logins and refreshes from now on.
    Disable { username: String },
    /// Let a disabled user log in again.
    Enable { username: String },
    /// Delete a user and revoke their refresh tokens.
    Remove { username: String },
    /// Record a user's verified email address: `[[login.providers]]` with
    /// `link_by_email` then sign them in with an external identity of that address.
    SetEmail { username: String, email: String },
}

fn check_roles(
    svc_roles: &std::collections::HashMap<String, Vec<String>>,
    roles: &[String],
) -> anyhow::Result<()> {
    for r in roles {
        if !svc_roles.contains_key(r) {
            let mut known: Vec<&str> = svc_roles.keys().map(String::as_str).collect();
            known.sort_unstable();
            bail!(
                "role \"{r}\" is not defined in [roles] (known: {})",
                known.join(", ")
            );
        }
    }
    Ok(())
}

/// Runs a `users` subcommand against the configured store; returns what to print.
pub async fn users(
    svc: &TokenService,
    roles: &std::collections::HashMap<String, Vec<String>>,
    action: UsersAction,
    password: impl Fn() -> anyhow::Result<String>,
) -> anyhow::Result<String> {
    let store = Store::open(&svc.store_url)
        .await
        .context("opening the user store")?;
    let is_static = |u: &str| svc.static_users.contains_key(u);
    let not_found = |u: &str| anyhow::anyhow!("no user \"{u}\" in the store");
    match action {
        UsersAction::List => {
            let mut out = String::new();
            for u in store.list_users().await? {
                out.push_str(&format!(
                    "{}\troles={}\t{}\n",
                    u.username,
                    u.roles.join(","),
                    if u.disabled { "disabled" } else { "enabled" }
                ));
            }
            for u in svc.static_users.values() {
                out.push_str(&format!(
                    "{}\troles={}\tstatic (gateway.toml)\n",
                    u.username,
                    u.roles.join(",")
                ));
            }
            Ok(out)
        }
        UsersAction::Add { username, roles: r } => {
            if !valid_username(&username) {
                bail!("a username has 3 to 64 characters: letters, digits, '.', '_', '-', '@'");
            }
            if is_static(&username) {
                bail!("\"{username}\" is a static user in the configuration");
            }
            check_roles(roles, &r)?;
            let pw = password()?;
            let hashed = store.hash_password(&svc.hasher, &pw).await??;
            if !store.add_user(&username, &hashed, &r).await? {
                bail!("user \"{username}\" exists already");
            }
            Ok(format!("added {username} (roles: {})\n", r.join(",")))
        }
        UsersAction::Passwd { username } => {
            if store.find_user(&username).await?.is_none() {
                return Err(not_found(&username));
            }
            let pw = password()?;
            let hashed = store.hash_password(&svc.hasher, &pw).await??;
            store.set_password_hash(&username, &hashed).await?;
            Ok(format!("password of {username} changed\n"))
        }
        UsersAction::SetRoles { username, roles: r } => {
            check_roles(roles, &r)?;
            if !store.set_roles(&username, &r).await? {
                return Err(not_found(&username));
            }
            Ok(format!("roles of {username}: {}\n", r.join(",")))
        }
        UsersAction::Disable { username } => {
            if !store.set_disabled(&username, true).await? {
                return Err(not_found(&username));
            }
            Ok(format!(
                "{username} disabled (refresh tokens stop working at their next use)\n"
            ))
        }
        UsersAction::Enable { username } => {
            if !store.set_disabled(&username, false).await? {
                return Err(not_found(&username));
            }
            Ok(format!("{username} enabled\n"))
        }
        UsersAction::SetEmail { username, email } => {
            let ok = email.len() <= 254
                && email.split_once('@').is_some_and(|(a, d)| {
                    !a.is_empty() && d.contains('.') && !email.contains(char::is_whitespace)
                });
            if !ok {
                bail!("\"{email}\" is not an email address");
            }
            if store.find_user(&username).await?.is_none() {
                return Err(not_found(&username));
            }
            store.set_email(&username, &email).await?;
            Ok(format!(
                "email of {username}: {}\n",
                email.to_ascii_lowercase()
            ))
        }
        UsersAction::Remove { username } => {
            if !store.remove_user(&username).await? {
                return Err(not_found(&username));
            }
            Ok(format!(
                "{username} removed; their refresh tokens are revoked\n"
            ))
        }
    }
}

/// Writes a new key pair for `[[tokens.keys]]` into `dir`: `KID.pem` (private, mode
/// 0600) and `KID.pub.pem`, or `KID.secret` for HS256. Returns the config snippet.
pub fn generate_keys(alg: &str, kid: &str, dir: &Path) -> anyhow::Result<String> {
    let a = crate::auth::jwt::parse_alg(alg)
        .with_context(|| format!("\"{alg}\" is not one of HS256, RS256, ES256, EdDSA"))?;
    if kid.is_empty()
        || !kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        bail!("a kid is letters, digits, '-', '_' and '.'");
    }
    let g = keys::generate(a).map_err(|e| anyhow::anyhow!(e))?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let write = |name: String, text: &str, private: bool| -> anyhow::Result<std::path::PathBuf> {
        let path = dir.join(name);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600);
        }
        let _ = private;
        let mut f = opts
            .open(&path)
            .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
        f.write_all(text.as_bytes())?;
        Ok(path)
    };
    match g.public {
        Some(public) => {
            let private = write(format!("{kid}.pem"), &g.private, true)?;
            let public = write(format!("{kid}.pub.pem"), &public, false)?;
            Ok(format!(
                "wrote {} and {}\n\n[[tokens.keys]]\nkid = \"{kid}\"\nalg = \"{alg}\"\nprivate_key = \"{}\"\n",
                private.display(),
                public.display(),
                private.display()
            ))
        }
        None => {
            let secret = write(format!("{kid}.secret"), &g.private, true)?;
            Ok(format!(
                "wrote {}\n\n[[tokens.keys]]\nkid = \"{kid}\"\nalg = \"HS256\"\nsecret_file = \"{}\"\n",
                secret.display(),
                secret.display()
            ))
        }
    }
}
