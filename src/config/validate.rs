//! File structs → typed [`Config`], collecting every problem with its key and fix.
//!
//! This file owns the walk over the top-level sections ([`parse_str`]) and the
//! [`Issues`] collector; each section is checked in a file of its own below
//! (`server`, `tls`, `upstreams`, `routes`, `cors`, `headers`, `tokens`, `keys`, `issuers`,
//! `api_keys`, `rate_limits`; the token service's `token_service`, `clients`, `users`).
//! Checks never stop at the first problem: every issue is collected so that one run
//! reports all of them.

mod api_keys;
mod clients;
mod cors;
mod headers;
mod issuers;
mod keys;
mod login;
mod rate_limits;
mod routes;
mod server;
mod telemetry;
mod tls;
mod token_service;
mod tokens;
mod upstreams;
mod users;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::file::{ApiKeyFile, IdentityFile, IssuerFile, ServerFile, TokensFile};
use super::units::{parse_duration, parse_size};
use super::{Config, ConfigErrors, ConfigIssue, Upstream};
use crate::policy::matcher::Router;

use api_keys::api_keys;
use cors::cors;
use headers::claim_headers;
use issuers::issuers;
use rate_limits::rate_limits;
use routes::routes;
use server::server;
use tokens::{tokens, OwnKeys};
use upstreams::upstreams;

const SECTIONS: &str = "server, upstreams, routes, tokens, roles, identity, api_keys, issuers, users, clients, registration, login, rate_limits, cors, telemetry";

/// Collects issues while validating, and the sections that could not be read at all
/// (already reported: checks that depend on them stay silent instead of cascading).
#[derive(Default)]
struct Issues(Vec<ConfigIssue>, std::collections::HashSet<String>);

impl Issues {
    fn add(&mut self, key: impl Into<String>, problem: impl Into<String>, fix: impl Into<String>) {
        self.0.push(ConfigIssue {
            key: key.into(),
            problem: problem.into(),
            fix: fix.into(),
        });
    }

    /// A duration that must be longer than zero (timeouts, lifetimes, intervals): a
    /// zero timeout would fail every request, a zero lifetime every token.
    fn duration(&mut self, key: String, value: &str) -> Duration {
        let d = self.duration_or_zero(key.clone(), value);
        if d.is_zero() && parse_duration(value).is_ok() {
            self.add(
                key,
                format!("\"{value}\" is zero"),
                "give a duration longer than zero, e.g. \"5s\"",
            );
        }
        d
    }

    /// A duration where zero means "none" (a leeway, a cache age).
    fn duration_or_zero(&mut self, key: String, value: &str) -> Duration {
        // Deadlines are added to clock readings: beyond ten years `Instant + d` may
        // overflow, and no timeout, lifetime or interval needs that long.
        const LONGEST: Duration = Duration::from_secs(10 * 366 * 24 * 3600);
        match parse_duration(value) {
            Ok(d) if d > LONGEST => {
                self.add(
                    key,
                    format!("\"{value}\" is longer than ten years"),
                    "give a shorter duration",
                );
                Duration::ZERO
            }
            Ok(d) => d,
            Err(e) => {
                self.add(key, format!("\"{value}\" is not a duration"), e);
                Duration::ZERO
            }
        }
    }

    fn size(&mut self, key: String, value: &str) -> u64 {
        parse_size(value).unwrap_or_else(|e| {
            self.add(key, format!("\"{value}\" is not a size"), e);
            0
        })
    }

    fn section<T: DeserializeOwned>(&mut self, key: String, value: toml::Value) -> Option<T> {
        match value.try_into::<T>() {
            Ok(v) => Some(v),
            Err(e) => {
                let msg = e.to_string().trim().replace('\n', " ");
                self.1.insert(key.clone());
                self.add(
                    key,
                    msg,
                    "correct the key or value; every key is described in docs/configuration.md",
                );
                None
            }
        }
    }

    /// Whether `section` could not be read (its error is already reported).
    fn unreadable(&self, section: &str) -> bool {
        self.1.contains(section)
    }

    fn array<T: DeserializeOwned>(&mut self, key: &str, value: toml::Value) -> Vec<Option<T>> {
        match value {
            toml::Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| self.section(format!("{key}[{i}]"), v))
                .collect(),
            _ => {
                self.add(
                    key,
                    "must be an array of tables",
                    format!("write each entry as [[{key}]]"),
                );
                Vec::new()
            }
        }
    }
}

/// A table key as it is written in TOML: bare when it may be (`A-Za-z0-9_-`), quoted
/// otherwise, so that a report names `""`, `"a b"` or `"x.y"` unambiguously.
fn key_segment(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        name.to_string()
    } else {
        toml::Value::String(name.to_string()).to_string()
    }
}

