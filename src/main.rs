//! The `portcullis` command: `run` (default), `check`, `explain`, `users`, `keys`,
//! `hash-password`, `api-key`.
//!
//! This file owns the process: the allocator, dispatching the parsed command line
//! ([`cli`]), and `run` (logging, the runtime, the gateway and its signals). The
//! one-shot commands are in [`commands`], log setup in [`logging`].

mod cli;
mod commands;
mod logging;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use portcullis::config::Config;
use portcullis::Gateway;

use cli::{Cli, Command, KeysCommand};
use commands::{api_key, check, explain, hash_password, report, users};
use logging::init_logging;

// Many small, short-lived allocations per request (header maps, URIs, futures):
// mimalloc's thread-local free lists are measurably cheaper than glibc malloc here.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Check => check(&cli.config),
        Command::ApiKey { action } => api_key(&action),
        Command::Users { action } => report(users(&cli.config, action)),
        Command::Clients { action } => report(commands::clients(&cli.config, action)),
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
    let delay = loop {
        tokio::select! {
            // Read and validated on the background runtime, not on this worker.
            _ = hup.recv() => if let Err(e) = gateway.reload_from(&path).await {
                tracing::error!(errors = %e, "reload refused; still serving the last good configuration");
            },
            // An orchestrator's stop: unready first, serve on for the delay.
            _ = term.recv() => break gateway.shutdown_delay(),
            // Ctrl-C: someone at a terminal, no load balancer to wait for.
            _ = int.recv() => break Duration::ZERO,
        }
    };
    gateway.begin_drain();
    if !delay.is_zero() {
        tracing::info!(delay = ?delay, "SIGTERM: /readyz answers 503; serving on until the delay ends (a second signal ends it now)");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    gateway.shutdown().await;
    Ok(())
}
