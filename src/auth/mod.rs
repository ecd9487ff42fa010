//! Authentication: Bearer extraction, JWT verification, the verified principal.

pub mod bearer;
pub mod cache;
pub mod jwt;
pub mod principal;
