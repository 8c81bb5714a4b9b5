//! # entraid-testkit
//!
//! An Entra ID emulator (every token endpoint and managed-identity host, real RS256 JWTs, scriptable faults) and a
//! Redis harness whose gateway closes connections when their token expires, as Azure Managed Redis does.
//!
//! **Status: not implemented yet.** This crate holds only its documentation until the testkit issue lands.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
