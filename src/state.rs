//! The request's view of the runtime: [`Snapshot`] and [`Shared`] live in
//! [`crate::runtime`]; this path is kept for the pipeline's imports.

pub use crate::runtime::{Shared, Snapshot};
