//! A throwaway PKI made with the `openssl` command: CAs, server certificates (RSA,
//! EC) and client certificates, in a temporary directory.

use std::path::PathBuf;
use std::process::Command;

pub struct Pki {
    dir: tempfile::TempDir,
}

/// The kinds of private key a certificate may be made with, as PEM encodings differ.
#[derive(Debug, Clone, Copy)]
pub enum KeyKind {
    /// `BEGIN PRIVATE KEY` (PKCS#8), RSA 2048.
    RsaPkcs8,
    /// `BEGIN RSA PRIVATE KEY` (PKCS#1).
    RsaPkcs1,
    /// `BEGIN EC PRIVATE KEY` (SEC1), P-256.
    EcSec1,
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl command runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    pub fn new() -> Pki {
        Pki {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// `file` as a string, for configuration text.
    pub fn p(&self, file: &str) -> String {
        self.path(file).display().to_string()
    }

    fn key(&self, name: &str, kind: KeyKind) {
        let out = self.p(&format!("{name}.key"));
        match kind {
            KeyKind::RsaPkcs8 => openssl(&[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                &out,
            ]),
            KeyKind::RsaPkcs1 => openssl(&["genrsa", "-traditional", "-out", &out, "2048"]),
            KeyKind::EcSec1 => openssl(&[
                "ecparam",
                "-genkey",
                "-name",
                "prime256v1",
                "-noout",
                "-out",
                &out,
            ]),
        }
    }

    /// A self-signed CA: `NAME.pem`, `NAME.key`.
    pub fn ca(&self, name: &str) {
        self.key(name, KeyKind::EcSec1);
        openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            &self.p(&format!("{name}.key")),
            "-out",
            &self.p(&format!("{name}.pem")),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
    }

    /// A certificate signed by `ca`: `NAME.pem` (leaf then CA: a chain), `NAME.key`.
    /// `server`: for `localhost` and `127.0.0.1`; else a client certificate.
    pub fn leaf(&self, name: &str, ca: &str, kind: KeyKind, server: bool) {
        self.leaf_named(name, ca, kind, server, &format!("/CN={name}"));
    }

    /// [`Pki::leaf`] with an `openssl -subj` subject of its own.
    pub fn leaf_named(&self, name: &str, ca: &str, kind: KeyKind, server: bool, subject: &str) {
        self.key(name, kind);
        let csr = self.p(&format!("{name}.csr"));
        openssl(&[
            "req",
            "-new",
            "-key",
            &self.p(&format!("{name}.key")),
            "-out",
            &csr,
            "-subj",
            subject,
        ]);
        let ext = self.path(&format!("{name}.ext"));
        let usage = if server {
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
        } else {
            "subjectAltName=email:someone@example.com\nextendedKeyUsage=clientAuth\n"
        };
        std::fs::write(
            &ext,
            format!("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n{usage}"),
        )
        .expect("write ext");
        let leaf = self.p(&format!("{name}.leaf.pem"));
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &self.p(&format!("{ca}.pem")),
            "-CAkey",
            &self.p(&format!("{ca}.key")),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext.display().to_string(),
            "-out",
            &leaf,
        ]);
        let chain = [
            std::fs::read_to_string(&leaf).expect("leaf"),
            std::fs::read_to_string(self.path(&format!("{ca}.pem"))).expect("ca"),
        ]
        .concat();
        std::fs::write(self.path(&format!("{name}.pem")), chain).expect("chain");
    }

    /// The leaf certificate's DER.
    pub fn der(&self, name: &str) -> Vec<u8> {
        let out = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(self.path(&format!("{name}.leaf.pem")))
            .output()
            .expect("openssl x509");
        assert!(out.status.success());
        out.stdout
    }
}
