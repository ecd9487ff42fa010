//! Edge concerns applied to every request before routing.

pub mod hygiene;
pub mod identity;
pub mod request_id;
