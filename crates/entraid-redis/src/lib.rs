//! # entraid-redis
//!
//! Entra ID authentication for [redis-rs](https://docs.rs/redis) (the `redis` crate), on the same token manager
//! as `entraid-fred`: every new connection AUTHs as (`oid`, token), and every live connection of redis-rs's async
//! multiplexed connection, `ConnectionManager` and async cluster client is re-authenticated with each new token
//! before the old one expires.
//!
//! - [`EntraIdAuth`] implements redis-rs's [`StreamingCredentialsProvider`](redis::StreamingCredentialsProvider)
//!   (feature `token-based-authentication`, without the Azure SDK of its `entra-id` feature). Hand a clone to
//!   `AsyncConnectionConfig::set_credentials_provider`, `ConnectionManagerConfig::set_credentials_provider` or
//!   `ClusterClientBuilder::set_credentials_provider`; [`EntraIdAuth::async_connection_config`] does the first.
//!   redis-rs takes the current token for each new connection and sends `AUTH` on the live connection for every
//!   new token the [`TokenManager`](entraid_manager::TokenManager) delivers (refresh timing, retries and single
//!   flight are the manager's).
//! - [`EntraIdAuth::attach`] adds the adapter's own re-authentication, with retries, to a multiplexed connection,
//!   a `ConnectionManager` or a cluster connection (every node): it keeps connections authenticated after
//!   redis-rs's re-auth task has stopped (which it does after the first failed `AUTH`).
//!
//! ## What redis-rs does not re-authenticate
//! - The separate pub/sub connection (`Client::get_async_pubsub`) takes no credentials provider: it keeps the
//!   password it connected with and is closed when that token expires. Subscribe on a RESP3 multiplexed
//!   connection (`AsyncConnectionConfig::set_push_sender`), which is re-authenticated like any other, or use
//!   [`EntraIdAuth::subscriber`] (RESP2 or RESP3), which moves to a new connection with every new token.
//! - A connection whose re-auth task stopped after an `AUTH` error (a refused or timed-out `AUTH`) is not
//!   re-authenticated again by redis-rs; [`EntraIdAuth::attach`] covers multiplexed connections and
//!   `ConnectionManager`. [`CredentialStats::reauth_tasks_stopped`] counts the stops it can see.
//!
//! See the crate README for the full list.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod attach;
mod auth;
mod error;
mod pubsub;
#[cfg(feature = "identity")]
mod quickstart;
mod stats;
mod stream;

/// The redis crate this adapter is built for, re-exported so an application can use the exact same version.
pub use redis;

pub use attach::{AttachOptions, Attachable, Attachment};
pub use auth::EntraIdAuth;
pub use error::token_error;
pub use pubsub::{Subscriber, SubscriberStats};
pub use stats::CredentialStats;

// The README's examples are compiled as doc tests (an `ignore`d block is not).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
