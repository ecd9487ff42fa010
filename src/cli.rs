//! The command line's grammar (clap): the global `--config` and every subcommand with
//! its arguments and help text. What each command does is in `commands.rs` (and
//! `run` in `main.rs`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "An auth gateway in front of your HTTP APIs"
)]
pub(crate) struct Cli {
    /// Configuration file.
    #[arg(
        long,
        short,
        global = true,
        env = "PORTCULLIS_CONFIG",
        default_value = "gateway.toml"
    )]
    pub(crate) config: PathBuf,
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
    /// Manage the OAuth clients kept in the store (beside [[clients]]).
    Clients {
        #[command(subcommand)]
        action: portcullis::token::clients_admin::ClientsAction,
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
pub(crate) enum KeysCommand {
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
