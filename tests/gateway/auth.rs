//! Bearer authentication, per-route authorization and identity headers, end to end,
//! with real signed tokens. Negative cases first.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::support::*;

fn config() -> String {
    format!(
        r#"
[tokens]
issuer = "https://gw.test"
audiences = ["api"]
[[tokens.keys]]
kid = "hs"
alg = "HS256"
secret_file = "{FIX}/hs256.secret"
[[tokens.keys]]
kid = "rs"
alg = "RS256"
public_key = "{FIX}/rs256.pub"

[roles]
admin = ["items:read", "items:write"]
user = ["items:read"]

[identity]
claim_headers = {{ email = "x-auth-email", sub = "X-User" }}

[[upstreams]]
name = "up"
url = "http://{{UP}}"

[[routes]]
path = "/items/{{id}}"
methods = ["GET"]
upstream = "up"
scopes = ["items:read"]

[[routes]]
path = "/items/**"
methods = ["POST", "DELETE"]
upstream = "up"
scopes = ["items:write"]

[[routes]]
path = "/admin/**"
upstream = "up"
roles = ["admin"]

[[routes]]
path = "/any/**"
upstream = "up"
any_scopes = ["a", "b"]

[[routes]]
path = "/opt/**"
upstream = "up"
auth = "optional"

[[routes]]
path = "/pass/**"
upstream = "up"
pass_authorization = true

[[routes]]
path = "/public/**"
upstream = "up"
auth = "none"
"#
    )
}

fn claims() -> Value {
    json!({"iss": "https://gw.test", "aud": "api", "sub": "alice", "exp": now() + 300, "iat": now(),
           "scope": "items:read", "roles": ["user"], "client_id": "web", "email": "alice@example.com"})
}

fn with(k: &str, v: Value) -> Value {
    let mut c = claims();
    c[k] = v;
    c
}

fn hs(claims: &Value) -> String {
    sign(Algorithm::HS256, "hs", "hs256.secret", claims)
}

fn rs(claims: &Value) -> String {
    sign(Algorithm::RS256, "rs", "rs256.key", claims)
}

#[tokio::test]
async fn bad_tokens_are_401_invalid_token() {
    let up = Upstream::start().await;
    let gw = gateway(&config(), Some(up.addr)).await;
    let confusion = {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("rs".into());
        let pubkey = std::fs::read(format!("{FIX}/rs256.pub")).expect("pub");
        encode(&h, &claims(), &EncodingKey::from_secret(&pubkey)).expect("sign")
    };
    let alg_none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims().to_string())
    );
    let good = hs(&claims());
    let tampered = {
        let parts: Vec<&str> = good.split('.').collect();
        format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(with("scope", json!("items:read items:write")).to_string()),
            parts[2]
        )
    };
    let cases = [
        ("garbage", "Authorization: Bearer garbage".to_string()),
        ("alg none", bearer(&alg_none)),
        ("HS256 signed with the RSA public key", bearer(&confusion)),
        ("expired", bearer(&hs(&with("exp", json!(now() - 3600))))),
        (
            "nbf in the future",
            bearer(&hs(&with("nbf", json!(now() + 3600)))),
        ),
        (
            "wrong issuer",
            bearer(&hs(&with("iss", json!("https://evil.test")))),
        ),
        (
            "wrong audience",
            bearer(&hs(&with("aud", json!(["other"])))),
        ),
        (
            "exp as a string",
            bearer(&hs(&with("exp", json!("99999999999")))),
        ),
        ("tampered payload", bearer(&tampered)),
        ("truncated", bearer(&good[..good.len() - 3])),
    ];
    for (name, header) in &cases {
        let r = get(gw.addr, "/items/1", &[header]).await;
        assert_error(&r, 401, "invalid_token");
        let www = r.header("www-authenticate").unwrap_or_default();
        assert!(
            www.starts_with("Bearer realm=\"portcullis\", error=\"invalid_token\""),
            "{name}: {www}"
        );
        assert_eq!(
            r.json()["error_description"],
            "the access token is invalid or has expired",
            "{name}: the same text whatever failed"
        );
    }
    let r = get(gw.addr, "/items/1", &[]).await;
    assert_error(&r, 401, "unauthorized");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"portcullis\""),
        "no error code without a token (RFC 6750 §3.1)"
    );
    let huge = format!("Authorization: Bearer {}", "a".repeat(9000));
    let r = get(gw.addr, "/items/1", &[&huge]).await;
    assert_error(&r, 401, "invalid_token");
    assert!(
        up.seen().is_empty(),
        "nothing reached the upstream: {:?}",
        up.seen()
    );
}

