//! TLS termination for the public listener (`[server.tls]`): rustls with the *ring*
//! provider passed explicitly (never installed process-wide, so an embedding
//! application's choice is left alone), TLS 1.2 and 1.3 (or 1.3 only), ALPN `h2` and
//! `http/1.1`, session tickets, and optional client certificates verified against
//! `client_ca`.
//!
//! The certificate, key and client CA are files. [`TlsState`] holds the rustls
//! configuration in force; every new connection takes the current one, so a swap
//! never touches a connection already open. It is rebuilt on reload (`SIGHUP`) and
//! when the files change (their length or modification time, checked every
//! `watch_interval` on the background runtime). A new file that cannot be used — a key
//! that does not match the certificate yet, half-written PEM — is logged and the
//! configuration in force stays; the next check tries again.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use http::HeaderValue;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig as RustlsConfig, SupportedProtocolVersion};

/// Whether clients must, may or need not present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No certificate is asked for.
    Off,
    /// Asked for; a connection without one is served, one with an unverifiable one is
    /// refused at the handshake.
    Optional,
    /// A certificate signed by `client_ca` is needed to complete the handshake.
    Required,
}

/// `[server.tls]`, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub key: PathBuf,
    /// PEM CA certificates that sign client certificates.
    pub client_ca: Option<PathBuf>,
    /// Whether a client certificate is asked for.
    pub client_auth: ClientAuth,
    /// Refuse TLS 1.2 (`min_version = "1.3"`).
    pub tls13_only: bool,
    /// `Strict-Transport-Security` on every answer over TLS, rendered.
    pub hsts: Option<HeaderValue>,
    /// A plain-HTTP listener that redirects every request to HTTPS (`308`).
    pub redirect_listen: Option<SocketAddr>,
    /// How often the files are checked for a change; zero: only on reload.
    pub watch_interval: Duration,
}

/// The TLS provider, passed to every rustls builder of the gateway.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Which file a problem is in (`cert`, `key` or `client_ca`) and what it is.
#[derive(Debug, Clone)]
pub struct TlsProblem {
    /// The key under `[server.tls]`.
    pub key: &'static str,
    /// What is wrong, with the file's path.
    pub problem: String,
}

fn problem(key: &'static str, problem: String) -> TlsProblem {
    TlsProblem { key, problem }
}

/// Reads the PEM certificates of `path` (at least one).
pub fn read_certs(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsProblem> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| problem(key, format!("cannot read {}: {e}", path.display())))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| problem(key, format!("{} is not PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(problem(
            key,
            format!("{} holds no CERTIFICATE block", path.display()),
        ));
    }
    Ok(certs)
}

/// Reads the first PEM private key of `path`.
pub fn read_key(key: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsProblem> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        problem(
            key,
            format!("no usable private key in {}: {e}", path.display()),
        )
    })
}

