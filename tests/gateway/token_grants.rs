//! `[tokens] grants`: the grants `/token` serves at all. A disabled grant is
//! `unsupported_grant_type` for every client, `check` refuses a client that lists
//! one, and the metadata's `grant_types_supported` is exactly what is served.

use crate::support::*;
use crate::token::{assert_oauth_error, config, post, sqlite};

fn without_password(store: &str) -> String {
    config(
        store,
        "grants = [\"refresh_token\", \"client_credentials\"]",
        "",
    )
    .replace(
        "grants = [\"password\", \"refresh_token\"]",
        "grants = [\"refresh_token\"]",
    )
}

#[tokio::test]
async fn a_disabled_grant_is_unsupported_and_not_advertised() {
    let dir = tempfile::tempdir().expect("tmp");
    let up = Upstream::start().await;
    let gw = gateway(&without_password(&sqlite(dir.path())), Some(up.addr)).await;
    let r = post(
        gw.addr,
        "/token",
        "grant_type=password&username=alice&password=wonderland",
        &[],
    )
    .await;
    assert_oauth_error(&r, 400, "unsupported_grant_type");
    // Also without grant_type (the FastAPI-style form is the password grant).
    let r = post(gw.addr, "/token", "username=alice&password=wonderland", &[]).await;
    assert_oauth_error(&r, 400, "unsupported_grant_type");
    let meta = get(gw.addr, "/.well-known/oauth-authorization-server", &[]).await;
    assert_eq!(meta.status, 200);
    let grants = meta.json()["grant_types_supported"].clone();
    assert_eq!(
        grants,
        serde_json::json!(["client_credentials", "refresh_token"])
    );
}

#[tokio::test]
async fn the_metadata_lists_what_is_served() {
    let dir = tempfile::tempdir().expect("tmp");
    let up = Upstream::start().await;
    let gw = gateway(&config(&sqlite(dir.path()), "", ""), Some(up.addr)).await;
    let meta = get(gw.addr, "/.well-known/oauth-authorization-server", &[]).await;
    assert_eq!(
        meta.json()["grant_types_supported"],
        serde_json::json!(["client_credentials", "password", "refresh_token"])
    );
}

#[test]
fn a_client_may_list_enabled_grants_only() {
    let dir = tempfile::tempdir().expect("tmp");
    let text = config(
        &sqlite(dir.path()),
        "grants = [\"refresh_token\", \"client_credentials\", \"implicit\"]",
        "",
    )
    .replace("{UP}", "127.0.0.1:9");
    let err = portcullis::config::parse_str(&text, std::path::Path::new("t.toml"))
        .expect_err("refused")
        .to_string();
    assert!(err.contains("tokens.grants[2]"), "{err}");
    assert!(err.contains("clients[0].grants"), "{err}");
    assert!(err.contains("is not enabled in tokens.grants"), "{err}");
}
