//! The library layer (`portcullis::embed`) in real applications, over real HTTP on
//! loopback with real tokens: the axum example (`examples/axum_app.rs`) and the tonic
//! example (`examples/tonic_app.rs`), compiled in here as they ship.

mod axum;
mod issuers;
mod support;
mod tonic;
