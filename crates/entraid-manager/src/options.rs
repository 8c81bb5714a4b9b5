//! [`TokenManagerOptions`] and [`RetryOptions`]: when to refresh, how to retry, how long to wait for the identity
//! provider, and how to read its answers. Every field has a documented default; [`TokenManagerOptions::validate`]
//! turns options that can never work into [`Error::Configuration`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use entraid_core::{DefaultResponseParser, Error, SharedResponseParser};

use crate::clock::WallClock;

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
///
/// **Outage cadence.** While the manager holds no valid token (nothing works until one arrives), a retryable
/// failure is retried within `[outage_delay / 2, outage_delay]` (default `[1 s, 2 s]`) instead, and a failure while
/// the token will expire before the next attempt is retried that soon after the expiry; a `Retry-After` is still a
/// floor. So the first token comes within `outage_delay` of the identity endpoint's return.
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
    /// The longest wait between two attempts while no valid token is held (see *Outage cadence* above). Default
    /// 2 s. Must be more than zero.
    pub outage_delay: Duration,
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
            outage_delay: Duration::from_secs(2),
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
            .field("outage_delay", &self.outage_delay)
            .finish()
    }
}

/// Spreads refreshes of many processes over a window, so a fleet that started together does not refresh (and
/// re-authenticate every connection) in lock step, as Azure's guidance asks.
///
/// The window is `min(share * lifetime, max)`, and at most half the time until the planned refresh. Each token's
/// refresh is moved **earlier** by a random time in `[0, window]`: never later than the refresh rule's point, so
/// never later than `expires_on - lower_refresh_bound` and never past expiry. Default [`RefreshJitter::DEFAULT`]
/// (5 % of the lifetime, at most 5 minutes: a one-hour token is refreshed 39 to 42 minutes after receipt).
/// [`RefreshJitter::NONE`] (or a zero `share` or `max`) disables it.
///
/// ```
/// use std::time::Duration;
/// use entraid_manager::RefreshJitter;
///
/// let hour = Duration::from_secs(3600);
/// assert_eq!(RefreshJitter::DEFAULT.window(hour), Duration::from_secs(180));
/// assert_eq!(RefreshJitter::DEFAULT.window(24 * hour), Duration::from_secs(300));
/// assert_eq!(RefreshJitter::NONE.window(hour), Duration::ZERO);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefreshJitter {
    /// The window as a share of the token's lifetime. Must be finite and in `[0, 1)`.
    pub share: f64,
    /// The largest window.
    pub max: Duration,
}

impl RefreshJitter {
    /// 5 % of the lifetime, at most 5 minutes.
    pub const DEFAULT: Self = Self {
        share: 0.05,
        max: Duration::from_secs(300),
    };

    /// No jitter: every token is refreshed exactly at the refresh rule's point.
    pub const NONE: Self = Self {
        share: 0.0,
        max: Duration::ZERO,
    };

