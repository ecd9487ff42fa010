//! Real OAuth clients: authlib, requests and PyJWT (tests/clients/oauth_client.py)
//! against the gateway, once per signing algorithm (RS256, ES256, EdDSA).
//!
//! The Python environment is made by `.ci/run` (`target/pyenv`); `PORTCULLIS_PYTHON`
//! may point at another interpreter. Missing, the test fails and says how to make it.

use std::path::PathBuf;
use std::process::Command;

use crate::support::*;
use crate::token::{config, sqlite};

pub(crate) fn python() -> PathBuf {
    let p = std::env::var_os("PORTCULLIS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/target/pyenv/bin/python"
            ))
        });
    assert!(
        p.exists(),
        "no Python environment at {} — run `bash .ci/run`, or: python3 -m venv target/pyenv && target/pyenv/bin/pip install authlib requests 'PyJWT[crypto]'",
        p.display()
    );
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authlib_and_pyjwt_verify_tokens_of_every_algorithm() {
    let py = python();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/oauth_client.py");
    for (alg, kid, file) in [
        ("ES256", "es", "es256.key"),
        ("RS256", "rs", "rs256.key"),
        ("EdDSA", "ed", "ed25519.key"),
    ] {
        let dir = tempfile::tempdir().expect("tmp");
        let up = Upstream::start().await;
        let text = config(&sqlite(dir.path()), "login_rate = \"1000/1s\"", "")
            .replace("signing_key = \"es\"", &format!("signing_key = \"{kid}\""))
            .replace(
                &format!("kid = \"es\"\nalg = \"ES256\"\nprivate_key = \"{FIX}/es256.key\""),
                &format!("kid = \"{kid}\"\nalg = \"{alg}\"\nprivate_key = \"{FIX}/{file}\""),
            );
        let gw = gateway(&text, Some(up.addr)).await;
        let base = format!("http://{}", gw.addr);
        let out = tokio::task::spawn_blocking({
            let py = py.clone();
            move || Command::new(py).arg(script).arg(&base).arg(alg).output()
        })
        .await
        .expect("join")
        .expect("python runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("all checks passed"),
            "{alg}:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
