//! The `portcullis` command: `run` (default) and `check`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use portcullis::config::Config;
use portcullis::policy::matcher::Routable;
use portcullis::Gateway;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Check => check(&cli.config),
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
            println!("{}: OK", path.display());
            println!(
                "listen {}{}",
                c.server.listen,
                c.server
                    .admin_listen
                    .map(|a| format!(", admin {a}"))
                    .unwrap_or_default()
            );
            println!("routes, in match order:");
            for r in c.router.routes() {
                let methods = r
                    .methods()
                    .map(|m| m.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(","))
                    .unwrap_or_else(|| "*".into());
                let host = r.host().map(|h| format!(" host={h}")).unwrap_or_default();
                println!(
                    "  {:<10} {:<28}{} → {} (auth {:?})",
                    methods,
                    r.pattern().as_str(),
                    host,
                    r.upstream.name,
                    r.auth
                );
            }
            ExitCode::SUCCESS
        }
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("PORTCULLIS_LOG_FORMAT")
        .map(|v| v != "text")
        .unwrap_or(true);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init();
    } else {
        builder.init();
    }
}

fn run(path: &Path) -> anyhow::Result<()> {
    let config = Config::load(path).map_err(|e| anyhow::anyhow!("refusing to start:\n{e}"))?;
    init_logging();
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
        .context("binding the listeners")?;
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
