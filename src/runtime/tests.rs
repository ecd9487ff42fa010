use std::path::Path;

use super::*;

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// A configuration with one HTTP upstream, a rate-limit policy, an issuer and HS256
/// verification; `secret` names the HS256 secret file.
fn config(rate: &str, upstream_port: u16, cooldown: &str, secret: &Path) -> Config {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\
         [tokens]\nissuer = \"https://gw.test\"\naudiences = [\"api\"]\n\
         [[tokens.keys]]\nkid = \"hs\"\nalg = \"HS256\"\nsecret_file = \"{secret}\"\n\
         [[issuers]]\nissuer = \"http://127.0.0.1:9\"\njwks_url = \"http://127.0.0.1:9/jwks\"\naudiences = [\"api\"]\nunknown_kid_cooldown = \"{cooldown}\"\n\
         [rate_limits.default]\nkey = \"ip\"\nrate = \"{rate}\"\n\
         [[upstreams]]\nname = \"up\"\nurl = \"http://127.0.0.1:{upstream_port}\"\n\
         [[routes]]\npath = \"/**\"\nupstream = \"up\"\n",
        secret = secret.display()
    );
    crate::config::parse_str(&text, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"))
}

fn same<T>(a: Option<&Arc<T>>, b: Option<&Arc<T>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        _ => false,
    }
}

#[tokio::test]
async fn parts_are_kept_by_their_configuration() {
    let dir = tempfile::tempdir().expect("tmp");
    let secret = dir.path().join("hs.secret");
    std::fs::copy(format!("{FIX}/hs256.secret"), &secret).expect("copy");
    let base = config("5/1m", 9001, "30s", &secret);
    let rt = Runtime::start(&base, 2).await.expect("runtime");
    let a = rt.snapshot(base);
    let b = rt.snapshot(config("5/1m", 9001, "30s", &secret));
    assert!(same(a.rate_limit(None), b.rate_limit(None)), "same policy");
    assert!(same(a.client(1, "up"), b.client(1, "up")), "same pool");
    assert!(
        Arc::ptr_eq(&a.issuers[0], &b.issuers[0]),
        "same JWKS client"
    );
    assert!(std::ptr::eq(
        a.token_cache(1).expect("cache"),
        b.token_cache(1).expect("cache")
    ));

    // Each part changes alone.
    let c = rt.snapshot(config("6/1m", 9002, "10s", &secret));
    assert!(!same(b.rate_limit(None), c.rate_limit(None)), "new policy");
    assert!(!same(b.client(0, "up"), c.client(0, "up")), "new pool");
    assert!(
        !Arc::ptr_eq(&b.issuers[0], &c.issuers[0]),
        "new JWKS client"
    );
    assert!(
        !std::ptr::eq(b.token_cache(0).expect("c"), c.token_cache(0).expect("c")),
        "an issuer changed: caches start empty"
    );

    // The key's material changed behind the same kid and path: caches start empty.
    let d = rt.snapshot(config("6/1m", 9002, "10s", &secret));
    assert!(std::ptr::eq(
        c.token_cache(0).expect("c"),
        d.token_cache(0).expect("c")
    ));
    std::fs::write(&secret, "another secret of at least 32 bytes, for the test").expect("write");
    let e = rt.snapshot(config("6/1m", 9002, "10s", &secret));
    assert!(!std::ptr::eq(
        d.token_cache(0).expect("c"),
        e.token_cache(0).expect("c")
    ));
    assert!(same(d.rate_limit(None), e.rate_limit(None)));
}

#[tokio::test]
async fn parts_no_longer_used_are_released() {
    let dir = tempfile::tempdir().expect("tmp");
    let secret = dir.path().join("hs.secret");
    std::fs::copy(format!("{FIX}/hs256.secret"), &secret).expect("copy");
    let rt = Runtime::start(&config("5/1m", 9001, "30s", &secret), 1)
        .await
        .expect("runtime");
    let a = rt.snapshot(config("5/1m", 9001, "30s", &secret));
    let client = Arc::downgrade(&a.issuers[0]);
    let policy = Arc::downgrade(a.rate_limit(None).expect("policy"));
    let b = rt.snapshot(config("6/1m", 9001, "10s", &secret));
    drop(a);
    // Its refresher holds it only while a fetch is under way (to a closed port here).
    for _ in 0..500 {
        if client.upgrade().is_none() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        client.upgrade().is_none(),
        "the replaced JWKS client is gone"
    );
    assert!(policy.upgrade().is_none(), "the replaced counters are gone");
    drop(b);
}
