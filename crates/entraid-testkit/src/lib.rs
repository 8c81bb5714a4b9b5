//! # entraid-testkit
//!
//! An Entra ID emulator (every token endpoint and managed-identity host, real RS256 JWTs, scriptable faults) and a
//! Redis harness whose gateway closes connections when their token expires, as Azure Managed Redis does.
//!
//! - [`emulator`]: the Entra ID emulator, in process on `127.0.0.1` port 0 (HTTP and HTTPS): every grant of the
//!   token endpoint, discovery and keys, the managed-identity hosts (IMDS, App Service, Azure Arc, Cloud Shell,
//!   Azure ML), GitHub Actions and Azure Pipelines OIDC issuers, Kubernetes service-account tokens, Entra-shaped
//!   errors, scriptable faults, a request log and token counters. It ships [`emulator::HttpClient`], a small
//!   HTTP client for tests.
//! - [`tls`]: a test CA generated at run time, server certificates and rustls configs, RSA client certificates
//!   that sign MSAL-style client assertions.
//! - [`keys`]: the shipped test keys, RS256/PS256 JWT signing and verification.
//!
//! - [`redis`]: the Redis harness: real `redis-server` processes (standalone, TLS, or a 3-master cluster) on free
//!   ports, killed on drop, each behind a [`redis::Gateway`] that verifies Entra tokens on `AUTH` / `HELLO ... AUTH`
//!   (signature with the emulator's key, `aud`, `exp`, `nbf`, user = `oid`), answers like Redis on failure and closes
//!   a connection when its token expires unless it re-authenticated; counters for tests; a raw RESP client.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod emulator;
pub mod keys;
pub mod redis;
pub mod tls;

// The README's examples are compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
