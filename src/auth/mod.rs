//! Authentication: Bearer extraction, JWT verification, the verified principal.

#[cfg(feature = "server")]
pub mod api_key;
pub mod bearer;
#[cfg(feature = "server")]
pub mod cache;
pub mod http_client;
pub mod jwks;
pub mod jwt;
pub mod principal;