/// Reads the files and builds the rustls configuration of the listener.
pub fn build(s: &TlsSettings) -> Result<Arc<RustlsConfig>, TlsProblem> {
    let certs = read_certs("cert", &s.cert)?;
    let key = read_key("key", &s.key)?;
    let versions: &[&SupportedProtocolVersion] = if s.tls13_only {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let builder = RustlsConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|e| problem("min_version", e.to_string()))?;
    let builder = match (&s.client_ca, s.client_auth) {
        (Some(ca), ClientAuth::Optional | ClientAuth::Required) => {
            let mut roots = RootCertStore::empty();
            for c in read_certs("client_ca", ca)? {
                roots.add(c).map_err(|e| {
                    problem("client_ca", format!("{}: unusable CA: {e}", ca.display()))
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            let verifier = if s.client_auth == ClientAuth::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| problem("client_ca", format!("{}: {e}", ca.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        problem(
            "key",
            format!("{} cannot serve {}: {e}", s.key.display(), s.cert.display()),
        )
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // Stateless resumption: a returning client skips the key exchange's signature.
    if let Ok(ticketer) = rustls::crypto::ring::Ticketer::new() {
        config.ticketer = ticketer;
    }
    Ok(Arc::new(config))
}

/// What the files looked like when last read: length and modification time of each.
type Stamp = Vec<Option<(u64, SystemTime)>>;

fn stamp(s: &TlsSettings) -> Stamp {
    [Some(&s.cert), Some(&s.key), s.client_ca.as_ref()]
        .into_iter()
        .flatten()
        .map(|p| {
            let m = std::fs::metadata(p).ok()?;
            Some((m.len(), m.modified().ok()?))
        })
        .collect()
}

/// The listener's TLS configuration in force, swapped on reload or file change.
#[derive(Debug)]
pub struct TlsState {
    current: ArcSwap<RustlsConfig>,
    /// The settings the configuration in force was built from, and the files' stamp.
    source: Mutex<(TlsSettings, Stamp)>,
}

impl TlsState {
    /// Builds the first configuration; the gateway refuses to start without one.
    pub fn new(s: &TlsSettings) -> Result<Arc<TlsState>, TlsProblem> {
        let stamp = stamp(s);
        let config = build(s)?;
        Ok(Arc::new(TlsState {
            current: ArcSwap::new(config),
            source: Mutex::new((s.clone(), stamp)),
        }))
    }

    /// The acceptor for a new connection.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.load_full())
    }

    /// Re-reads the files of `s` (a reload): swaps in the new configuration, or logs
    /// why not and keeps the one in force. `s` becomes the settings the file watch
    /// follows, whether or not they could be used (the next change retries them).
    pub fn reload(&self, s: &TlsSettings) {
        let mut source = self.source.lock().unwrap_or_else(|e| e.into_inner());
        *source = (s.clone(), stamp(s));
        self.rebuild(&source.0);
    }

    /// Rebuilds when a file changed since it was last read. Compared and built under
    /// the same lock as [`TlsState::reload`], so a file change seen at the moment of a
    /// reload can never bring back the settings the reload replaced.
    pub fn reload_if_changed(&self) {
        let mut source = self.source.lock().unwrap_or_else(|e| e.into_inner());
        let now = stamp(&source.0);
        if now == source.1 {
            return;
        }
        source.1 = now;
        self.rebuild(&source.0);
    }

    fn rebuild(&self, s: &TlsSettings) {
        match build(s) {
            Ok(config) => {
                self.current.store(config);
                tracing::info!(cert = %s.cert.display(), "TLS certificate loaded");
            }
            Err(e) => {
                tracing::error!(key = e.key, problem = %e.problem, "TLS files not usable; keeping the certificate in force");
            }
        }
    }

    fn watch_interval(&self) -> Duration {
        let source = self.source.lock().unwrap_or_else(|e| e.into_inner());
        source.0.watch_interval
    }

    /// Checks the files every `watch_interval` on `rt` for as long as the state lives.
    pub fn watch(self: &Arc<TlsState>, rt: &tokio::runtime::Handle) {
        let weak: Weak<TlsState> = Arc::downgrade(self);
        rt.spawn(async move {
            loop {
                let every = match weak.upgrade() {
                    Some(s) => s.watch_interval(),
                    None => return,
                };
                // Zero: only on reload; look again later in case a reload turns it on.
                tokio::time::sleep(if every.is_zero() {
                    Duration::from_secs(5)
                } else {
                    every
                })
                .await;
                match weak.upgrade() {
                    Some(s) if !every.is_zero() => s.reload_if_changed(),
                    Some(_) => {}
                    None => return,
                }
            }
        });
    }
}

/// What a TLS connection tells the request pipeline about its client.
#[derive(Debug, Clone, Default)]
pub struct TlsPeer {
    /// The verified client certificate, if the client presented one.
    pub client_cert: Option<ClientCert>,
}

/// A client certificate that chained to `client_ca` (rustls verified it in the
/// handshake; nothing here is read before that).
#[derive(Debug, Clone)]
pub struct ClientCert {
    /// SHA-256 of the certificate (DER), base64url without padding: RFC 8705's
    /// `x5t#S256`.
    pub sha256: HeaderValue,
    /// The subject as an RFC 4514-style string (`CN=alice,O=Example`), when it is
    /// printable ASCII.
    pub subject: Option<HeaderValue>,
    /// Subject alternative names, typed: `DNS:…`, `URI:…`, `email:…`, `IP:…` (names
    /// with a space, comma or non-ASCII byte are left out).
    pub sans: Vec<String>,
}

impl ClientCert {
    /// The SANs as one header value, space-separated.
    pub fn sans_header(&self) -> Option<HeaderValue> {
        if self.sans.is_empty() {
            return None;
        }
        HeaderValue::from_str(&self.sans.join(" ")).ok()
    }
}

/// A distinguished name as RFC 4514 writes it: the last RDN first, multi-valued
/// RDNs joined by `+`, and the special characters of a value escaped (§2.4), so that
/// a CN of `bob,O=Admins` cannot read as two attributes. A value that is not a
/// string is written `#` and its hex.
pub fn rfc4514(name: &x509_parser::x509::X509Name<'_>) -> Option<String> {
    let registry = x509_parser::objects::oid_registry();
    let mut rdns = Vec::new();
    for rdn in name.iter_rdn() {
        let mut parts = Vec::new();
        for atv in rdn.iter() {
            let key = x509_parser::objects::oid2abbrev(atv.attr_type(), registry)
                .map(str::to_string)
                .unwrap_or_else(|_| atv.attr_type().to_id_string());
            let value = match atv.as_str() {
                Ok(v) => escape_rfc4514(v),
                Err(_) => {
                    let hex: String = atv
                        .attr_value()
                        .data
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect();
                    format!("#{hex}")
                }
            };
            parts.push(format!("{key}={value}"));
        }
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Some(rdns.join(","))
}

/// RFC 4514 §2.4: `"`, `+`, `,`, `;`, `<`, `>` and `\` escaped everywhere, a leading
/// space or `#` and a trailing space too.
fn escape_rfc4514(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 4);
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\\')
            || (i == 0 && (c == ' ' || c == '#'))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        if c == '\0' {
            out.push_str("\\00");
        } else {
            out.push(c);
        }
    }
    out
}

/// The subject and SANs of a certificate (DER).
fn parse_cert(der: &[u8]) -> Option<(Option<HeaderValue>, Vec<String>)> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = rfc4514(cert.subject())
        .filter(|s| !s.is_empty() && s.bytes().all(|b| (0x20..0x7f).contains(&b)))
        .and_then(|s| HeaderValue::from_str(&s).ok());
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            let typed = match name {
                GeneralName::DNSName(d) => format!("DNS:{}", d.to_ascii_lowercase()),
                GeneralName::URI(u) => format!("URI:{u}"),
                GeneralName::RFC822Name(e) => format!("email:{e}"),
                GeneralName::IPAddress(ip) => match <[u8; 4]>::try_from(*ip) {
                    Ok(v4) => format!("IP:{}", std::net::Ipv4Addr::from(v4)),
                    Err(_) => match <[u8; 16]>::try_from(*ip) {
                        Ok(v6) => format!("IP:{}", std::net::Ipv6Addr::from(v6)),
                        Err(_) => continue,
                    },
                },
                _ => continue,
            };
            if typed
                .bytes()
                .all(|b| (0x21..0x7f).contains(&b) && b != b',')
            {
                sans.push(typed);
            }
        }
    }
    Some((subject, sans))
}

impl TlsPeer {
    /// Reads the connection's verified client certificate, if any.
    pub fn of(conn: &rustls::ServerConnection) -> TlsPeer {
        use base64::Engine as _;
        let client_cert = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|leaf| {
                let digest = ring::digest::digest(&ring::digest::SHA256, leaf.as_ref());
                let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
                let sha256 = HeaderValue::from_str(&text).ok()?;
                let (subject, sans) = parse_cert(leaf.as_ref()).unwrap_or((None, Vec::new()));
                Some(ClientCert {
                    sha256,
                    subject,
                    sans,
                })
            });
        TlsPeer { client_cert }
    }

    /// Whether the client certificate satisfies a route's `client_cert` rule: any
    /// verified one, or one with a listed SAN.
    pub fn allows(peer: Option<&TlsPeer>, sans: &[String]) -> Result<(), &'static str> {
        let Some(cert) = peer.and_then(|p| p.client_cert.as_ref()) else {
            return Err("this route requires a TLS client certificate");
        };
        if sans.is_empty() || cert.sans.iter().any(|s| sans.contains(s)) {
            Ok(())
        } else {
            Err("the TLS client certificate is not one this route accepts")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4514_escapes_what_could_split_a_value() {
        assert_eq!(escape_rfc4514("bob,O=Admins"), "bob\\,O=Admins");
        assert_eq!(escape_rfc4514("#lead"), "\\#lead");
        assert_eq!(escape_rfc4514(" both "), "\\ both\\ ");
        assert_eq!(
            escape_rfc4514("a+b;c<d>e\"f\\g"),
            "a\\+b\\;c\\<d\\>e\\\"f\\\\g"
        );
        assert_eq!(escape_rfc4514("plain"), "plain");
    }
}