/// Parses and validates configuration text; `path` is only used in messages.
pub fn parse_str(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    let mut issues = Issues::default();
    let fail = |issues: Issues| ConfigErrors {
        file: path.to_path_buf(),
        issues: issues.0,
    };
    let table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            issues.add(
                "(syntax)",
                e.to_string().trim().replace('\n', " "),
                "fix the TOML syntax at the position shown",
            );
            return Err(fail(issues));
        }
    };

    let mut server_file = Some(ServerFile::default());
    let mut upstream_files = Vec::new();
    let mut upstream_names: Vec<String> = Vec::new();
    let mut route_files = Vec::new();
    let mut tokens_file: Option<TokensFile> = None;
    let mut roles_file: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut identity_file = Some(IdentityFile::default());
    let mut api_key_files: Vec<Option<ApiKeyFile>> = Vec::new();
    let mut issuer_files: Vec<Option<IssuerFile>> = Vec::new();
    let mut rate_limit_table: Option<toml::Value> = None;
    let mut cors_file: Option<super::file::CorsFile> = None;
    let mut telemetry_file: Option<super::file::TelemetryFile> = None;
    let mut service_files = token_service::Files {
        users: None,
        clients: Vec::new(),
        registration: None,
        login: None,
    };
    for (key, value) in table {
        match key.as_str() {
            "server" => server_file = issues.section("server".into(), value),
            "tokens" => tokens_file = issues.section("tokens".into(), value),
            "roles" => roles_file = issues.section("roles".into(), value).unwrap_or_default(),
            "identity" => identity_file = issues.section("identity".into(), value),
            "api_keys" => api_key_files = issues.array("api_keys", value),
            "issuers" => issuer_files = issues.array("issuers", value),
            "users" => service_files.users = issues.section("users".into(), value),
            "clients" => service_files.clients = issues.array("clients", value),
            "login" => service_files.login = issues.section("login".into(), value),
            "rate_limits" => rate_limit_table = Some(value),
            "cors" => cors_file = issues.section::<super::file::CorsFile>("cors".into(), value),
            "telemetry" => {
                telemetry_file =
                    issues.section::<super::file::TelemetryFile>("telemetry".into(), value)
            }
            "registration" => {
                service_files.registration = issues.section("registration".into(), value)
            }
            "upstreams" => {
                // Names as written, so that an entry with an error of its own is still
                // declared (its routes are not reported again).
                upstream_names = value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|u| u.get("name")?.as_str().map(str::to_string))
                    .collect();
                upstream_files = issues.array("upstreams", value)
            }
            "routes" => route_files = issues.array("routes", value),
            other => issues.add(
                key_segment(other),
                "unknown section",
                format!("known sections are: {SECTIONS}; check the spelling"),
            ),
        }
    }

    let base_dir = path.parent().unwrap_or(Path::new("."));
    let server = server_file.map(|s| server(&mut issues, s, base_dir));
    let upstreams: Vec<Arc<Upstream>> = upstreams(&mut issues, &upstream_files, base_dir);
    let declared: HashSet<&str> = upstream_names.iter().map(String::as_str).collect();
    let identity_prefix = server
        .as_ref()
        .map_or("x-auth-", |s| s.identity_header_prefix.as_str())
        .to_string();
    let routes = routes(
        &mut issues,
        &route_files,
        &upstreams,
        &declared,
        &identity_prefix,
    );

    let (tokens, own) = match tokens_file
        .as_ref()
        .and_then(|t| tokens(&mut issues, t, base_dir))
    {
        Some((v, own)) => (Some(v), own),
        None => (None, OwnKeys::default()),
    };
    let token_service = token_service::token_service(
        &mut issues,
        tokens_file.as_ref(),
        own,
        service_files,
        &roles_file,
        base_dir,
    );
    let prefix = server
        .as_ref()
        .map_or("x-auth-", |s| s.identity_header_prefix.as_str())
        .to_string();
    let api_key_header = identity_file.as_ref().map(|i| i.api_key_header.clone());
    let claim_headers = identity_file
        .map(|i| claim_headers(&mut issues, i, &prefix))
        .unwrap_or_default();
    let issuers = issuers(
        &mut issues,
        &issuer_files,
        tokens.as_ref().map(|t| t.issuer.as_str()),
    );
    let api_keys = api_keys(
        &mut issues,
        &api_key_files,
        api_key_header.as_deref().unwrap_or("x-api-key"),
    );

    let asks_certs = server
        .as_ref()
        .and_then(|s| s.tls.as_ref())
        .is_some_and(|t| t.client_auth != crate::tls::ClientAuth::Off);
    for (i, r) in routes.iter().enumerate() {
        if r.client_cert.is_some() && !asks_certs {
            issues.add(
                format!("routes[{i}].client_cert"),
                "requires a client certificate, but the listener never asks for one",
                "set server.tls.client_ca (and client_auth = \"optional\" or \"required\")",
            );
        }
    }
    let mut rate_limits = rate_limits(&mut issues, rate_limit_table, &route_files);
    if let Some(svc) = &token_service {
        rate_limits.add_login_defaults(svc.login_defaults);
    }
    let cors_policy = cors_file.and_then(|c| cors(&mut issues, "cors", &c));
    let telemetry = telemetry_file
        .map(|t| telemetry::telemetry(&mut issues, t))
        .unwrap_or_default();

    match server {
        Some(server) if issues.0.is_empty() => Ok(Config {
            source: path.to_path_buf(),
            server,
            upstreams,
            router: Router::new(routes),
            tokens,
            token_service,
            roles: roles_file.into_iter().collect(),
            claim_headers,
            api_keys,
            issuers,
            rate_limits,
            cors: cors_policy,
            telemetry,
        }),
        _ => Err(fail(issues)),
    }
}

#[cfg(test)]
mod tests;
