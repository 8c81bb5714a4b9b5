//! [`TokenManagerOptions`] and [`RetryOptions`]: when to refresh, how to retry, how long to wait for the identity
//! provider, and how to read its answers. Every field has a documented default; [`TokenManagerOptions::validate`]
//! turns options that can never work into [`Error::Configuration`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use entraid_core::{DefaultResponseParser, Error, SharedResponseParser};

/// Decides whether a failed identity-provider request is worth retrying soon (see [`RetryOptions::is_retryable`]).
pub type RetryPredicate = Arc<dyn Fn(&Error) -> bool + Send + Sync>;

/// The default [`RetryOptions::is_retryable`]: [`Error::is_retryable`].
///
/// Retries transport errors, timeouts (including the manager's own `request_timeout`), HTTP 408, 429 and 500-504
/// (with their `Retry-After`), and custom errors marked retryable. Never retries authentication failures (400, 401,
/// 403 with an Entra error body), other 4xx answers, unusable responses or bad configuration.
pub fn default_is_retryable(error: &Error) -> bool {
    error.is_retryable()
}

/// How the manager retries a failed identity-provider request.
///
/// A *burst* is up to `max_attempts` attempts, separated by exponential backoff with full jitter: before attempt
/// `k + 1` the manager waits a random time in `[0, min(max_delay, initial_delay * backoff_multiplier^(k-1))]`.
/// When the burst is used up, or an error is not retryable, the manager does **not** give up: it keeps trying,
/// waiting a random time in `[cap / 2, cap]` between attempts, where `cap` continues the same backoff capped at
/// `max_delay` (and is `max_delay` after an error that is not retryable). A server's `Retry-After` is a floor on
/// any of these waits (up to [`RetryOptions::MAX_RETRY_AFTER`]).
///
/// With the defaults the waits are: `[0, 1 s]`, `[0, 2 s]`, then `[2, 4 s]`, `[4, 8 s]`, and `[5, 10 s]` from then
/// on, until a token arrives.
#[derive(Clone)]
pub struct RetryOptions {
    /// Attempts in one burst. Default 3. Must be at least 1.
    pub max_attempts: u32,
    /// The first backoff ceiling. Default 1 s. Must be more than zero and at most `max_delay`.
    pub initial_delay: Duration,
    /// The largest wait between two attempts (unless a `Retry-After` asks for more). Default 10 s.
    pub max_delay: Duration,
    /// How much the backoff ceiling grows after each failure. Default 2.0. Must be finite and at least 1.0.
    pub backoff_multiplier: f64,
    /// Whether an error is worth retrying within the burst. Default [`default_is_retryable`].
    pub is_retryable: RetryPredicate,
}

impl RetryOptions {
    /// The longest `Retry-After` honoured: 10 minutes. A larger value (a broken header) is cut to this.
    pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

    /// Sets the retry predicate from a closure.
    ///
    /// ```
    /// use entraid_manager::RetryOptions;
    ///
    /// // Also retry 404s (an endpoint that is still starting), on top of the default rule.
    /// let retry = RetryOptions::default()
    ///     .with_is_retryable(|e| e.is_retryable() || e.status() == Some(404));
    /// # let _ = retry;
    /// ```
    pub fn with_is_retryable(
        mut self,
        is_retryable: impl Fn(&Error) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.is_retryable = Arc::new(is_retryable);
        self
    }
}

impl Default for RetryOptions {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(10),
            backoff_multiplier: 2.0,
            is_retryable: Arc::new(default_is_retryable),
        }
    }
}

impl fmt::Debug for RetryOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryOptions")
            .field("max_attempts", &self.max_attempts)
            .field("initial_delay", &self.initial_delay)
            .field("max_delay", &self.max_delay)
            .field("backoff_multiplier", &self.backoff_multiplier)
            .field("is_retryable", &format_args!("<fn>"))
            .finish()
    }
}

