//! Route rules can never be bypassed by spelling: every hostile spelling either is
//! refused with 400, or lands on the route its canonical path names.

use crate::support::*;

const CONFIG: &str = r#"
[[upstreams]]
name = "up"
url = "http://{UP}"

[[routes]]
path = "/public/**"
upstream = "up"
auth = "none"

[[routes]]
path = "/admin/**"
upstream = "up"
"#;

#[tokio::test]
async fn bypass_attempts_never_reach_the_admin_route() {
    let up = Upstream::start().await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    // (target, expected status): 401 = reached the protected route's policy, 400 = refused,
    // 404 = no route (paths are case-sensitive).
    let cases = [
        ("/public/../admin/users", 401),
        ("/public/./../admin/users", 401),
        ("//admin/users", 401),
        ("/public//../admin/users", 401),
        ("/%2e%2e/admin/users", 400),
        ("/public/%2e%2e/admin/users", 400),
        ("/public/.%2e/admin/users", 400),
        ("/public/%2E%2E/admin/users", 400),
        ("/admin%2f..", 400),
        ("/public/..%2fadmin/users", 400),
        ("/public%2f..%2fadmin/users", 400),
        ("/public/..%5cadmin/users", 400),
        ("/public/..;/admin/users", 400),
        ("/admin;x=1/users", 400),
        ("/public/x;/../../admin/users", 400),
        ("/public/%00/../admin", 400),
        ("/public/%0d%0a/admin", 400),
        ("/ADMIN/users", 404),
        ("/Admin/users", 404),
        ("/%61dmin/users", 401),
    ];
    for (target, want) in cases {
        let r = get(gw.addr, target, &[]).await;
        assert_eq!(r.status, want, "{target}: {}", r.body);
        if want != 200 {
            assert!(r.json()["error"].is_string(), "{target}: JSON error body");
        }
    }
    // Raw backslashes and spaces are refused by the HTTP parser or by us, never routed.
    for target in ["/public\\..\\admin/users", "/public/..\\admin"] {
        let r = get(gw.addr, target, &[]).await;
        assert_eq!(r.status, 400, "{target}");
    }
    assert!(
        up.seen().is_empty(),
        "the upstream received {:?}",
        up.seen()
    );
}

#[tokio::test]
async fn the_upstream_receives_the_canonical_path_and_the_raw_query() {
    let up = Upstream::start().await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    let r = get(gw.addr, "/public/./a//b/../%7Ec%41?q=%2F..&x=a+b", &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(up.last().target, "/public/a/~cA?q=%2F..&x=a+b");
    let r = get(gw.addr, "/public/caf%c3%a9/a%20b", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(up.last().target, "/public/caf%C3%A9/a%20b");
}

#[tokio::test]
async fn fragments_and_absolute_form_do_not_confuse_routing() {
    let up = Upstream::start().await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    // absolute-form request target: routed by its path, like origin-form.
    let r = raw(
        gw.addr,
        "GET http://gw.test/admin/users HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 401);
    let r = get(gw.addr, "/public/x#/../../admin", &[]).await;
    assert!(
        r.status == 400 || (r.status == 200 && up.last().target == "/public/x"),
        "status {} {:?}",
        r.status,
        up.seen()
    );
    assert!(up.seen().iter().all(|s| s.target.starts_with("/public/")));
}