const MALFORMED: &str =
    "Bearer realm=\"portcullis\", error=\"invalid_request\", error_description=";

/// Asserts the `400 invalid_request` of a malformed `Authorization` header: the
/// description names the problem (it contains `says`), is not the invalid-token text,
/// and is repeated in the challenge.
fn assert_malformed(r: &Raw, says: &str, case: &str) {
    assert_error(r, 400, "invalid_request");
    let d = r.json()["error_description"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(d.contains(says), "{case}: {d}");
    assert_ne!(d, "the access token is invalid or has expired", "{case}");
    assert_eq!(
        r.header("www-authenticate"),
        Some(format!("{MALFORMED}\"{d}\"").as_str()),
        "{case}"
    );
}

/// Issue 11 item 8: a header that is not `Bearer <token>` is a malformed request
/// (RFC 6750 §3.1 `invalid_request`, 400) whose answer says what is wrong, not the
/// `401 invalid_token` of a token that fails verification.
#[tokio::test]
async fn malformed_authorization_headers_are_400_naming_the_problem() {
    let up = Upstream::start().await;
    let gw = gateway(&config(), Some(up.addr)).await;
    let good = hs(&claims());
    let cases = [
        ("no scheme", format!("Authorization: {good}"), "no scheme"),
        ("Bearer alone", "Authorization: Bearer".to_string(), "empty"),
        // hyper strips the trailing space: the same as `Bearer`.
        (
            "Bearer and a space",
            "Authorization: Bearer ".to_string(),
            "empty",
        ),
        ("empty value", "Authorization:".to_string(), "is empty"),
        (
            "two spaces",
            format!("Authorization: Bearer  {good}"),
            "more than one space",
        ),
        (
            "two parts",
            format!("Authorization: Bearer {good} extra"),
            "more than one part",
        ),
        (
            "Bearer a b",
            "Authorization: Bearer a b".to_string(),
            "more than one part",
        ),
        (
            "Basic",
            "Authorization: Basic YWxpY2U6c2VjcmV0".to_string(),
            "not Bearer",
        ),
        (
            "Token",
            format!("Authorization: Token {good}"),
            "not Bearer",
        ),
        (
            "a quote in the token",
            "Authorization: Bearer a\"b".to_string(),
            "token syntax",
        ),
    ];
    for (case, header, says) in &cases {
        let r = get(gw.addr, "/items/1", &[header]).await;
        assert_malformed(&r, says, case);
    }
    // Two headers, even two valid ones.
    let r = get(gw.addr, "/items/1", &[&bearer(&good), &bearer(&good)]).await;
    assert_malformed(&r, "more than one Authorization header", "two headers");
    // An optional route reads the header as a required one does.
    let r = get(
        gw.addr,
        "/opt/x",
        &["Authorization: Basic YWxpY2U6c2VjcmV0"],
    )
    .await;
    assert_malformed(&r, "not Bearer", "optional route");
    assert!(
        up.seen().is_empty(),
        "nothing reached the upstream: {:?}",
        up.seen()
    );

    // No header at all: 401 with a bare challenge, no error code (RFC 6750 §3.1).
    let r = get(gw.addr, "/items/1", &[]).await;
    assert_error(&r, 401, "unauthorized");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"portcullis\"")
    );
    // The scheme name is case-insensitive (RFC 9110 §11.1).
    for scheme in ["bearer", "BEARER", "bEaReR"] {
        let r = get(
            gw.addr,
            "/items/1",
            &[&format!("Authorization: {scheme} {good}")],
        )
        .await;
        assert_eq!(r.status, 200, "{scheme}: {}", r.body);
    }
    // A public route does not read the header.
    let r = get(
        gw.addr,
        "/public/x",
        &["Authorization: Basic YWxpY2U6c2VjcmV0"],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(up.seen().len(), 4);
}

