//! Authentication: Bearer extraction, JWT verification, the verified principal.

pub mod bearer;
pub mod jwt;
pub mod principal;
