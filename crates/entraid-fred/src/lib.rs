//! # entraid-fred
//!
//! Entra ID authentication for the [fred](https://docs.rs/fred) Redis client: every new connection AUTHs as
//! (`oid`, token), and every live connection (single, pool, cluster, subscriber, blocked) is re-authenticated
//! with each new token before the old one expires.
//!
//! - [`EntraIdAuth::configure`] (or [`EntraIdAuth::credential_provider`]) plugs a [`EntraCredentialProvider`] into
//!   fred's `Config`: new connections and reconnects use the current token, waiting for the first one if needed.
//! - [`EntraIdAuth::attach`] registers a client, subscriber or pool: on every new token from the
//!   [`TokenManager`](entraid_manager::TokenManager), `AUTH oid token` is pushed to all its live connections at
//!   once. fred's interval polling is not used.
//!
//! ## What the application sees
//! - Commands never fail because of a rotation: `AUTH` is pipelined on the same connection between commands.
//! - A connection blocked in `BLPOP`/`BRPOP`/`XREAD BLOCK` when a token arrives has its blocking command
//!   interrupted with `CLIENT UNBLOCK ... TIMEOUT`: the call returns as if its timeout had elapsed (nil), the
//!   `AUTH` runs, and the application issues its blocking call again, as it does after any timeout.
//! - Subscribers on RESP3 are re-authenticated in place. On RESP2 the server refuses `AUTH` in subscribe mode, so
//!   the subscriber is reconnected and re-subscribed before its token expires: messages published during that
//!   short window (one reconnect plus one `SUBSCRIBE` round trip) are not delivered to it. **Use RESP3 for
//!   subscribers.**

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod auth;
mod credentials;
mod options;
#[cfg(feature = "identity")]
mod quickstart;
mod stats;
mod target;

/// The fred crate this adapter is built for, re-exported so an application can use the exact same version.
pub use fred;

pub use auth::{Attachment, EntraIdAuth, ReauthError};
pub use credentials::EntraCredentialProvider;
pub use options::ReauthOptions;
pub use stats::ReauthStats;
pub use target::Attachable;
