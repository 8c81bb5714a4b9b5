//! [`ReauthOptions`]: how live connections are re-authenticated.

use std::time::Duration;

/// How [`EntraIdAuth`](crate::EntraIdAuth) re-authenticates live connections. Every field has a documented
/// default (`ReauthOptions::default()`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReauthOptions {
    /// How long one `AUTH` on one client may take before it counts as failed. Default: 5 s.
    pub auth_timeout: Duration,
    /// How long an `AUTH` may wait behind a blocking command (`BLPOP`, `XREAD BLOCK`, ...) before that command is
    /// interrupted with `CLIENT UNBLOCK <id> TIMEOUT`, so the `AUTH` can go through. The blocking call then returns
    /// as if it had timed out (a nil reply). Default: 50 ms.
    pub unblock_after: Duration,
    /// The first delay before re-trying a failed re-authentication; it doubles up to `retry_max_delay`.
    /// Default: 100 ms.
    pub retry_initial_delay: Duration,
    /// The longest delay between re-authentication attempts. Default: 2 s.
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
            retry_initial_delay: Duration::from_millis(100),
            retry_max_delay: Duration::from_secs(2),
            reconnect_margin: Duration::from_secs(10),
        }
    }
}
