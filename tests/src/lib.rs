//! End-to-end tests of entraid-rs live in `tests/tests/`: each starts its own Entra ID emulator and redis-server
//! processes behind the enforcing gateway (through `entraid-testkit`) on free ports, and drives every layer at
//! once: an identity flow from `entraid-identity`, the token manager, and fred through `entraid-fred`.
//!
//! The per-crate tests live with each crate; these check that the layers fit together as a user assembles them.
//! This library holds what the chaos tests need beyond the testkit: [`ResetProxy`], a TCP proxy that resets
//! random connections. `examples/soak.rs` is the soak run behind `cargo xtask soak`.

#![forbid(unsafe_code)]

mod reset_proxy;

pub use reset_proxy::ResetProxy;