/// Options of a [`TokenManager`](crate::TokenManager).
///
/// The defaults follow the go-redis-entraid `TokenManagerOptions` where it names one.
///
/// ```
/// use std::time::Duration;
/// use entraid_manager::TokenManagerOptions;
///
/// let options = TokenManagerOptions {
///     expiration_refresh_ratio: 0.8,
///     lower_refresh_bound: Duration::from_secs(5 * 60),
///     ..TokenManagerOptions::default()
/// };
/// assert!(options.validate().is_ok());
///
/// let bad = TokenManagerOptions { expiration_refresh_ratio: 1.5, ..TokenManagerOptions::default() };
/// assert!(bad.validate().is_err());
/// ```
#[derive(Clone, Debug)]
pub struct TokenManagerOptions {
    /// The share of a token's lifetime after which it is refreshed. Default 0.7. Must be in `(0, 1]`.
    ///
    /// A token is refreshed at the earliest of: `received_at + ratio * lifetime`;
    /// `expires_on - lower_refresh_bound`; the response's recommended refresh time (`refresh_in` / `refresh_on`).
    pub expiration_refresh_ratio: f64,
    /// Refresh no later than this long before expiry. Default zero (the ratio alone decides).
    ///
    /// When a token lives shorter than this bound, the bound is ignored for that token (with a warning), so the
    /// manager never asks for tokens in a loop.
    pub lower_refresh_bound: Duration,
    /// The timeout around every identity-provider call. Default 30 s. Must be more than zero. A call that takes
    /// longer is cancelled and counts as a retryable [`Error::Timeout`].
    pub request_timeout: Duration,
    /// Retry behaviour. Default [`RetryOptions::default`].
    pub retry: RetryOptions,
    /// Turns identity-provider responses into tokens. Default [`DefaultResponseParser`].
    pub response_parser: SharedResponseParser,
    /// How many undelivered events one [`Subscription`](crate::Subscription) holds before it drops old ones.
    /// Default 64. Must be at least 1. See [`Subscription`](crate::Subscription) for the policy.
    pub subscription_capacity: usize,
}

impl Default for TokenManagerOptions {
    fn default() -> Self {
        Self {
            expiration_refresh_ratio: 0.7,
            lower_refresh_bound: Duration::ZERO,
            request_timeout: Duration::from_secs(30),
            retry: RetryOptions::default(),
            response_parser: Arc::new(DefaultResponseParser),
            subscription_capacity: 64,
        }
    }
}

