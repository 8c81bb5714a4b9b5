//! # entraid-fred
//!
//! Entra ID authentication for the [fred](https://docs.rs/fred) Redis client: every new connection AUTHs as
//! (`oid`, token), and every live connection (single, pool, cluster, subscriber, blocked) is re-authenticated
//! with each new token before the old one expires.
//!
//! - [`EntraIdAuth::configure`] (or [`EntraIdAuth::credential_provider`]) plugs a [`EntraCredentialProvider`] into
//!   fred's `Config`: new connections and reconnects use the current token, waiting for the first one if needed.
//! - [`EntraIdAuth::attach`] registers a client, subscriber or pool: on every new token from the
//!   [`TokenManager`], `AUTH oid token` is pushed to all its live connections at
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
//!
//! ## One dependency
//! `cargo add entraid-fred fred` is all an application needs (fred for its command traits; use the version
//! `entraid_fred::fred` re-exports). What the constructors take is re-exported here: [`Secret`],
//! [`UserAssignedId`], [`ClientCertificate`] (feature `identity`), [`TokenManagerOptions`], [`RetryOptions`],
//! [`ReauthOptions`], and the errors ([`Error`], [`EntraError`], [`ReauthError`]); the layers below are re-exported
//! whole as [`entraid_core`], [`entraid_manager`] and [`entraid_identity`] (feature `identity`), so their versions
//! always match this crate's.
//!
//! ## Features
//! - `identity` (default): the convenience constructors ([`EntraIdAuth::system_assigned_managed_identity`],
//!   [`EntraIdAuth::client_secret`], ...) over `entraid-identity`. Without it no HTTP stack is pulled.
//! - `tls-rustls-ring` (default): fred's rustls TLS on the ring provider (`TlsConnector::default_rustls`, the
//!   operating system's roots). Azure Cache for Redis and Azure Managed Redis accept TLS only.
//! - `metrics` (off): the adapter's metrics and the manager's through the `metrics` facade ([`telemetry`]).
//!
//! ## Errors
//! Call `auth.manager().ready().await` before `client.init()` to fail fast (with the identity error) when no
//! token can be had, instead of waiting inside fred's connect. A fred error caused by a missing token (from
//! `init()`, or a reconnect) gives the manager's [`Error`] back through [`token_error`]; [`ReauthError`]s from
//! [`EntraIdAuth::subscribe_errors`] carry it too (failed refreshes included), with
//! [`ReauthError::entra_error`] and [`ReauthError::is_retryable`].
//!
//! ## Telemetry
//! Spans `entraid.fanout` (one per new token) and `entraid.reauth` (one per attached client in it); metrics with
//! the `metrics` feature. Names in [`telemetry`] and `docs/telemetry.md`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod auth;
mod control;
mod credentials;
mod error;
mod options;
#[cfg(feature = "identity")]
mod quickstart;
mod stats;
mod supervisor;
mod target;
pub mod telemetry;

/// The fred crate this adapter is built for, re-exported so an application can use the exact same version.
pub use fred;

/// The core types (tokens, claims, the `IdentityProvider` trait, errors), re-exported.
pub use entraid_core;
/// The identity flows (managed identity, service principals, the default chain, ...), re-exported.
#[cfg(feature = "identity")]
pub use entraid_identity;
/// The token manager (refresh timing, retries, subscriptions), re-exported.
pub use entraid_manager;

pub use entraid_core::{EntraError, Error, Secret, Token};
#[cfg(feature = "identity")]
pub use entraid_identity::{ClientCertificate, UserAssignedId};
pub use entraid_manager::{RetryOptions, TokenManager, TokenManagerOptions};

pub use auth::{Attachment, EntraIdAuth};
pub use credentials::EntraCredentialProvider;
pub use error::{ReauthError, ReauthErrorKind, token_error};
pub use options::ReauthOptions;
pub use stats::ReauthStats;
pub use target::Attachable;

// The README's examples are compiled as doc tests (they need the default features: the constructors and TLS).
#[cfg(all(doctest, feature = "identity", feature = "tls-rustls-ring"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(all(doctest, feature = "identity", feature = "tls-rustls-ring"))]
#[doc = include_str!("../../../README.md")]
struct RootReadmeDoctests;
