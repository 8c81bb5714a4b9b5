//! # entraid-testkit
//!
//! An Entra ID emulator (every token endpoint and managed-identity host, real RS256 JWTs, scriptable faults) and a
//! Redis harness whose gateway closes connections when their token expires, as Azure Managed Redis does.
//!
//! Status: [`keys`] (test keys, JWT signing and verification) works; the emulator and the Redis harness are being
//! built.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod emulator;
pub mod keys;
pub mod redis;
pub mod tls;
