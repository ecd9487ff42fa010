use super::*;
use std::path::Path;

fn config() -> Config {
    crate::config::parse_str(
        "[roles]\nadmin = [\"items:write\"]\n[[upstreams]]\nname=\"demo\"\necho=true\n\
         [[routes]]\nname=\"item\"\npath=\"/items/{id}\"\nmethods=[\"GET\"]\nupstream=\"demo\"\nscopes=[\"items:read\"]\n\
         [[routes]]\nname=\"write\"\npath=\"/items/**\"\nmethods=[\"POST\"]\nupstream=\"demo\"\nscopes=[\"items:write\"]\n\
         [[routes]]\nname=\"public\"\npath=\"/public/**\"\nupstream=\"demo\"\nauth=\"none\"\n",
        Path::new("x.toml"),
    )
    .expect("valid")
}

fn grants(scopes: &[&str], roles: &[&str]) -> Caller {
    Caller::Grants {
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        roles: roles.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn decisions() {
    let d = explain(
        config(),
        "GET",
        "/items/42",
        None,
        &grants(&["items:read"], &[]),
    );
    assert_eq!(d.status, None, "{}", d.report);
    assert!(
        d.report.contains("/items/{id}") && d.report.contains("MATCH (chosen)"),
        "{}",
        d.report
    );
    assert_eq!(
        explain(
            config(),
            "POST",
            "/items/42",
            None,
            &grants(&["items:read"], &[])
        )
        .status,
        Some(403)
    );
    assert_eq!(
        explain(
            config(),
            "POST",
            "/items/42",
            None,
            &grants(&[], &["admin"])
        )
        .status,
        None,
        "role expansion"
    );
    assert_eq!(
        explain(config(), "GET", "/items/42", None, &Caller::Anonymous).status,
        Some(401)
    );
    assert_eq!(
        explain(
            config(),
            "GET",
            "/items/42",
            None,
            &Caller::Token("x.y.z".into())
        )
        .status,
        Some(401)
    );
    assert_eq!(
        explain(config(), "DELETE", "/items/42", None, &Caller::Anonymous).status,
        Some(405)
    );
    assert_eq!(
        explain(config(), "GET", "/nothing", None, &Caller::Anonymous).status,
        Some(404)
    );
    assert_eq!(
        explain(
            config(),
            "GET",
            "/public/../items/1",
            None,
            &Caller::Anonymous
        )
        .status,
        Some(401)
    );
    // The head rules the gateway applies before routing.
    assert_eq!(
        explain(config(), "TRACE", "/public/x", None, &Caller::Anonymous).status,
        Some(501)
    );
    assert_eq!(
        explain(
            config(),
            "GET",
            "/public/%252e%252e/items/1",
            None,
            &Caller::Anonymous
        )
        .status,
        Some(400)
    );
    let long = format!("/public/{}", "a".repeat(9000));
    assert_eq!(
        explain(config(), "GET", &long, None, &Caller::Anonymous).status,
        Some(414)
    );
    let d = explain(
        config(),
        "GET",
        "/public/%2e%2e/items/1",
        None,
        &Caller::Anonymous,
    );
    assert_eq!(d.status, Some(400));
    assert!(d.report.contains("encoded dot segment"), "{}", d.report);
    let d = explain(config(), "GET", "/public/x?a=1", None, &Caller::Anonymous);
    assert_eq!(d.status, None);
    assert!(d.report.contains("path does not match"), "{}", d.report);
}

/// The same stack as the gateway's: a real token, its identity headers, the rate-limit
/// policy and key; an API key; a preflight answered at the edge.
#[test]
fn verdicts_come_from_the_real_stack() {
    use crate::layer::testing::{hs256_token, hs256_tokens};
    let text = format!(
        "{}\n[cors]\nallow_origins = [\"https://app.test\"]\n\
         [rate_limits.default]\nkey = \"subject\"\nrate = \"10/1s\"\n\
         [[api_keys]]\nsha256 = \"{}\"\nsubject = \"svc-reports\"\nscopes = [\"items:read\"]\n\
         [[upstreams]]\nname=\"demo\"\necho=true\n\
         [[routes]]\nname=\"item\"\npath=\"/items/{{id}}\"\nupstream=\"demo\"\nscopes=[\"items:read\"]\n",
        hs256_tokens(),
        crate::auth::api_key::hash("k-123456789")
    );
    let cfg = || crate::config::parse_str(&text, Path::new("x.toml")).expect("valid");
    let token = hs256_token("items:read");
    let d = explain(cfg(), "GET", "/items/7", None, &Caller::Token(token));
    assert_eq!(d.status, None, "{}", d.report);
    for want in [
        "caller:    alice (issuer https://gw.test)",
        "x-auth-subject: alice",
        "x-auth-scopes: items:read",
        "rate limit: policy default",
        "key \"s:https://gw.test",
    ] {
        assert!(d.report.contains(want), "{want:?} missing:\n{}", d.report);
    }
    let d = explain(
        cfg(),
        "GET",
        "/items/7",
        None,
        &Caller::Token(hs256_token("other")),
    );
    assert_eq!(d.status, Some(403), "{}", d.report);
    assert!(d.report.contains("scope=\"items:read\""), "{}", d.report);
    let d = explain(
        cfg(),
        "GET",
        "/items/7",
        None,
        &Caller::Token("eyJhbGciOiJIUzI1NiJ9.e30.x".into()),
    );
    assert_eq!(d.status, Some(401), "{}", d.report);
    assert!(
        d.report.contains("invalid_token: invalid token:"),
        "{}",
        d.report
    );
}
