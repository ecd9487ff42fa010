//! An axum service behind Portcullis' [`AuthLayer`]: the route policy from a
//! `gateway.toml` fragment, one handler's extra requirement with [`RequireScopes`],
//! and the verified caller as an extractor ([`Principal`], feature `axum`).
//!
//! ```text
//! cargo run --example axum_app --features axum -- examples/auth.toml 127.0.0.1:3000
//! curl -i localhost:3000/orders/7                                  # 401
//! curl -i -H "Authorization: Bearer $TOKEN" localhost:3000/orders/7
//! ```
//!
//! `tests/embed/axum.rs` runs this app over HTTP on loopback.

use axum::routing::{get, post};
use axum::Router;
use portcullis::embed::{AuthLayer, Principal, RequireScopes, Scopes};

/// The application: every route behind `auth`; cancelling also needs `orders:write`.
pub fn app(auth: AuthLayer) -> Router {
    Router::new()
        .route("/orders/{id}", get(order))
        .route(
            "/orders/{id}/cancel",
            post(cancel).route_layer(RequireScopes::all(["orders:write"])),
        )
        .route("/health", get(|| async { "ok" }))
        .layer(auth)
}

async fn order(caller: Principal, Scopes(scopes): Scopes) -> String {
    format!(
        "order for {} (scopes: {})",
        caller.subject,
        scopes.join(" ")
    )
}

async fn cancel(caller: Principal) -> String {
    format!("cancelled by {}", caller.subject)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let policy = args.next().unwrap_or_else(|| "examples/auth.toml".into());
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:3000".into());
    // Every problem in the policy, with its key and fix, before anything listens.
    let auth = AuthLayer::from_file(policy.as_ref())?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app(auth)).await?;
    Ok(())
}
