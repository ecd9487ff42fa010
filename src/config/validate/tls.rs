//! `[server.tls]` → [`TlsSettings`]: the files are read and the rustls configuration
//! is built here, so a certificate that does not parse or a key that does not match
//! it is refused by `portcullis check` and at load, with the file and the fix.

use std::path::Path;

use http::HeaderValue;

use crate::config::file::TlsFile;
use crate::tls::{ClientAuth, TlsSettings};

use super::Issues;

pub(super) fn tls(issues: &mut Issues, t: &TlsFile, base_dir: &Path) -> Option<TlsSettings> {
    let before = issues.0.len();
    let client_auth = match (t.client_auth.as_deref(), &t.client_ca) {
        (None, None) | (Some("none"), _) => ClientAuth::Off,
        (None | Some("required"), Some(_)) => ClientAuth::Required,
        (Some("optional"), Some(_)) => ClientAuth::Optional,
        (Some("optional" | "required"), None) => {
            issues.add(
                "server.tls.client_auth",
                "asks for client certificates but no client_ca says who signs them",
                "set server.tls.client_ca to a PEM file of the CA certificates",
            );
            ClientAuth::Off
        }
        (Some(other), _) => {
            issues.add(
                "server.tls.client_auth",
                format!("\"{other}\" is not a mode"),
                "use \"none\", \"optional\" or \"required\"",
            );
            ClientAuth::Off
        }
    };
    let tls13_only = match t.min_version.as_str() {
        "1.2" => false,
        "1.3" => true,
        other => {
            issues.add(
                "server.tls.min_version",
                format!("\"{other}\" is not a TLS version this gateway speaks"),
                "use \"1.2\" (TLS 1.2 and 1.3) or \"1.3\"",
            );
            false
        }
    };
    let hsts = t.hsts.as_deref().and_then(|h| {
        let age = issues.duration("server.tls.hsts".into(), h);
        let sub = if t.hsts_include_subdomains {
            "; includeSubDomains"
        } else {
            ""
        };
        HeaderValue::from_str(&format!("max-age={}{sub}", age.as_secs())).ok()
    });
    let redirect_listen = t.redirect_listen.as_deref().and_then(|r| {
        r.parse()
            .map_err(|_| {
                issues.add(
                    "server.tls.redirect_listen",
                    format!("\"{r}\" is not an IP address with a port"),
                    "write it as IP:PORT, e.g. \"0.0.0.0:80\"",
                )
            })
            .ok()
    });
    let watch_interval =
        issues.duration_or_zero("server.tls.watch_interval".into(), &t.watch_interval);
    let settings = TlsSettings {
        cert: base_dir.join(&t.cert),
        key: base_dir.join(&t.key),
        client_ca: t.client_ca.as_ref().map(|c| base_dir.join(c)),
        client_auth,
        tls13_only,
        hsts,
        redirect_listen,
        watch_interval,
    };
    if issues.0.len() > before {
        return None;
    }
    if let Err(e) = crate::tls::build(&settings) {
        let fix = match e.key {
            "cert" => "give a PEM certificate chain, leaf first (relative paths start at the config file's folder)",
            "key" => "give the PEM private key (PKCS#8, RSA or EC) of the certificate's public key",
            "client_ca" => "give the PEM certificates of the CA that signs client certificates",
            _ => "check the TLS settings",
        };
        issues.add(format!("server.tls.{}", e.key), e.problem, fix);
        return None;
    }
    Some(settings)
}
