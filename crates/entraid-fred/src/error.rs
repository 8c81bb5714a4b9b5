//! The errors the fred adapter hands to the application, typed: [`ReauthError`] (from
//! [`EntraIdAuth::subscribe_errors`](crate::EntraIdAuth::subscribe_errors)) and the `entraid_core::Error` behind a
//! fred `Error` ([`token_error`]).
//!
//! fred's `Error` holds a kind and a string only. When the credential provider cannot hand a token to a new
//! connection, its error's text ends with an [`ErrorTag`] (`[entraid-rs error #17]`) naming the manager's
//! `Arc<entraid_core::Error>`, which [`token_error`] gives back, so `is_retryable()`, `entra_error()` and the
//! AADSTS codes survive the trip through fred.

use std::fmt;
use std::sync::Arc;

use entraid_core::{EntraError, Error};
use entraid_manager::ErrorTag;
use fred::error::{Error as FredError, ErrorKind};

/// The `entraid_core::Error` behind a fred error, when the adapter caused it: the credential provider had no
/// token for a new connection or a reconnect (what `client.init()` returns then, and what fred's error stream
/// reports on a failed reconnect), so the application can match on it.
///
/// Found while it is among the [`ErrorTag::CAPACITY`] most recent distinct token errors of the process; `None` for
/// any other fred error (a refused `AUTH` from the server, an I/O error, ...).
///
/// ```
/// # use entraid_fred::fred::error::{Error, ErrorKind};
/// let unrelated = Error::new(ErrorKind::IO, "connection reset");
/// assert!(entraid_fred::token_error(&unrelated).is_none());
/// ```
pub fn token_error(error: &FredError) -> Option<Arc<Error>> {
    ErrorTag::find(error.details())
}

/// The fred error for a connection that could not get a token: kind `Auth`, the manager's error (which never holds
/// a secret) and its tag.
pub(crate) fn no_token(error: &Arc<Error>) -> FredError {
    FredError::new(
        ErrorKind::Auth,
        format!(
            "no Entra ID token for Redis: {error} {}",
            ErrorTag::register(error)
        ),
    )
}

/// What failed, in a [`ReauthError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReauthErrorKind {
    /// The token manager could not get a new token (its error is in [`ReauthError::token_error`]). The attached
    /// clients keep the token they hold while the manager retries.
    Refresh,
    /// Pushing a token to an attached client failed (`AUTH` refused or timed out, a reconnect that failed).
    Reauth,
    /// A client's re-authentication worker panicked and was restarted.
    WorkerPanic,
}

/// A failure, as delivered to [`EntraIdAuth::subscribe_errors`](crate::EntraIdAuth::subscribe_errors) (the Go
/// library's `OnReAuthenticationError`): a failed re-authentication of one attached client, or a failed token
/// refresh of the manager behind them.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReauthError {
    /// What failed.
    pub kind: ReauthErrorKind,
    /// Which attached client failed (`client <id>`, `subscriber <id>`, `pool of <n>`), or `token manager`.
    pub target: String,
    /// The attempt that failed, from 1 (for a refresh, the manager's consecutive failures; 0 for a panic).
    pub attempt: u32,
    /// What fred or the manager reported (never contains the token).
    pub message: String,
    /// Whether the client was then reconnected with the current token.
    pub reconnected: bool,
    /// The token manager's error, when the failure came from the token side: a failed refresh, or a reconnect
    /// whose new connection could not get a token.
    pub token_error: Option<Arc<Error>>,
}

impl ReauthError {
    /// The token manager's error behind this failure, if it came from the token side.
    pub fn token_error(&self) -> Option<&Arc<Error>> {
        self.token_error.as_ref()
    }

    /// Entra's error body (AADSTS codes, trace and correlation ids) when the token endpoint refused the request.
    pub fn entra_error(&self) -> Option<&EntraError> {
        self.token_error.as_deref().and_then(Error::entra_error)
    }

    /// Whether trying again can help: the token error's [`is_retryable`](Error::is_retryable) when there is one
    /// (an AADSTS refusal of the credential is not); `true` for a failed push to Redis, which the adapter retries
    /// itself.
    pub fn is_retryable(&self) -> bool {
        self.token_error.as_deref().is_none_or(Error::is_retryable)
    }
}

impl fmt::Display for ReauthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ReauthErrorKind::Refresh => write!(
                f,
                "token refresh failed (attempt {}): {}",
                self.attempt, self.message
            )?,
            _ => write!(
                f,
                "re-authentication of {} failed (attempt {}): {}",
                self.target, self.attempt, self.message
            )?,
        }
        if self.reconnected {
            f.write_str("; reconnected with the current token")?;
        }
        Ok(())
    }
}

impl std::error::Error for ReauthError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.token_error
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tagged_fred_error_gives_the_core_error_back() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215]}"#;
        let core = Arc::new(Error::from_http_status(
            "ClientSecretCredential",
            401,
            None,
            body,
        ));
        let fred = no_token(&core);
        assert_eq!(*fred.kind(), ErrorKind::Auth);
        let back = token_error(&fred).expect("tagged");
        assert!(Arc::ptr_eq(&back, &core));
        assert!(back.entra_error().is_some_and(|e| e.has_code(7000215)));
        // A clone of the fred error (fred clones errors for every waiter) carries the same tag.
        assert!(token_error(&fred.clone()).is_some());
    }

    #[test]
    fn a_refresh_failure_exposes_its_core_error() {
        let core = Arc::new(Error::authentication_failed(
            "ClientSecretCredential",
            "refused",
        ));
        let error = ReauthError {
            kind: ReauthErrorKind::Refresh,
            target: "token manager".into(),
            attempt: 1,
            message: core.to_string(),
            reconnected: false,
            token_error: Some(core.clone()),
        };
        assert!(!error.is_retryable());
        assert!(std::error::Error::source(&error).is_some());
        assert!(
            error.to_string().starts_with("token refresh failed"),
            "{error}"
        );
    }
}
