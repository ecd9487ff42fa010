//! Policy inputs: the canonical path every later stage uses, and the router.

// The library layer (`embed`) uses the router and the canonical path but not all the
// helpers the gateway needs.
#[cfg_attr(not(feature = "server"), allow(dead_code))]
pub mod matcher;
#[cfg_attr(not(feature = "server"), allow(dead_code))]
pub(crate) mod path;
pub(crate) mod scope;
