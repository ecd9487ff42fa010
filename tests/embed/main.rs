//! The library layer (`portcullis::embed`) in real applications, over real HTTP on
//! loopback with real tokens: the axum example (`examples/axum_app.rs`) and the tonic
//! example (`examples/tonic_app.rs`), compiled in here as they ship.

// The examples as they ship; their `main`s are not the test's.
#[allow(dead_code)]
#[path = "../../examples/axum_app.rs"]
mod axum_app;
#[allow(dead_code)]
#[path = "../../examples/tonic_app.rs"]
mod tonic_app;

mod axum;
mod issuers;
mod support;
mod tonic;
