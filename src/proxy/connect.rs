//! Opening a connection to an upstream: TCP (with `connect_timeout`), then TLS for
//! `https://` upstreams, then the HTTP handshake — HTTP/1.1, or HTTP/2 when the
//! upstream says `http2 = true` (prior knowledge over plain TCP, ALPN over TLS, where
//! the upstream may still pick HTTP/1.1).
//!
//! TLS to upstreams (rustls, the *ring* provider passed explicitly): the server is
//! verified against the webpki roots (Mozilla's, compiled in: the same in a
//! distroless container as on a laptop) or the PEM `ca_file`, under the URL's host or
//! `sni`; a client certificate (`client_cert` + `client_key`) is presented when the
//! upstream asks (mutual TLS). A certificate that does not verify is never accepted:
//! the request gets `502` and the log line says why (`invalid peer certificate:
//! UnknownIssuer`, …). An upgrade (WebSocket) is always sent over HTTP/1.1: such a
//! request gets a connection of its own that offers `http/1.1` only.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_rustls::TlsConnector;

use super::pool::SendError;
use crate::body::LimitedBody;
use crate::tls::{provider, read_certs, read_key};

/// `[[upstreams]]` TLS settings, as configured (plain data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    /// The name sent in SNI and verified against the certificate.
    pub server_name: String,
    /// PEM CA certificates to trust instead of the webpki roots.
    pub ca_file: Option<PathBuf>,
    /// PEM chain and key presented to the upstream.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl UpstreamTls {
    /// The rustls client configuration; `alpn` lists the protocols offered.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Result<Arc<rustls::ClientConfig>, String> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_file {
            Some(ca) => {
                for c in read_certs("ca_file", ca).map_err(|e| e.problem)? {
                    roots
                        .add(c)
                        .map_err(|e| format!("{}: unusable CA: {e}", ca.display()))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots);
        let mut config = match &self.client_cert {
            Some((cert, key)) => {
                let chain = read_certs("client_cert", cert).map_err(|e| e.problem)?;
                let key = read_key("client_key", key).map_err(|e| e.problem)?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| format!("{}: {e}", cert.display()))?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

/// A connection's request sender: HTTP/1.1 (one request at a time, pooled when
/// idle) or HTTP/2 (multiplexed, shared).
pub enum Sender {
    H1(http1::SendRequest<LimitedBody>),
    H2(http2::SendRequest<LimitedBody>),
}

/// How to open connections to one upstream, built once per pool.
pub struct Connector {
    address: String,
    timeout: Duration,
    http2: bool,
    /// The connectors offering `h2` + `http/1.1` (or `http/1.1` only) and the name.
    /// `Err`: an `https://` upstream whose TLS settings could not be built: every
    /// connection fails (`502`), never falls back to plain TCP.
    tls: Option<Result<Tls, String>>,
}

/// The connectors offering `h2` + `http/1.1` and `http/1.1` only, and the name.
type Tls = (TlsConnector, TlsConnector, ServerName<'static>);

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("address", &self.address)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// Builds the TLS configuration now; the files were checked at load, so an error
    /// here (a file changed since) is logged and every connection will fail with 502.
    pub fn new(
        address: &str,
        timeout: Duration,
        http2: bool,
        tls: Option<&UpstreamTls>,
    ) -> Connector {
        let tls = tls.map(|t| {
            let both: &[&[u8]] = if http2 {
                &[b"h2", b"http/1.1"]
            } else {
                &[b"http/1.1"]
            };
            let built = t
                .client_config(both)
                .and_then(|a| Ok((a, t.client_config(&[b"http/1.1"])?)))
                .and_then(|(a, b)| {
                    let name = ServerName::try_from(t.server_name.clone())
                        .map_err(|e| format!("{}: {e}", t.server_name))?;
                    Ok((TlsConnector::from(a), TlsConnector::from(b), name))
                });
            built.inspect_err(|e| {
                tracing::error!(error = %e, "upstream TLS settings unusable: every request to it fails")
            })
        });
        Connector {
            address: address.to_string(),
            timeout,
            http2,
            tls,
        }
    }

    /// Whether this upstream is reached over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Opens a connection; `upgrade`: the request asks for a protocol switch, which
    /// only HTTP/1.1 carries.
    /// `slot` is the pool's permit for one more connection, held while it is open.
    pub async fn connect(
        &self,
        upgrade: bool,
        slot: OwnedSemaphorePermit,
    ) -> Result<Sender, SendError> {
        if let Some(Err(e)) = &self.tls {
            // Never a plain connection to an https:// upstream.
            return Err(SendError::Tls(std::io::Error::other(e.clone())));
        }
        let tcp = tokio::time::timeout(self.timeout, TcpStream::connect(self.address.as_str()))
            .await
            .map_err(|_| SendError::ConnectTimeout)?
            .map_err(SendError::Connect)?;
        let _ = tcp.set_nodelay(true);
        let (both, h1_only, name) = match &self.tls {
            None => return handshake(tcp, self.http2 && !upgrade, slot).await,
            Some(Ok(tls)) => tls,
            Some(Err(e)) => return Err(SendError::Tls(std::io::Error::other(e.clone()))),
        };
        let connector = if upgrade { h1_only } else { both };
        let tls = tokio::time::timeout(self.timeout, connector.connect(name.clone(), tcp))
            .await
            .map_err(|_| SendError::ConnectTimeout)?
            .map_err(SendError::Tls)?;
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        handshake(tls, h2, slot).await
    }
}

async fn handshake<I>(io: I, h2: bool, slot: OwnedSemaphorePermit) -> Result<Sender, SendError>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if h2 {
        // PINGs notice an upstream that vanished without a FIN: the shared connection
        // is then replaced instead of timing every request out.
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true)
            .handshake(TokioIo::new(io))
            .await
            .map_err(SendError::Request)?;
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream HTTP/2 connection ended with an error");
            }
        });
        return Ok(Sender::H2(sender));
    }
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(io))
        .await
        .map_err(SendError::Request)?;
    tokio::spawn(async move {
        let _slot = slot;
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "upstream connection ended with an error");
        }
    });
    Ok(Sender::H1(sender))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An https:// upstream whose TLS settings cannot be built (a CA file gone since
    /// the configuration was checked) fails every connection: never plain TCP.
    #[tokio::test]
    async fn unusable_tls_settings_never_fall_back_to_plain_tcp() {
        let tls = UpstreamTls {
            server_name: "localhost".into(),
            ca_file: Some(PathBuf::from("/nonexistent/ca.pem")),
            client_cert: None,
        };
        let c = Connector::new("127.0.0.1:9", Duration::from_secs(1), false, Some(&tls));
        assert!(c.is_tls());
        let slot = Arc::new(tokio::sync::Semaphore::new(1))
            .try_acquire_owned()
            .expect("a permit");
        match c.connect(false, slot).await {
            Err(SendError::Tls(_)) => {}
            other => panic!("expected a TLS error, got {:?}", other.err()),
        }
    }
}
