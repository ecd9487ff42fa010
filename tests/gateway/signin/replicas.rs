//! Replicas: two gateways on one PostgreSQL. A browser signs in at one and its code
//! is redeemed at the other; the session, consent and code reuse are seen by both.

use super::flow::*;
use super::start_on;
use crate::postgres::Postgres;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_issued_by_one_replica_is_redeemed_at_another() {
    let pg = Postgres::start().await;
    let a = start_on(&pg.url(), "", "").await;
    let b = start_on(&pg.url(), "", "").await;
    let (verifier, challenge) = pkce();
    // Sign in at A (its base URL names A; the client's loopback redirect URI matches
    // whatever the port).
    let mut browser = Browser::new(a.addr());
    let r = browser
        .sign_in(&spa_request(&a.base, &challenge, "st"))
        .await;
    let code = param(&location(&r), "code").expect("code");
    // Redeem at B.
    let t = redeem(b.addr(), &a.base, &code, &verifier).await;
    assert_eq!(t.status, 200, "{}", t.body);
    // The session and consent live in the store: the same browser at B gets a code at
    // once (no password, no consent page).
    browser.addr = b.addr();
    let (verifier, challenge) = pkce();
    let r = browser.get(&spa_request(&a.base, &challenge, "st")).await;
    assert_eq!(r.status, 303, "session shared: {}", r.body);
    let code = param(&location(&r), "code").expect("code");
    // Redeemed at A, then replayed at B: refused, and what A issued is revoked.
    let t = redeem(a.addr(), &a.base, &code, &verifier).await;
    assert_eq!(t.status, 200, "{}", t.body);
    let replay = redeem(b.addr(), &a.base, &code, &verifier).await;
    assert_eq!(replay.status, 400, "{}", replay.body);
    let refresh = t.json()["refresh_token"].as_str().expect("rt").to_string();
    let r = crate::token::post(
        a.addr(),
        "/token",
        &format!("grant_type=refresh_token&client_id=spa&refresh_token={refresh}"),
        &[],
    )
    .await;
    assert_eq!(r.status, 400, "family revoked everywhere: {}", r.body);
}
