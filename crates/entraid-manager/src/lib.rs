//! # entraid-manager
//!
//! The token manager: keeps a valid Entra ID token at hand for as long as the process lives. It refreshes at a
//! ratio of the token's lifetime, retries with jittered backoff and never gives up, shares one identity-provider
//! request among concurrent callers, and tells every subscriber about every new token exactly once.
//!
//! **Status: not implemented yet.** This crate holds only its documentation until the token-manager issue lands.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