    /// The jitter window for a token living `lifetime`: `min(share * lifetime, max)`.
    pub fn window(&self, lifetime: Duration) -> Duration {
        if !(self.share.is_finite() && self.share > 0.0) {
            return Duration::ZERO;
        }
        Duration::try_from_secs_f64(lifetime.as_secs_f64() * self.share)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

impl Default for RefreshJitter {
    fn default() -> Self {
        Self::DEFAULT
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
    /// Moves each refresh earlier by a random time within a window, so a fleet does not refresh in lock step.
    /// Default [`RefreshJitter::DEFAULT`] (5 % of the lifetime, at most 5 minutes); [`RefreshJitter::NONE`]
    /// disables it.
    pub refresh_jitter: RefreshJitter,
    /// When the provider answers with the token the manager already holds (the same access token, or the same
    /// expiry: a provider serving its own cache), the token is not published again and the next attempt comes
    /// at the refresh rule applied to the token's *remaining* life, but never sooner than this after the answer
    /// (and never after the token's expiry). Default 5 s. Must be more than zero.
    pub identical_token_floor: Duration,
    /// Seed of the manager's random numbers (refresh and retry jitter). Default `None`: seeded from the process's
    /// random hasher keys, so two processes differ. Set it for reproducible schedules (tests, simulations).
    pub rng_seed: Option<u64>,
    /// The wall clock the manager compares tokens' `expires_on` with. Default [`WallClock::system`].
    pub wall_clock: WallClock,
    /// How often the background task compares tokio's clock with the wall clock while it waits. Default 10 s;
    /// zero disables the periodic check (reads still check the wall-clock expiry).
    pub clock_check_interval: Duration,
    /// How far the wall clock may run ahead of tokio's clock since a token arrived before the manager treats it
    /// as a suspend or a VM freeze (tokio's clock stopped while time passed): it recomputes the token's expiry
    /// from the wall clock, drops it when it has expired, and refreshes at once. Default 10 s. Must be more than
    /// zero.
    pub clock_jump_threshold: Duration,
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
            refresh_jitter: RefreshJitter::DEFAULT,
            identical_token_floor: Duration::from_secs(5),
            rng_seed: None,
            wall_clock: WallClock::system(),
            clock_check_interval: Duration::from_secs(10),
            clock_jump_threshold: Duration::from_secs(10),
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
        let jitter = self.refresh_jitter.share;
        if !(jitter.is_finite() && (0.0..1.0).contains(&jitter)) {
            return Err(Error::configuration(format!(
                "refresh_jitter.share must be finite and in [0, 1), got {jitter}"
            )));
        }
        if self.identical_token_floor.is_zero() {
            return Err(Error::configuration(
                "identical_token_floor must be more than zero",
            ));
        }
        if self.clock_jump_threshold.is_zero() {
            return Err(Error::configuration(
                "clock_jump_threshold must be more than zero",
            ));
        }
        let retry = &self.retry;
        if retry.outage_delay.is_zero() {
            return Err(Error::configuration(
                "retry.outage_delay must be more than zero",
            ));
        }
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
        assert_eq!(o.retry.outage_delay, Duration::from_secs(2));
        assert_eq!(o.refresh_jitter, RefreshJitter::DEFAULT);
        assert_eq!(o.refresh_jitter.share, 0.05);
        assert_eq!(o.refresh_jitter.max, Duration::from_secs(300));
        assert_eq!(o.identical_token_floor, Duration::from_secs(5));
        assert_eq!(o.rng_seed, None);
        assert_eq!(o.clock_check_interval, Duration::from_secs(10));
        assert_eq!(o.clock_jump_threshold, Duration::from_secs(10));
        assert!(o.validate().is_ok());
        assert_eq!(format!("{:?}", o.response_parser), "DefaultResponseParser");
        assert!(format!("{o:?}").contains("is_retryable: <fn>"));
    }

    #[test]
    fn jitter_windows() {
        let s = Duration::from_secs;
        let j = RefreshJitter::DEFAULT;
        assert_eq!(j.window(s(100)), s(5));
        assert_eq!(j.window(s(3600)), s(180));
        assert_eq!(j.window(s(86_400)), s(300));
        assert_eq!(j.window(Duration::MAX), s(300));
        assert_eq!(j.window(Duration::ZERO), Duration::ZERO);
        assert_eq!(RefreshJitter::NONE.window(s(3600)), Duration::ZERO);
        let no_max = RefreshJitter {
            share: 0.5,
            max: Duration::ZERO,
        };
        assert_eq!(no_max.window(s(3600)), Duration::ZERO);
        let nan = RefreshJitter {
            share: f64::NAN,
            max: s(10),
        };
        assert_eq!(nan.window(s(3600)), Duration::ZERO);
        assert_eq!(RefreshJitter::default(), RefreshJitter::DEFAULT);
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
        for share in [-0.1, 1.0, f64::NAN, f64::INFINITY] {
            let m = err(TokenManagerOptions {
                refresh_jitter: RefreshJitter {
                    share,
                    max: Duration::from_secs(1),
                },
                ..d()
            });
            assert!(m.contains("refresh_jitter"), "{m}");
        }
        let m = err(TokenManagerOptions {
            identical_token_floor: Duration::ZERO,
            ..d()
        });
        assert!(m.contains("identical_token_floor"), "{m}");
        let m = err(TokenManagerOptions {
            clock_jump_threshold: Duration::ZERO,
            ..d()
        });
        assert!(m.contains("clock_jump_threshold"), "{m}");
        let m = err(retry(RetryOptions {
            outage_delay: Duration::ZERO,
            ..RetryOptions::default()
        }));
        assert!(m.contains("outage_delay"), "{m}");
        for multiplier in [0.5, f64::NAN, f64::INFINITY] {
            let m = err(retry(RetryOptions {
                backoff_multiplier: multiplier,
                ..RetryOptions::default()
            }));
            assert!(m.contains("backoff_multiplier"), "{m}");
        }
    }
}
