//! # entraid-core
//!
//! The types every layer of entraid-rs speaks: [`Token`] and its [`Claims`], the [`IdentityProvider`] trait, the
//! [`IdentityProviderResponse`] kinds and the [`ResponseParser`] hook, and [`Error`]. No HTTP, no async runtime.
//!
//! Bring your own identity crate by implementing [`IdentityProvider`]; the token manager (`entraid-manager`) and
//! the fred adapter (`entraid-fred`) take any implementation, so your service pulls no HTTP stack from this
//! project.
//!
//! ```
//! use std::time::{SystemTime, UNIX_EPOCH};
//! use entraid_core::{DefaultResponseParser, ResponseParser, TokenResponse};
//!
//! let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 3600;
//! let jwt = entraid_core::unsigned_jwt(&serde_json::json!({"oid": "4f1c...", "exp": exp}));
//! let body = format!(r#"{{"access_token":"{jwt}","expires_in":"3599","token_type":"Bearer"}}"#);
//!
//! let response = TokenResponse::from_json(body.as_bytes()).unwrap();
//! let token = DefaultResponseParser.parse(response.into(), SystemTime::now()).unwrap();
//! assert_eq!(token.username(), "4f1c...");              // Redis username: the `oid` claim
//! let _password: &str = token.access_token().expose_secret(); // Redis password: the token
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod date;
mod error;
mod expires_on;
mod jwt;
mod parser;
mod provider;
mod response;
mod secret;
#[cfg(any(test, feature = "test-util"))]
mod test_util;
mod token;
mod token_response;

#[cfg(test)]
mod proptests;

pub use error::{BoxError, EntraError, Error, is_retryable_status};
pub use expires_on::parse_expires_on;
pub use jwt::{Claims, JwtError, MAX_PAYLOAD_BYTES};
pub use parser::{
    DefaultResponseParser, FnParser, ResponseParser, SharedResponseParser, parser_fn,
};
pub use provider::{BoxFuture, IdentityProvider, RequestHint, SharedIdentityProvider};
pub use response::{AccessToken, IdentityProviderResponse};
pub use secret::Secret;
#[cfg(any(test, feature = "test-util"))]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub use test_util::{base64url_encode, civil_reference, unsigned_jwt};
pub use token::Token;
pub use token_response::{TokenResponse, UnreadableField};

/// The scope for Azure Managed Redis, Azure Cache for Redis and Redis Enterprise, in every cloud.
pub const REDIS_SCOPE: &str = "https://redis.azure.com/.default";

/// The resource (the scope without `/.default`), as managed identity endpoints take it.
pub const REDIS_RESOURCE: &str = "https://redis.azure.com";

// The README's examples are compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
