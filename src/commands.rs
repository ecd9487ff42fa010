//! The one-shot commands: `check`, `explain`, `users`, `hash-password`, `api-key`,
//! and how their output is written (a closed pipe ends the program quietly).
//!
//! Each loads the configuration itself and never starts the gateway; the user and
//! key administration proper lives in the library (`portcullis::token::admin`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use portcullis::config::Config;
use portcullis::policy::matcher::Routable;

/// `println!` for command output: a closed pipe (`portcullis check | head -1`) ends
/// the program quietly, as SIGPIPE ends other Unix tools, instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {
        out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for command output (see [`say!`]).
macro_rules! say_raw {
    ($($arg:tt)*) => {
        out(format_args!($($arg)*))
    };
}

fn out(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            // 128 + SIGPIPE, what a shell reports for a tool the signal ended.
            std::process::exit(141);
        }
        eprintln!("portcullis: cannot write the output: {e}");
        std::process::exit(1);
    }
}

pub(crate) fn check(path: &Path) -> ExitCode {
    match Config::load(path) {
        Err(e) => {
            eprint!("{e}");
            ExitCode::FAILURE
        }
        Ok(c) => {
            say!("{}: OK", path.display());
            say!(
                "listen {}{}",
                c.server.listen,
                c.server
                    .admin_listen
                    .map(|a| format!(", admin {a}"))
                    .unwrap_or_default()
            );
            say!("routes, in match order:");
            for r in c.router.routes() {
                let methods = r
                    .methods()
                    .map(|m| m.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(","))
                    .unwrap_or_else(|| "*".into());
                let host = r.host().map(|h| format!(" host={h}")).unwrap_or_default();
                say!(
                    "  {:<10} {:<28}{} → {} (auth {:?})",
                    methods,
                    r.pattern().as_str(),
                    host,
                    r.upstream.name,
                    r.auth
                );
            }
            if let Some(s) = &c.token_service {
                // The store URL may hold a password: only its kind (and a SQLite path).
                let store = if s.store_url.starts_with("sqlite:") {
                    s.store_url.clone()
                } else {
                    "postgres (URL not shown)".into()
                };
                say!(
                    "token service: POST {p}/token, {p}/revoke{reg}; key {kid} ({alg:?}); store {store}; {n} client(s)",
                    p = s.endpoint_prefix,
                    reg = if s.registration.is_some() { format!(", {}/register", s.endpoint_prefix) } else { String::new() },
                    kid = s.signing.kid,
                    alg = s.signing.alg,
                    n = s.clients.len(),
                );
            }
            ExitCode::SUCCESS
        }
    }
}

/// Prints a command's output, or its error.
pub(crate) fn report(r: anyhow::Result<String>) -> ExitCode {
    match r {
        Ok(out) => {
            say_raw!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("portcullis: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Loads the configuration and runs `work` on its token service, on a small
/// runtime of its own (the store commands).
fn with_token_service(
    path: &Path,
    work: impl AsyncFnOnce(&Config, &portcullis::token::TokenService) -> anyhow::Result<String>,
) -> anyhow::Result<String> {
    let config = Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let svc = config.token_service.as_ref().with_context(|| {
        format!(
            "{}: the token service is off; set [tokens] signing_key",
            path.display()
        )
    })?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(work(&config, svc))
}

pub(crate) fn users(
    path: &Path,
    action: portcullis::token::admin::UsersAction,
) -> anyhow::Result<String> {
    use portcullis::token::admin::read_password;
    with_token_service(path, async |config, svc| {
        portcullis::token::admin::users(svc, &config.roles, action, || read_password("password: "))
            .await
    })
}

pub(crate) fn clients(
    path: &Path,
    action: portcullis::token::clients_admin::ClientsAction,
) -> anyhow::Result<String> {
    with_token_service(path, async |config, svc| {
        let audiences = config
            .tokens
            .as_ref()
            .map(|t| t.rules().audiences.clone())
            .unwrap_or_default();
        portcullis::token::clients_admin::clients(svc, &audiences, action).await
    })
}

pub(crate) fn hash_password(path: &Path) -> anyhow::Result<String> {
    use portcullis::token::password::{Argon2Params, Hasher};
    // The configured parameters when there is a usable configuration, else RFC 9106's.
    let hasher = Config::load(path)
        .ok()
        .and_then(|c| c.token_service.map(|s| s.hasher))
        .unwrap_or_else(|| Hasher::new(Argon2Params::default()));
    let pw = portcullis::token::admin::read_password("password: ")?;
    Ok(format!("{}\n", hasher.hash(&pw)?))
}

pub(crate) fn api_key(action: &str) -> ExitCode {
    use portcullis::auth::api_key;
    let key = if action == "generate" {
        match api_key::generate() {
            Ok(k) => {
                say!("key:    {k}\n        (give it to the client; it is not stored anywhere)");
                k
            }
            Err(_) => {
                eprintln!("portcullis: the system random generator failed");
                return ExitCode::FAILURE;
            }
        }
    } else {
        let mut k = String::new();
        if std::io::stdin().read_line(&mut k).is_err() || k.trim().is_empty() {
            eprintln!("portcullis: give the key on stdin");
            return ExitCode::FAILURE;
        }
        k.trim().to_string()
    };
    say!("sha256: {}", api_key::hash(&key));
    ExitCode::SUCCESS
}

pub(crate) fn explain(
    path: &Path,
    method: &str,
    target: &str,
    host: Option<&str>,
    token: Option<String>,
    scopes: Option<String>,
    roles: Option<String>,
) -> ExitCode {
    use portcullis::explain::{explain_with, Caller};
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(2);
        }
    };
    let words = |s: Option<String>| {
        s.map(|s| s.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let caller = match token.as_deref() {
        Some("-") => {
            let mut t = String::new();
            if std::io::stdin().read_line(&mut t).is_err() {
                eprintln!("portcullis: could not read the token from stdin");
                return ExitCode::from(2);
            }
            Caller::Token(t.trim().to_string())
        }
        Some(t) => Caller::Token(t.to_string()),
        None if scopes.is_some() || roles.is_some() => Caller::Grants {
            scopes: words(scopes),
            roles: words(roles),
        },
        None => Caller::Anonymous,
    };
    let read_store = matches!(caller, Caller::Token(_));
    let d = explain_with(config, read_store, method, target, host, &caller);
    say_raw!("{}", d.report);
    if d.status.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
