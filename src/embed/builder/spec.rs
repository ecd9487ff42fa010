//! What the builder is given and what it reports: a route's policy as written
//! ([`RouteSpec`]) and every problem found ([`ConfigError`], one [`Issue`] each).

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

/// One problem in the layer's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Dotted key, as in `gateway.toml` (`tokens.audiences`, `routes[1].path`).
    pub key: String,
    /// What is wrong.
    pub problem: String,
    /// How to correct it.
    pub fix: String,
}

/// Every problem found; the layer is not built.
#[derive(Debug, Clone)]
pub struct ConfigError {
    /// The file read, if the policy came from one.
    pub file: Option<PathBuf>,
    /// Every problem, in order.
    pub issues: Vec<Issue>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self
            .file
            .as_ref()
            .map_or("auth layer".to_string(), |p| p.display().to_string());
        writeln!(f, "{file}: {} configuration error(s)", self.issues.len())?;
        for i in &self.issues {
            writeln!(
                f,
                "  {file}: {}: {}\n      fix: {}",
                i.key, i.problem, i.fix
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// One route's policy as written (`[[routes]]`, policy keys only).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    pub(super) name: Option<String>,
    pub(super) path: String,
    pub(super) methods: Option<Vec<String>>,
    pub(super) host: Option<String>,
    pub(super) auth: Option<String>,
    #[serde(default)]
    pub(super) scopes: Vec<String>,
    #[serde(default)]
    pub(super) any_scopes: Vec<String>,
    #[serde(default)]
    pub(super) roles: Vec<String>,
}

pub(super) fn strings<I: IntoIterator<Item = S>, S: Into<String>>(v: I) -> Vec<String> {
    v.into_iter().map(Into::into).collect()
}

impl RouteSpec {
    /// A route matching `path` (a `gateway.toml` pattern: `/orders/{id}`,
    /// `/orders/**`) that needs a valid token.
    pub fn new(path: &str) -> RouteSpec {
        RouteSpec {
            path: path.into(),
            ..RouteSpec::default()
        }
    }
    /// Every one of these scopes is required.
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, s: I) -> Self {
        self.scopes = strings(s);
        self
    }
    /// At least one of these scopes is required.
    pub fn any_scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, s: I) -> Self {
        self.any_scopes = strings(s);
        self
    }
    /// At least one of these roles is required.
    pub fn roles<I: IntoIterator<Item = S>, S: Into<String>>(mut self, s: I) -> Self {
        self.roles = strings(s);
        self
    }
    /// Only these methods (`GET` admits `HEAD`).
    pub fn methods<I: IntoIterator<Item = S>, S: Into<String>>(mut self, m: I) -> Self {
        self.methods = Some(strings(m));
        self
    }
    /// Only this host.
    pub fn host(mut self, host: &str) -> Self {
        self.host = Some(host.into());
        self
    }
    /// No token needed (`auth = "none"`).
    pub fn public(mut self) -> Self {
        self.auth = Some("none".into());
        self
    }
    /// A token checked when present (`auth = "optional"`).
    pub fn optional(mut self) -> Self {
        self.auth = Some("optional".into());
        self
    }
    /// The name in logs.
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.into());
        self
    }
}
