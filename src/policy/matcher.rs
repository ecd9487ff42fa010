//! Route patterns and the router: canonical path + method + host → one route.
//!
//! A pattern is a canonical path whose segments are literals, `{name}` (exactly one
//! non-empty segment) or, as the last segment only, `**` (zero or more segments:
//! `/items/**` matches `/items`, `/items/` and `/items/a/b`).
//!
//! **Most specific route wins.** Patterns are compared segment by segment from the
//! left: a literal beats `{param}`, which beats `**`; a pattern that ends where the
//! path ends beats one that continues with `**`. On equal paths a route with a `host`
//! beats one without, then the earlier route in the file wins. The first route in that
//! order whose `methods` include the request method is chosen (`GET` also admits
//! `HEAD`); if routes match the path but none the method, the answer is `405` with
//! `Allow`; if none matches the path, `404`.

use std::cmp::Ordering;

use http::Method;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Literal(String),
    Param,
}

/// A compiled path pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    raw: String,
    segs: Vec<Seg>,
    prefix: bool,
}

impl Pattern {
    /// Compiles a pattern; the error says what to write instead.
    pub(crate) fn parse(raw: &str) -> Result<Pattern, String> {
        let Some(rest) = raw.strip_prefix('/') else {
            return Err(format!("\"{raw}\" must start with '/'"));
        };
        let mut segs = Vec::new();
        let mut prefix = false;
        let parts: Vec<&str> = rest.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            if *part == "**" {
                if !last {
                    return Err(format!(
                        "\"{raw}\": '**' may only be the last segment, as in \"/items/**\""
                    ));
                }
                prefix = true;
            } else if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(format!(
                        "\"{raw}\": parameter \"{part}\" needs a name of letters, digits or '_', as in \"{{id}}\""
                    ));
                }
                segs.push(Seg::Param);
            } else if part.contains(['{', '}', '*']) {
                return Err(format!(
                    "\"{raw}\": segment \"{part}\" mixes literal text with '{{', '}}' or '*'; a segment is a literal, \"{{name}}\" or a final \"**\""
                ));
            } else if part.is_empty() && !last {
                return Err(format!("\"{raw}\" contains '//'; write single slashes"));
            } else {
                segs.push(Seg::Literal((*part).to_string()));
            }
        }
        // Literals must already be canonical, or they could never match a request.
        let literal_path: String = segs
            .iter()
            .map(|s| match s {
                Seg::Literal(l) => format!("/{l}"),
                Seg::Param => "/x".to_string(),
            })
            .collect();
        let literal_path = if literal_path.is_empty() {
            "/".to_string()
        } else {
            literal_path
        };
        match crate::policy::path::canonicalize(&literal_path) {
            Ok(c) if c == literal_path => {}
            Ok(c) => {
                return Err(format!(
                    "\"{raw}\" is not canonical (requests would arrive as \"{c}\"); write it in canonical form"
                ))
            }
            Err(e) => return Err(format!("\"{raw}\" can never match a request: {e}")),
        }
        Ok(Pattern {
            raw: raw.to_string(),
            segs,
            prefix,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Whether the pattern ends with `/**`.
    pub fn is_prefix(&self) -> bool {
        self.prefix
    }

    /// The literal segments before the first parameter or wildcard, as a path.
    pub(crate) fn literal_prefix(&self) -> String {
        let mut out = String::new();
        for s in &self.segs {
            match s {
                Seg::Literal(l) if !l.is_empty() => {
                    out.push('/');
                    out.push_str(l);
                }
                _ => break,
            }
        }
        out
    }

    /// Whether the pattern matches a canonical path split by [`split_path`].
    pub(crate) fn matches_segments(&self, path: &[&str]) -> bool {
        self.matches(path)
    }

    /// Matches pre-split segments of a canonical path.
    fn matches(&self, path: &[&str]) -> bool {
        let n = self.segs.len();
        if path.len() < n || (!self.prefix && path.len() != n) {
            return false;
        }
        self.segs.iter().zip(path).all(|(seg, p)| match seg {
            Seg::Literal(l) => l == p,
            Seg::Param => !p.is_empty(),
        })
    }

    /// Specificity ranks, compared lexicographically (greater = more specific).
    fn ranks(&self) -> impl Iterator<Item = u8> + '_ {
        self.segs
            .iter()
            .map(|s| match s {
                Seg::Literal(_) => 3,
                Seg::Param => 2,
            })
            .chain(std::iter::once(if self.prefix { 1 } else { 4 }))
    }

    /// Orders patterns from most to least specific.
    pub(crate) fn specificity_cmp(&self, other: &Pattern) -> Ordering {
        other.ranks().cmp(self.ranks())
    }

    /// Two patterns that match exactly the same paths.
    pub(crate) fn same_shape(&self, other: &Pattern) -> bool {
        self.segs == other.segs && self.prefix == other.prefix
    }
}

