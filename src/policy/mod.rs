//! Policy inputs: the canonical path every later stage uses, and the router.

pub mod matcher;
pub mod path;
pub mod scope;
