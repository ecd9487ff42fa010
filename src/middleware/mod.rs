//! Edge concerns applied to every request before routing.

pub mod hygiene;
pub mod request_id;
