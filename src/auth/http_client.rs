//! The HTTP client of JWKS fetches and span export: reqwest over rustls with the
//! *ring* provider and the webpki roots passed explicitly, so that nothing installs
//! a process-wide crypto provider behind an embedding application's back.

use std::sync::Arc;

/// A reqwest client builder with its TLS configured.
pub fn builder() -> reqwest::ClientBuilder {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    match rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(b) => {
            let mut config = b.with_root_certificates(roots).with_no_client_auth();
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            reqwest::Client::builder().tls_backend_preconfigured(config)
        }
        // ring supports TLS 1.2 and 1.3: never taken.
        Err(_) => reqwest::Client::builder(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_client_builds_without_a_process_wide_provider() {
        assert!(super::builder().build().is_ok());
    }
}
