//! What a policy's key is made of (`key = "ip+subject"`, [`KeySpec`]) and the key of
//! one request ([`PolicySpec::key_of`]). Subjects and clients are per issuer; IPv6
//! clients are keyed by their `ipv6_prefix` network (a /64 by default: one host holds
//! a whole /64 and could otherwise rotate addresses for a fresh budget each);
//! IPv4-mapped IPv6 addresses count as the IPv4 address.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName};

use super::PolicySpec;

/// One part of a policy's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyPart {
    Ip,
    Subject,
    ClientId,
    Route,
    Header(HeaderName),
    /// The username of a login attempt (the `login` policy only).
    Username,
}

/// What a request's key is made of.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeySpec(pub Vec<KeyPart>);

impl KeySpec {
    /// `"ip+subject"`, `"header:x-tenant"`…; the error is a sentence for `check`.
    pub fn parse(s: &str) -> Result<KeySpec, String> {
        let mut parts = Vec::new();
        for p in s.split('+').map(str::trim) {
            let part = match p {
                "ip" => KeyPart::Ip,
                "subject" => KeyPart::Subject,
                "client_id" => KeyPart::ClientId,
                "route" => KeyPart::Route,
                "username" => KeyPart::Username,
                _ => match p.strip_prefix("header:") {
                    Some(h) => KeyPart::Header(
                        HeaderName::from_bytes(h.as_bytes())
                            .map_err(|_| format!("\"{h}\" is not a header name"))?,
                    ),
                    None => {
                        return Err(format!(
                            "\"{p}\" is not a key part (ip, subject, client_id, route, header:NAME, username)"
                        ))
                    }
                },
            };
            if parts.contains(&part) {
                return Err(format!("\"{p}\" appears twice"));
            }
            parts.push(part);
        }
        Ok(KeySpec(parts))
    }

    /// Whether the key needs the verified caller (applied after authorization).
    pub fn needs_identity(&self) -> bool {
        self.0
            .iter()
            .any(|p| matches!(p, KeyPart::Subject | KeyPart::ClientId))
    }
}

/// What a key is built from.
#[derive(Debug, Clone, Copy)]
pub struct KeyInput<'a> {
    pub ip: IpAddr,
    /// The verified token's issuer: subjects (and client ids) are per issuer, so an
    /// external IdP's `sub = "alice"` never shares our alice's budget.
    pub issuer: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub route: &'a str,
    pub headers: &'a HeaderMap,
    pub username: Option<&'a str>,
}

impl PolicySpec {
    /// The client address as a key: IPv4 as is, IPv6 as its `ipv6_prefix` network.
    fn ip_key(&self, ip: IpAddr) -> String {
        match ip.to_canonical() {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) if self.ipv6_prefix >= 128 => v6.to_string(),
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.ipv6_prefix))
                    .unwrap_or(0);
                format!(
                    "{}/{}",
                    std::net::Ipv6Addr::from(bits & mask),
                    self.ipv6_prefix
                )
            }
        }
    }

    /// The key of a request; parts are separated by a byte no header value holds.
    pub fn key_of(&self, k: &KeyInput<'_>) -> String {
        let mut out = String::new();
        for p in &self.key.0 {
            if !out.is_empty() {
                out.push('\u{1f}');
            }
            match p {
                KeyPart::Ip => out.push_str(&self.ip_key(k.ip)),
                KeyPart::Subject => match k.subject {
                    Some(s) => {
                        out.push_str("s:");
                        out.push_str(k.issuer.unwrap_or(""));
                        out.push('\u{1e}');
                        out.push_str(s);
                    }
                    None => out.push_str(&format!("ip:{}", self.ip_key(k.ip))),
                },
                KeyPart::ClientId => match (k.client_id, k.subject) {
                    (Some(c), _) => {
                        out.push_str("c:");
                        out.push_str(k.issuer.unwrap_or(""));
                        out.push('\u{1e}');
                        out.push_str(c);
                    }
                    // A token without a client: its subject, marked apart so that a
                    // subject named like a client never shares that client's budget.
                    (None, Some(s)) => {
                        out.push_str("cs:");
                        out.push_str(k.issuer.unwrap_or(""));
                        out.push('\u{1e}');
                        out.push_str(s);
                    }
                    (None, None) => out.push_str(&format!("ip:{}", self.ip_key(k.ip))),
                },
                KeyPart::Route => out.push_str(k.route),
                KeyPart::Header(h) => {
                    for v in k.headers.get_all(h) {
                        out.push_str(&String::from_utf8_lossy(v.as_bytes()));
                        out.push(',');
                    }
                }
                KeyPart::Username => out.push_str(k.username.unwrap_or("")),
            }
        }
        out
    }
}
