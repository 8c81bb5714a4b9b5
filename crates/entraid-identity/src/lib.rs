//! # entraid-identity
//!
//! Entra ID identity flows spoken over raw HTTP (reqwest + rustls, no Azure SDK, no openssl): managed identity on
//! every Azure host, client secret, certificate assertion, workload identity, environment, the default chain,
//! developer CLIs, and the user flows. Each flow is an [`entraid_core::IdentityProvider`].
//!
//! **Status: not implemented yet.** This crate holds only its documentation until the identity issues land; it
//! exports nothing and pretends nothing.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