#[tokio::test]
async fn valid_tokens_reach_the_upstream_with_identity_headers() {
    let up = Upstream::start().await;
    let gw = gateway(&config(), Some(up.addr)).await;
    for token in [hs(&claims()), rs(&claims())] {
        let r = get(
            gw.addr,
            "/items/7",
            &[
                &bearer(&token),
                "X-Auth-Subject: mallory",
                "X-AUTH-SCOPES: admin",
                "Connection: x-auth-subject",
            ],
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let h = up.last().headers;
        assert_eq!(h["x-auth-subject"], "alice");
        assert_eq!(h["x-auth-scopes"], "items:read");
        assert_eq!(h["x-auth-roles"], "user");
        assert_eq!(h["x-auth-client-id"], "web");
        assert_eq!(h["x-auth-issuer"], "https://gw.test");
        assert_eq!(h["x-auth-email"], "alice@example.com");
        assert_eq!(
            h["x-user"], "alice",
            "a claim header outside the prefix is reserved too"
        );
        assert_eq!(h.get_all("x-user").iter().count(), 1);
        assert_eq!(h.get_all("x-auth-subject").iter().count(), 1);
        assert!(
            h.get("authorization").is_none(),
            "the token is not passed on by default"
        );
    }
    // lowercase scheme name (RFC 9110: auth schemes are case-insensitive)
    let r = get(
        gw.addr,
        "/items/7",
        &[&format!("Authorization: bearer {}", hs(&claims()))],
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn forged_identity_headers_never_reach_the_upstream() {
    let up = Upstream::start().await;
    let gw = gateway(&config(), Some(up.addr)).await;
    for path in ["/public/x", "/opt/x"] {
        let r = get(
            gw.addr,
            path,
            &[
                "X-Auth-Subject: mallory",
                "x-auth-roles: admin",
                "X-AUTH-EMAIL: boss@example.com",
            ],
        )
        .await;
        assert_eq!(r.status, 200);
        let h = up.last().headers;
        assert!(
            h.keys().all(|k| !k.as_str().starts_with("x-auth-")),
            "{path}: {h:?}"
        );
    }
    for path in ["/public/x", "/items/1"] {
        let r = get(
            gw.addr,
            path,
            &["x_auth_subject: mallory", &bearer(&hs(&claims()))],
        )
        .await;
        assert_error(&r, 400, "invalid_request");
    }
}

#[tokio::test]
async fn missing_scopes_are_403_insufficient_scope() {
    let up = Upstream::start().await;
    let gw = gateway(&config(), Some(up.addr)).await;
    let r = raw(gw.addr, &format!("POST /items/1 HTTP/1.1\r\nHost: gw.test\r\n{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", bearer(&hs(&claims())))).await;
    assert_error(&r, 403, "insufficient_scope");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"portcullis\", error=\"insufficient_scope\", scope=\"items:write\"")
    );
    let r = get(gw.addr, "/admin/x", &[&bearer(&hs(&claims()))]).await;
    assert_error(&r, 403, "insufficient_scope");
    let r = get(gw.addr, "/any/x", &[&bearer(&hs(&claims()))]).await;
    assert_error(&r, 403, "insufficient_scope");
    assert!(up.seen().is_empty());
}

#[tokio::test]
async fn roles_expand_to_scopes_and_any_scopes_need_one() {
    let up = Upstream::start().await;
    let gw = gateway(&config(), Some(up.addr)).await;
    let admin = hs(&with("roles", json!(["admin"])));
    let r = raw(
        gw.addr,
        &format!(
            "DELETE /items/1 HTTP/1.1\r\nHost: gw.test\r\n{}\r\nConnection: close\r\n\r\n",
            bearer(&admin)
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(up.last().headers["x-auth-scopes"], "items:read items:write");
    assert_eq!(
        get(gw.addr, "/admin/x", &[&bearer(&admin)]).await.status,
        200
    );
    assert_eq!(
        get(
            gw.addr,
            "/any/x",
            &[&bearer(&hs(&with("scope", json!("b c"))))]
        )
        .await
        .status,
        200
    );
}

#[tokio::test]
async fn optional_routes_and_passing_the_token_on() {
    let up = Upstream::start().await;
    let gw = gateway(&config(), Some(up.addr)).await;
    assert_eq!(get(gw.addr, "/opt/x", &[]).await.status, 200);
    assert!(
        up.last().headers.get("x-auth-subject").is_none(),
        "anonymous"
    );
    let r = get(gw.addr, "/opt/x", &["Authorization: Bearer not.a.token"]).await;
    assert_error(&r, 401, "invalid_token");
    assert_eq!(
        get(gw.addr, "/opt/x", &[&bearer(&hs(&claims()))])
            .await
            .status,
        200
    );
    assert_eq!(up.last().headers["x-auth-subject"], "alice");
    let token = hs(&claims());
    assert_eq!(
        get(gw.addr, "/pass/x", &[&bearer(&token)]).await.status,
        200
    );
    assert_eq!(
        up.last().headers["authorization"],
        format!("Bearer {token}").as_str()
    );
}

#[tokio::test]
async fn a_reload_that_removes_a_key_stops_its_cached_tokens_at_once() {
    let up = Upstream::start().await;
    let gw = gateway(&config(), Some(up.addr)).await;
    let token = hs(&claims());
    for _ in 0..3 {
        assert_eq!(
            get(gw.addr, "/items/1", &[&bearer(&token)]).await.status,
            200,
            "verified, then from the cache"
        );
    }
    let without_hs = config()
        .replace(&format!("[[tokens.keys]]\nkid = \"hs\"\nalg = \"HS256\"\nsecret_file = \"{FIX}/hs256.secret\"\n"), "")
        .replace("{UP}", &up.addr.to_string());
    assert!(!without_hs.contains("HS256"));
    let text = format!("[server]\nlisten = \"{}\"\n{without_hs}", gw.addr);
    gw.reload(portcullis::config::parse_str(&text, std::path::Path::new("r.toml")).expect("valid"));
    let r = get(gw.addr, "/items/1", &[&bearer(&token)]).await;
    assert_error(&r, 401, "invalid_token");
    assert_eq!(
        get(gw.addr, "/items/1", &[&bearer(&rs(&claims()))])
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn api_keys_go_through_the_same_policy() {
    let up = Upstream::start().await;
    let key = "pk_test_0123456789abcdefghijklmnopqrstuvwxyz";
    let weak = "pk_test_other_key_without_the_needed_scope00";
    let digest = |k: &str| portcullis::auth::api_key::hash(k);
    let text = format!(
        "{}\n[[api_keys]]\nsha256 = \"{}\"\nsubject = \"svc-reports\"\nscopes = [\"items:read\"]\n[[api_keys]]\nsha256 = \"{}\"\nsubject = \"svc-weak\"\n",
        config(),
        digest(key),
        digest(weak)
    );
    let gw = gateway(&text, Some(up.addr)).await;
    let r = get(
        gw.addr,
        "/items/1",
        &[&format!("X-Api-Key: {key}"), "X-Auth-Subject: mallory"],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let h = up.last().headers;
    assert_eq!(h["x-auth-subject"], "svc-reports");
    assert_eq!(h["x-auth-issuer"], "api-key");
    assert!(
        h.get("x-api-key").is_none(),
        "the key never reaches the upstream"
    );
    let r = get(gw.addr, "/items/1", &["X-Api-Key: pk_wrong"]).await;
    assert_error(&r, 401, "invalid_token");
    // The Authorization header is read before the API key: a malformed one is refused
    // even beside a good key, which is not tried.
    let r = get(
        gw.addr,
        "/items/1",
        &[
            &format!("X-Api-Key: {key}"),
            "Authorization: Basic YWxpY2U6c2VjcmV0",
        ],
    )
    .await;
    assert_error(&r, 400, "invalid_request");
    assert!(
        r.header("www-authenticate")
            .is_some_and(|w| w.contains("error=\"invalid_request\"")),
        "{:?}",
        r.headers
    );
    let r = get(gw.addr, "/items/1", &[&format!("X-Api-Key: {weak}")]).await;
    assert_error(&r, 403, "insufficient_scope");
    assert_eq!(up.seen().len(), 1);
    // On a public route the key is not checked, but still not passed on.
    assert_eq!(
        get(gw.addr, "/public/x", &[&format!("X-Api-Key: {key}")])
            .await
            .status,
        200
    );
    assert!(up.last().headers.get("x-api-key").is_none());
}

/// Issue 9 item 3: NumericDates with a fraction are accepted (RFC 7519 §2).
#[tokio::test]
async fn own_tokens_with_fractional_dates_are_accepted() {
    let up = Upstream::start().await;
    let gw = gateway(&config(), Some(up.addr)).await;
    let n = now() as f64;
    for (name, c) in [
        ("fractional iat", with("iat", json!(n - 0.75))),
        ("fractional exp", with("exp", json!(n + 300.25))),
        ("fractional nbf", with("nbf", json!(n - 10.5))),
    ] {
        let r = get(gw.addr, "/items/1", &[&bearer(&hs(&c))]).await;
        assert_eq!(r.status, 200, "{name}: {}", r.body);
    }
}

/// Issue 9 item 3: `iss` must be a string (RFC 7519 §4.1.1), the other registered
/// claims have their types too; a future `iat` is refused. Refused tokens never reach
/// the upstream.
#[tokio::test]
async fn own_tokens_iss_array_and_bad_claim_types_are_refused() {
    let up = Upstream::start().await;
    let gw = gateway(&config(), Some(up.addr)).await;
    let seen = up.seen().len();
    for (name, c) in [
        (
            "iss an array naming us",
            with("iss", json!(["https://evil.example", "https://gw.test"])),
        ),
        (
            "iss an array of ours",
            with("iss", json!(["https://gw.test"])),
        ),
        ("iat in the future", with("iat", json!(now() + 3600))),
        ("exp negative", with("exp", json!(-1))),
        ("aud an array with a number", with("aud", json!([1, "api"]))),
    ] {
        let r = get(gw.addr, "/items/1", &[&bearer(&hs(&c))]).await;
        assert_error(&r, 401, "invalid_token");
        assert_eq!(up.seen().len(), seen, "{name} reached the upstream");
    }
}

/// Issue 9 item 3: `typ` is allow-listed (RFC 8725 §3.11) and a JWS header carrying
/// `enc` (a JWE's) is refused.
#[tokio::test]
async fn own_tokens_typ_allow_list_and_jwe_headers() {
    let up = Upstream::start().await;
    let gw = gateway(&config(), Some(up.addr)).await;
    assert_header_allow_list(
        gw.addr,
        &up,
        "/items/1",
        |extra| format!(r#"{{"alg":"HS256","kid":"hs"{extra}}}"#),
        |header| sign_raw_header(Algorithm::HS256, "hs256.secret", header, &claims()),
    )
    .await;
}

/// Issue 9 item 3: `[tokens] scope_claim = "scope"` takes scopes from `scope` alone
/// (`scp` ignored), and `expand_roles = false` stops `roles` adding scopes.
#[tokio::test]
async fn tokens_scope_claim_scope_only_ignores_scp() {
    let up = Upstream::start().await;
    let text = config().replacen(
        "audiences = [\"api\"]\n",
        "audiences = [\"api\"]\nscope_claim = \"scope\"\nexpand_roles = false\n",
        1,
    );
    assert_ne!(text, config());
    let gw = gateway(&text, Some(up.addr)).await;
    let mut scp_only = claims();
    let c = scp_only.as_object_mut().expect("obj");
    c.remove("scope");
    c.insert("scp".into(), json!(["items:read"]));
    let r = get(gw.addr, "/items/1", &[&bearer(&hs(&scp_only))]).await;
    assert_error(&r, 403, "insufficient_scope");
    // `user` maps to items:read in [roles], but roles no longer add scopes.
    let mut roles_only = claims();
    roles_only.as_object_mut().expect("obj").remove("scope");
    let r = get(gw.addr, "/items/1", &[&bearer(&hs(&roles_only))]).await;
    assert_error(&r, 403, "insufficient_scope");
    assert!(up.seen().is_empty());
    // `scope` still works, and roles still satisfy a route's `roles`.
    assert_eq!(
        get(gw.addr, "/items/1", &[&bearer(&hs(&claims()))])
            .await
            .status,
        200
    );
    let admin = with("roles", json!(["admin"]));
    assert_eq!(
        get(gw.addr, "/admin/x", &[&bearer(&hs(&admin))])
            .await
            .status,
        200
    );
    // The default config still reads `scp` and expands roles (unchanged behaviour).
    let gw = gateway(&config(), Some(up.addr)).await;
    assert_eq!(
        get(gw.addr, "/items/1", &[&bearer(&hs(&scp_only))])
            .await
            .status,
        200
    );
    assert_eq!(
        get(gw.addr, "/items/1", &[&bearer(&hs(&roles_only))])
            .await
            .status,
        200
    );
}
