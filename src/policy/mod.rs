//! Policy inputs: the canonical path every later stage uses, and the router.

pub mod matcher;
pub(crate) mod path;
pub(crate) mod scope;
