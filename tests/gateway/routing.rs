use crate::support::*;

const CONFIG: &str = r#"
[[upstreams]]
name = "up"
url = "http://{UP}"

[[upstreams]]
name = "demo"
echo = true

[[routes]]
name = "item"
path = "/items/{id}"
methods = ["GET"]
upstream = "up"
auth = "none"

[[routes]]
name = "special"
path = "/items/special"
methods = ["GET"]
upstream = "demo"
auth = "none"

[[routes]]
name = "items-write"
path = "/items/**"
methods = ["POST", "DELETE"]
upstream = "up"
auth = "none"

[[routes]]
name = "private"
path = "/private/**"
upstream = "up"

[[routes]]
name = "admin-host"
path = "/**"
host = "admin.test"
upstream = "demo"
auth = "none"
"#;

#[tokio::test]
async fn unknown_paths_are_404_json() {
    let up = Upstream::start().await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    for target in ["/nothing", "/itemsx", "/", "/privatex/y", "/items%2Fx"] {
        let r = get(gw.addr, target, &[]).await;
        if target.contains('%') {
            assert_error(&r, 400, "invalid_request");
        } else {
            assert_error(&r, 404, "not_found");
        }
    }
    // A path that only a write route covers answers 405 to GET, not 404.
    let r = get(gw.addr, "/items/1/2", &[]).await;
    assert_error(&r, 405, "method_not_allowed");
    assert!(up.seen().is_empty(), "nothing may reach the upstream");
}

#[tokio::test]
async fn wrong_method_is_405_with_allow() {
    let up = Upstream::start().await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    let r = raw(
        gw.addr,
        "PUT /items/42 HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_error(&r, 405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET, HEAD, POST, DELETE"));
    assert!(up.seen().is_empty());
}

#[tokio::test]
async fn most_specific_route_wins_and_methods_select() {
    let up = Upstream::start().await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    let r = get(gw.addr, "/items/special", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["upstream"], "demo", "literal beats {{id}}");
    let r = get(gw.addr, "/items/42?x=1", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(up.last().target, "/items/42?x=1");
    let r = raw(
        gw.addr,
        "DELETE /items/42 HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        up.last().method,
        "DELETE",
        "falls through to /items/** for DELETE"
    );
}

#[tokio::test]
async fn host_routes_only_match_their_host() {
    let up = Upstream::start().await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    let r = raw(
        gw.addr,
        "GET /anything HTTP/1.1\r\nHost: ADMIN.test:8080\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["path"], "/anything");
    let r = get(gw.addr, "/anything", &[]).await;
    assert_error(&r, 404, "not_found");
}

#[tokio::test]
async fn protected_routes_refuse_without_configured_keys() {
    let up = Upstream::start().await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    let r = get(gw.addr, "/private/x", &[]).await;
    assert_error(&r, 401, "unauthorized");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"portcullis\"")
    );
    // No [tokens] section: no token can be valid.
    let r = get(
        gw.addr,
        "/private/x",
        &["Authorization: Bearer forged.token.here"],
    )
    .await;
    assert_error(&r, 401, "invalid_token");
    assert!(up.seen().is_empty());
}

#[tokio::test]
async fn request_ids_are_kept_or_generated() {
    let up = Upstream::start().await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    let r = get(gw.addr, "/items/1", &["X-Request-Id: trace-abc.1"]).await;
    assert_eq!(r.header("x-request-id"), Some("trace-abc.1"));
    assert_eq!(up.last().headers["x-request-id"], "trace-abc.1");
    let r = get(gw.addr, "/items/1", &["X-Request-Id: evil value\"<script>"]).await;
    let id = r.header("x-request-id").expect("id").to_string();
    assert_ne!(id, "evil value\"<script>");
    assert_eq!(id.len(), 32);
    assert_eq!(
        up.last().headers["x-request-id"],
        id.as_str(),
        "the upstream sees the same id"
    );
    let a = get(gw.addr, "/nothing", &[]).await;
    let b = get(gw.addr, "/nothing", &[]).await;
    assert_ne!(a.header("x-request-id"), b.header("x-request-id"));
}

#[tokio::test]
async fn reload_swaps_routes_for_new_requests() {
    let up = Upstream::start().await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    assert_eq!(get(gw.addr, "/new", &[]).await.status, 404);
    let text = format!("[server]\nlisten = \"{}\"\n[[upstreams]]\nname=\"demo\"\necho=true\n[[routes]]\npath=\"/new\"\nupstream=\"demo\"\nauth=\"none\"\n", gw.addr);
    let config =
        portcullis::config::parse_str(&text, std::path::Path::new("reload.toml")).expect("valid");
    gw.reload(config);
    assert_eq!(get(gw.addr, "/new", &[]).await.status, 200);
    assert_eq!(get(gw.addr, "/items/1", &[]).await.status, 404);
}