impl TokenManagerOptions {
    /// Checks the options.
    ///
    /// # Errors
    /// [`Error::Configuration`] naming the field and the allowed range when a value can never work.
    pub fn validate(&self) -> Result<(), Error> {
        let ratio = self.expiration_refresh_ratio;
        if !(ratio > 0.0 && ratio <= 1.0) {
            return Err(Error::configuration(format!(
                "expiration_refresh_ratio must be in (0, 1], got {ratio}"
            )));
        }
        if self.request_timeout.is_zero() {
            return Err(Error::configuration(
                "request_timeout must be more than zero",
            ));
        }
        if self.subscription_capacity == 0 {
            return Err(Error::configuration(
                "subscription_capacity must be at least 1",
            ));
        }
        let retry = &self.retry;
        if retry.max_attempts == 0 {
            return Err(Error::configuration(
                "retry.max_attempts must be at least 1",
            ));
        }
        if retry.initial_delay.is_zero() {
            return Err(Error::configuration(
                "retry.initial_delay must be more than zero",
            ));
        }
        if retry.max_delay < retry.initial_delay {
            return Err(Error::configuration(format!(
                "retry.max_delay ({:?}) must be at least retry.initial_delay ({:?})",
                retry.max_delay, retry.initial_delay
            )));
        }
        let multiplier = retry.backoff_multiplier;
        if !(multiplier.is_finite() && multiplier >= 1.0) {
            return Err(Error::configuration(format!(
                "retry.backoff_multiplier must be finite and at least 1.0, got {multiplier}"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(options: TokenManagerOptions) -> String {
        match options.validate() {
            Err(Error::Configuration { message }) => message,
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_match_the_documentation() {
        let o = TokenManagerOptions::default();
        assert_eq!(o.expiration_refresh_ratio, 0.7);
        assert_eq!(o.lower_refresh_bound, Duration::ZERO);
        assert_eq!(o.request_timeout, Duration::from_secs(30));
        assert_eq!(o.subscription_capacity, 64);
        assert_eq!(o.retry.max_attempts, 3);
        assert_eq!(o.retry.initial_delay, Duration::from_secs(1));
        assert_eq!(o.retry.max_delay, Duration::from_secs(10));
        assert_eq!(o.retry.backoff_multiplier, 2.0);
        assert!(o.validate().is_ok());
        assert_eq!(format!("{:?}", o.response_parser), "DefaultResponseParser");
        assert!(format!("{o:?}").contains("is_retryable: <fn>"));
    }

    #[test]
    fn default_retry_rule() {
        let retry = RetryOptions::default();
        let yes = [
            Error::transport("p", "reset", None),
            Error::timeout("p", Duration::from_secs(1)),
            Error::from_http_status("p", 429, Some(Duration::from_secs(3)), b""),
            Error::from_http_status("p", 408, None, b""),
            Error::from_http_status("p", 500, None, b""),
            Error::from_http_status("p", 504, None, b""),
        ];
        for e in &yes {
            assert!((retry.is_retryable)(e), "{e}");
        }
        let entra = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret."}"#;
        let no = [
            Error::from_http_status("p", 400, None, entra),
            Error::from_http_status("p", 401, None, entra),
            Error::from_http_status("p", 400, None, b""),
            Error::from_http_status("p", 404, None, b""),
            Error::unavailable("p", "no endpoint"),
            Error::invalid_response("not json"),
            Error::TokenExpired { seconds_ago: 3 },
        ];
        for e in &no {
            assert!(!(retry.is_retryable)(e), "{e}");
        }
        let custom = RetryOptions::default().with_is_retryable(|e| e.status() == Some(404));
        assert!((custom.is_retryable)(&Error::from_http_status(
            "p", 404, None, b""
        )));
    }

    #[test]
    fn invalid_options_are_configuration_errors() {
        let d = TokenManagerOptions::default;
        for ratio in [0.0, -0.1, 1.01, f64::NAN, f64::INFINITY] {
            let m = err(TokenManagerOptions {
                expiration_refresh_ratio: ratio,
                ..d()
            });
            assert!(m.contains("expiration_refresh_ratio"), "{m}");
        }
        assert!(
            TokenManagerOptions {
                expiration_refresh_ratio: 1.0,
                ..d()
            }
            .validate()
            .is_ok()
        );
        let m = err(TokenManagerOptions {
            request_timeout: Duration::ZERO,
            ..d()
        });
        assert!(m.contains("request_timeout"), "{m}");
        let m = err(TokenManagerOptions {
            subscription_capacity: 0,
            ..d()
        });
        assert!(m.contains("subscription_capacity"), "{m}");
        let retry = |r: RetryOptions| TokenManagerOptions { retry: r, ..d() };
        let m = err(retry(RetryOptions {
            max_attempts: 0,
            ..RetryOptions::default()
        }));
        assert!(m.contains("max_attempts"), "{m}");
        let m = err(retry(RetryOptions {
            initial_delay: Duration::ZERO,
            ..RetryOptions::default()
        }));
        assert!(m.contains("initial_delay"), "{m}");
        let m = err(retry(RetryOptions {
            max_delay: Duration::from_millis(500),
            ..RetryOptions::default()
        }));
        assert!(m.contains("max_delay"), "{m}");
        for multiplier in [0.5, f64::NAN, f64::INFINITY] {
            let m = err(retry(RetryOptions {
                backoff_multiplier: multiplier,
                ..RetryOptions::default()
            }));
            assert!(m.contains("backoff_multiplier"), "{m}");
        }
    }
}
