//! # entraid-fred
//!
//! Entra ID authentication for the [fred](https://docs.rs/fred) Redis client: every new connection AUTHs as
//! (`oid`, token), and every live connection (single, pool, cluster, subscriber, blocked) is re-authenticated
//! with each new token before the old one expires.
//!
//! **Status: not implemented yet.** This crate holds only its documentation until the fred-adapter issue lands.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
