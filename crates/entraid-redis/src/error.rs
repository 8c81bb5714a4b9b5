//! The `entraid_core::Error` behind a redis-rs error ([`token_error`]).
//!
//! redis-rs's `AuthenticationFailed` errors carry a string detail only. When the adapter has no token for a
//! connection (the credential stream's first item, [`EntraIdAuth::subscriber`](crate::EntraIdAuth::subscriber)),
//! the detail ends with an [`ErrorTag`] (`[entraid-rs error #17]`) naming the manager's `Arc<entraid_core::Error>`,
//! which [`token_error`] gives back, so `is_retryable()`, `entra_error()` and the AADSTS codes survive.

use std::sync::Arc;

use entraid_core::Error;
use entraid_manager::ErrorTag;
use redis::{ErrorKind, RedisError};

/// The `entraid_core::Error` behind a redis-rs error, when the adapter caused it (no token could be had for a
/// connection), while it is among the [`ErrorTag::CAPACITY`] most recent distinct token errors of the process;
/// `None` for any other error.
///
/// ```
/// let unrelated = entraid_redis::redis::RedisError::from((
///     entraid_redis::redis::ErrorKind::Io,
///     "connection reset",
/// ));
/// assert!(entraid_redis::token_error(&unrelated).is_none());
/// ```
pub fn token_error(error: &RedisError) -> Option<Arc<Error>> {
    error.detail().and_then(ErrorTag::find)
}

/// The redis-rs error for a connection that could not get a token: `AuthenticationFailed`, the manager's error
/// (which never holds a secret) and its tag.
pub(crate) fn no_token(error: &Arc<Error>) -> RedisError {
    RedisError::from((
        ErrorKind::AuthenticationFailed,
        "no Entra ID token for Redis",
        format!("{error} {}", ErrorTag::register(error)),
    ))
}
