//! Edge concerns applied to every request before routing.

pub mod access_log;
pub mod cors;
pub mod hygiene;
pub mod identity;
pub mod json_line;
pub mod request_id;
pub mod transform;
