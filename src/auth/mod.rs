//! Authentication: Bearer extraction, JWT verification, the verified principal.

pub mod api_key;
pub mod bearer;
pub mod cache;
pub mod jwks;
pub mod jwt;
pub mod principal;