/// Splits a canonical path into the segments patterns match against
/// (`/` → `[""]`, `/a/` → `["a", ""]`).
pub(crate) fn split_path(path: &str) -> Vec<&str> {
    path.strip_prefix('/').unwrap_or(path).split('/').collect()
}

/// A `Host` value (or HTTP/2 authority) as routes compare it: lower-case, without the
/// port (`API.Example.com:8080` → `api.example.com`, `[::1]:80` → `[::1]`); `None` if
/// it is not a valid authority.
pub(crate) fn normalize_host(raw: &str) -> Option<String> {
    let authority: http::uri::Authority = raw.parse().ok()?;
    Some(authority.host().to_ascii_lowercase())
}

/// The methods a route accepts; `None` = any.
pub(crate) fn method_allowed(methods: Option<&[Method]>, m: &Method) -> bool {
    match methods {
        None => true,
        Some(list) => list
            .iter()
            .any(|x| x == m || (*m == Method::HEAD && *x == Method::GET)),
    }
}

/// Anything the router can pick: the route's pattern, host and methods.
pub trait Routable {
    /// The path pattern.
    fn pattern(&self) -> &Pattern;
    /// The host it is limited to (lower-case), if any.
    fn host(&self) -> Option<&str>;
    /// The methods it accepts; `None`: every method.
    fn methods(&self) -> Option<&[Method]>;
}

#[cfg(test)]
/// What the router decided.
#[derive(Debug)]
pub(crate) enum Matched<'a, R> {
    Route(&'a R),
    MethodNotAllowed(Vec<Method>),
    NotFound,
}

/// Routes sorted most specific first.
#[derive(Debug)]
pub struct Router<R> {
    routes: Vec<R>,
    uses_hosts: bool,
}

impl<R: Routable> Router<R> {
    /// Sorts the routes by specificity (stable, so file order breaks ties).
    pub(crate) fn new(mut routes: Vec<R>) -> Router<R> {
        routes.sort_by(|a, b| {
            a.pattern()
                .specificity_cmp(b.pattern())
                .then_with(|| b.host().is_some().cmp(&a.host().is_some()))
        });
        let uses_hosts = routes.iter().any(|r| r.host().is_some());
        Router { routes, uses_hosts }
    }

    /// Whether any route names a host (if none does, the request's host is not needed).
    pub(crate) fn uses_hosts(&self) -> bool {
        self.uses_hosts
    }

    /// Routes in match order.
    pub fn routes(&self) -> &[R] {
        &self.routes
    }

    #[cfg(test)]
    /// Finds the route for a canonical path. `host` is the request's host, lower-case,
    /// without the port.
    pub(crate) fn find(&self, method: &Method, host: Option<&str>, path: &str) -> Matched<'_, R> {
        match self.find_index(method, host, path) {
            Ok(i) => Matched::Route(&self.routes[i]),
            Err(Some(allow)) => Matched::MethodNotAllowed(allow),
            Err(None) => Matched::NotFound,
        }
    }

    /// Finds the route for a canonical path, by position in [`Router::routes`]:
    /// `Ok(index)`, or `Err` with the methods the path allows (`None`: no route has the
    /// path). `host` is the request's host, lower-case, without the port.
    pub(crate) fn find_index(
        &self,
        method: &Method,
        host: Option<&str>,
        path: &str,
    ) -> Result<usize, Option<Vec<Method>>> {
        let segs = split_path(path);
        let mut path_matched = false;
        for (i, r) in self.routes.iter().enumerate() {
            if let Some(h) = r.host() {
                if host != Some(h) {
                    continue;
                }
            }
            if !r.pattern().matches(&segs) {
                continue;
            }
            if method_allowed(r.methods(), method) {
                return Ok(i);
            }
            path_matched = true;
        }
        if !path_matched {
            return Err(None);
        }
        let mut allow: Vec<Method> = Vec::new();
        for r in &self.routes {
            if r.host().is_some_and(|h| host != Some(h)) || !r.pattern().matches(&segs) {
                continue;
            }
            for m in r.methods().unwrap_or(&[]) {
                if !allow.contains(m) {
                    allow.push(m.clone());
                }
                if *m == Method::GET && !allow.contains(&Method::HEAD) {
                    allow.push(Method::HEAD);
                }
            }
        }
        Err(Some(allow))
    }
}

#[cfg(test)]
mod tests;
