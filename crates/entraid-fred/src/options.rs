//! [`ReauthOptions`]: how live connections are re-authenticated.

use std::time::Duration;

use entraid_core::Error;

/// How [`EntraIdAuth`](crate::EntraIdAuth) re-authenticates live connections. Every field has a documented
/// default (`ReauthOptions::default()`); build one with struct update syntax and check it with
/// [`validate`](Self::validate) (which [`EntraIdAuth::with_options`](crate::EntraIdAuth::with_options) calls).
///
/// ```
/// use std::time::Duration;
/// use entraid_fred::ReauthOptions;
///
/// let options = ReauthOptions {
///     reconnect_margin: Duration::from_secs(30),
///     ..ReauthOptions::default()
/// };
/// assert!(options.validate().is_ok());
///
/// let bad = ReauthOptions { auth_timeout: Duration::ZERO, ..ReauthOptions::default() };
/// assert!(bad.validate().is_err());
/// ```
#[derive(Debug, Clone)]
pub struct ReauthOptions {
    /// How long one `AUTH` on one client may take before it counts as failed. Default: 5 s. Must be more than
    /// zero.
    pub auth_timeout: Duration,
    /// How long an `AUTH` may wait behind a blocking command (`BLPOP`, `XREAD BLOCK`, ...) before that command is
    /// interrupted with `CLIENT UNBLOCK <id> TIMEOUT`, so the `AUTH` can go through. The blocking call then returns
    /// as if it had timed out (a nil reply). Default: 50 ms. Must be less than `auth_timeout`.
    pub unblock_after: Duration,
    /// Where the identity's access policy refuses `CLIENT UNBLOCK` (Azure's Data Contributor does; detected at
    /// the first blocked `AUTH` and remembered per deployment, i.e. the servers the client connects to, with one
    /// WARN): wait for the blocking command to end by itself (its own timeout, or an item) until the token the
    /// connection holds is about to expire (see `reconnect_margin`), then reconnect that client with the current
    /// token. Blocking calls with a timeout shorter than that window never cause a reconnect. `false` leaves such a connection to the server,
    /// which closes it at expiry. Default: `true`.
    pub reconnect_blocked: bool,
    /// The first delay before re-trying a failed re-authentication; it doubles up to `retry_max_delay`.
    /// Default: 100 ms. Must be more than zero.
    pub retry_initial_delay: Duration,
    /// The longest delay between re-authentication attempts. Default: 2 s. Must be at least
    /// `retry_initial_delay`.
    pub retry_max_delay: Duration,
    /// When a client still cannot re-authenticate and the token its connections hold has less than this left
    /// (or less than a fifth of its lifetime, whichever is shorter), the client is reconnected with the current
    /// token rather than left for the server to close. Default: 10 s.
    pub reconnect_margin: Duration,
}

impl Default for ReauthOptions {
    fn default() -> Self {
        Self {
            auth_timeout: Duration::from_secs(5),
            unblock_after: Duration::from_millis(50),
            reconnect_blocked: true,
            retry_initial_delay: Duration::from_millis(100),
            retry_max_delay: Duration::from_secs(2),
            reconnect_margin: Duration::from_secs(10),
        }
    }
}

impl ReauthOptions {
    /// Checks the options.
    ///
    /// # Errors
    /// [`Error::Configuration`] naming the field and the allowed range when a value can never work.
    pub fn validate(&self) -> Result<(), Error> {
        if self.auth_timeout.is_zero() {
            return Err(Error::configuration("auth_timeout must be more than zero"));
        }
        if self.unblock_after >= self.auth_timeout {
            return Err(Error::configuration(format!(
                "unblock_after ({:?}) must be less than auth_timeout ({:?})",
                self.unblock_after, self.auth_timeout
            )));
        }
        if self.retry_initial_delay.is_zero() {
            return Err(Error::configuration(
                "retry_initial_delay must be more than zero",
            ));
        }
        if self.retry_max_delay < self.retry_initial_delay {
            return Err(Error::configuration(format!(
                "retry_max_delay ({:?}) must be at least retry_initial_delay ({:?})",
                self.retry_max_delay, self.retry_initial_delay
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_each_bad_value_is_named() {
        assert!(ReauthOptions::default().validate().is_ok());
        let cases = [
            (
                ReauthOptions {
                    auth_timeout: Duration::ZERO,
                    ..ReauthOptions::default()
                },
                "auth_timeout",
            ),
            (
                ReauthOptions {
                    unblock_after: Duration::from_secs(5),
                    ..ReauthOptions::default()
                },
                "unblock_after",
            ),
            (
                ReauthOptions {
                    retry_initial_delay: Duration::ZERO,
                    ..ReauthOptions::default()
                },
                "retry_initial_delay",
            ),
            (
                ReauthOptions {
                    retry_max_delay: Duration::from_millis(1),
                    ..ReauthOptions::default()
                },
                "retry_max_delay",
            ),
        ];
        for (options, field) in cases {
            let error = options.validate().unwrap_err().to_string();
            assert!(error.contains(field), "{error}");
        }
    }
}
