//! The `portcullis` command: `run` (default), `check`, `explain`, `users`, `keys`,
//! `hash-password`, `api-key`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use portcullis::config::Config;
use portcullis::policy::matcher::Routable;
use portcullis::Gateway;

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

// Many small, short-lived allocations per request (header maps, URIs, futures):
// mimalloc's thread-local free lists are measurably cheaper than glibc malloc here.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "An auth gateway in front of your HTTP APIs"
)]
struct Cli {
    /// Configuration file.
    #[arg(
        long,
        short,
        global = true,
        env = "PORTCULLIS_CONFIG",
        default_value = "gateway.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve (the default). SIGHUP reloads the configuration; SIGINT/SIGTERM drain and stop.
    Run,
    /// Validate the configuration: print every error with its fix, or a summary of routes.
    Check,
    /// API keys: `generate` prints a new key and its SHA-256 for `[[api_keys]]`;
    /// `hash` reads a key from stdin and prints its SHA-256.
    ApiKey {
        #[arg(value_parser = ["generate", "hash"])]
        action: String,
    },
    /// Manage the users of the configured store ([users] store).
    Users {
        #[command(subcommand)]
        action: portcullis::token::admin::UsersAction,
    },
    /// Print an argon2id hash of a password read from a prompt or stdin (for
    /// [[users.static]] and [[users.seed]]).
    HashPassword,
    /// Signing keys.
    Keys {
        #[command(subcommand)]
        action: KeysCommand,
    },
    /// Show how a request would be handled: canonical path, routes, decision and why.
    /// Exit status 0 when it would be forwarded, 1 when refused.
    Explain {
        /// HTTP method, e.g. GET.
        method: String,
        /// Request target, e.g. /items/42?x=1.
        target: String,
        /// Host header, for host-specific routes.
        #[arg(long)]
        host: Option<String>,
        /// A bearer token to verify with the configured keys; "-" reads it from stdin
        /// (keeps it out of the process list and shell history).
        #[arg(long, conflicts_with_all = ["scopes", "roles"])]
        token: Option<String>,
        /// Pretend the caller holds these scopes (space-separated).
        #[arg(long)]
        scopes: Option<String>,
        /// Pretend the caller has these roles (space-separated).
        #[arg(long)]
        roles: Option<String>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Write a new key (ES256, EdDSA, HS256) into a directory and print its
    /// [[tokens.keys]] entry.
    Generate {
        #[arg(long)]
        alg: String,
        #[arg(long)]
        kid: String,
        #[arg(long, default_value = "keys")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Check => check(&cli.config),
        Command::ApiKey { action } => api_key(&action),
        Command::Users { action } => report(users(&cli.config, action)),
        Command::HashPassword => report(hash_password(&cli.config)),
        Command::Keys {
            action: KeysCommand::Generate { alg, kid, out },
        } => report(portcullis::token::admin::generate_keys(&alg, &kid, &out)),
        Command::Explain {
            method,
            target,
            host,
            token,
            scopes,
            roles,
        } => explain(
            &cli.config,
            &method,
            &target,
            host.as_deref(),
            token,
            scopes,
            roles,
        ),
        Command::Run => match run(&cli.config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("portcullis: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn check(path: &Path) -> ExitCode {
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
fn report(r: anyhow::Result<String>) -> ExitCode {
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

fn users(path: &Path, action: portcullis::token::admin::UsersAction) -> anyhow::Result<String> {
    use portcullis::token::admin::read_password;
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
    rt.block_on(portcullis::token::admin::users(
        svc,
        &config.roles,
        action,
        || read_password("password: "),
    ))
}

fn hash_password(path: &Path) -> anyhow::Result<String> {
    use portcullis::token::password::{Argon2Params, Hasher};
    // The configured parameters when there is a usable configuration, else RFC 9106's.
    let hasher = Config::load(path)
        .ok()
        .and_then(|c| c.token_service.map(|s| s.hasher))
        .unwrap_or_else(|| Hasher::new(Argon2Params::default()));
    let pw = portcullis::token::admin::read_password("password: ")?;
    Ok(format!("{}\n", hasher.hash(&pw)?))
}

fn api_key(action: &str) -> ExitCode {
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

fn explain(
    path: &Path,
    method: &str,
    target: &str,
    host: Option<&str>,
    token: Option<String>,
    scopes: Option<String>,
    roles: Option<String>,
) -> ExitCode {
    use portcullis::explain::{explain, Caller};
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
    let d = explain(&config, method, target, host, &caller);
    say_raw!("{}", d.report);
    if d.status.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Application logs on stdout (level from `RUST_LOG`, else `server.log_level`; JSON
/// unless `PORTCULLIS_LOG_FORMAT`/`server.log_format` say "text") and the access log
/// (target `portcullis::access`) on stdout or, with `server.access_log_file`, in a
/// rotated file through a non-blocking writer. The returned guard flushes the access
/// writer when dropped.
fn init_logging(
    server: &portcullis::config::ServerConfig,
) -> anyhow::Result<tracing_appender::non_blocking::WorkerGuard> {
    use tracing_subscriber::filter::{filter_fn, EnvFilter};
    use tracing_subscriber::prelude::*;
    const ACCESS: &str = "portcullis::access";
    let app_filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&server.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("PORTCULLIS_LOG_FORMAT")
        .map(|v| v != "text")
        .unwrap_or(server.log_format != "text");
    let app = tracing_subscriber::fmt::layer().with_writer(std::io::stdout);
    let app = if json {
        app.json()
            .flatten_event(true)
            .with_current_span(false)
            .boxed()
    } else {
        app.boxed()
    };
    let app = app
        .with_filter(app_filter)
        .with_filter(filter_fn(|m| m.target() != ACCESS));
    // Access lines are formatted by portcullis itself (middleware/access_log.rs) and
    // written through a non-blocking writer: to the rotated file, or to stdout.
    let (writer, guard) = match &server.access_log_file {
        Some(path) => {
            use tracing_appender::rolling::{RollingFileAppender, Rotation};
            let rotation = match server.access_log_rotation.as_str() {
                "hourly" => Rotation::HOURLY,
                "minutely" => Rotation::MINUTELY,
                "never" => Rotation::NEVER,
                _ => Rotation::DAILY,
            };
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let name = path
                .file_name()
                .context("access_log_file has no file name")?;
            tracing_appender::non_blocking(RollingFileAppender::new(rotation, dir, name))
        }
        None => tracing_appender::non_blocking(std::io::stdout()),
    };
    portcullis::middleware::access_log::set_sink(writer);
    tracing_subscriber::registry().with(app).init();
    Ok(guard)
}

fn run(path: &Path) -> anyhow::Result<()> {
    let config = Config::load(path).map_err(|e| anyhow::anyhow!("refusing to start:\n{e}"))?;
    let _log_guard = init_logging(&config.server)?;
    // Thread per core: this thread's current-thread runtime is worker 0, and
    // Gateway::start_workers adds one thread (and runtime) per further worker.
    let workers = config
        .server
        .worker_threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut rt = tokio::runtime::Builder::new_current_thread();
    let rt = rt
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(serve(path.to_path_buf(), config, workers))
}

async fn serve(path: PathBuf, config: Config, workers: usize) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let gateway = Gateway::start_workers(config, workers)
        .await
        .context("starting (listeners, user store)")?;
    let mut hup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    loop {
        tokio::select! {
            _ = hup.recv() => match Config::load(&path) {
                Ok(c) => gateway.reload(c),
                Err(e) => tracing::error!(errors = %e, "reload refused; still serving the last good configuration"),
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    gateway.shutdown().await;
    Ok(())
}
