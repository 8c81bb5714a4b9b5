//! The token manager's telemetry: the name of the span it opens for each identity-provider request
//! ([`REQUEST_SPAN`]) and, with the `metrics` feature, the names of its metrics, sent through the `metrics` facade
//! to whatever recorder the application installs (Prometheus, OpenTelemetry, ...). `docs/telemetry.md` has the
//! table.
//!
//! Each identity-provider request runs in a span `entraid.token_request` (INFO) with the fields `provider`,
//! `attempt` (1 for the first request after a success, +1 for each consecutive failure), and, when it ends,
//! `outcome` (`token`, `identical` or `error`), `duration_ms` (on tokio's clock), `generation` (of a new token) and
//! `retryable` (of an error). The provider's own events and spans (HTTP requests, ...) nest under it.
//!
//! Without the `metrics` feature the metric calls are empty and inlined away: nothing of the facade is compiled.

use std::time::Duration;

use tokio::time::Instant;
use tracing::Span;
use tracing::field::Empty;

/// The name of the span of one identity-provider request.
pub const REQUEST_SPAN: &str = "entraid.token_request";

/// Metric: seconds until the held token expires (0 without one), per provider. A gauge, refreshed on every new
/// token and at every clock check (`clock_check_interval`, 10 s by default).
pub const SECONDS_UNTIL_EXPIRY: &str = "entraid_token_seconds_until_expiry";
/// Metric: new tokens received (answers repeating the token held are not counted), per provider. A counter.
pub const REFRESHES: &str = "entraid_token_refreshes_total";
/// Metric: failed identity-provider requests, per provider and `retryable` (`true`/`false`). A counter.
pub const REFRESH_FAILURES: &str = "entraid_token_refresh_failures_total";
/// Metric: how long identity-provider requests took, in seconds, per provider and `outcome`. A histogram.
pub const REQUEST_DURATION: &str = "entraid_token_request_duration_seconds";

/// What one request came to, as the span's `outcome` field and the duration histogram's `outcome` label says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A new token, published.
    Token,
    /// The token already held (a provider's cache), not published.
    Identical,
    /// An error (the provider's, the parser's, a timeout or a panic).
    Error,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Identical => "identical",
            Self::Error => "error",
        }
    }
}

/// One identity-provider request, timed: its span (`entraid.token_request`, INFO) with `provider` and `attempt`
/// (1 for the first request after a success), and `outcome`, `duration_ms`, `generation` (the token's, for a new
/// one) and `retryable` (for an error) recorded when it ends.
pub(crate) struct RequestTelemetry {
    span: Span,
    started: Instant,
}

impl RequestTelemetry {
    pub(crate) fn start(provider: &str, attempt: u32) -> Self {
        let span = tracing::info_span!(
            "entraid.token_request",
            provider,
            attempt,
            outcome = Empty,
            duration_ms = Empty,
            generation = Empty,
            retryable = Empty,
        );
        Self {
            span,
            started: Instant::now(),
        }
    }

    /// The span, to run the request in.
    pub(crate) fn span(&self) -> &Span {
        &self.span
    }

    /// Records how the request ended, on the span and in the metrics.
    pub(crate) fn finish(self, provider: &str, outcome: Outcome) -> Duration {
        let elapsed = self.started.elapsed();
        self.span.record("outcome", outcome.as_str());
        self.span.record(
            "duration_ms",
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        );
        request_duration(provider, outcome, elapsed);
        elapsed
    }

    /// Records the generation of the new token the request brought.
    pub(crate) fn generation(&self, generation: u64) {
        self.span.record("generation", generation);
    }

    /// Records whether the request's error can be retried.
    pub(crate) fn retryable(&self, retryable: bool) {
        self.span.record("retryable", retryable);
    }
}

/// A new token arrived.
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn refreshed(provider: &str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(REFRESHES, "provider" => provider.to_owned()).increment(1);
}

/// A request failed.
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn failed(provider: &str, retryable: bool) {
    #[cfg(feature = "metrics")]
    metrics::counter!(
        REFRESH_FAILURES,
        "provider" => provider.to_owned(),
        "retryable" => if retryable { "true" } else { "false" }
    )
    .increment(1);
}

/// How long a request took.
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
fn request_duration(provider: &str, outcome: Outcome, elapsed: Duration) {
    #[cfg(feature = "metrics")]
    metrics::histogram!(
        REQUEST_DURATION,
        "provider" => provider.to_owned(),
        "outcome" => outcome.as_str()
    )
    .record(elapsed.as_secs_f64());
}

/// The held token expires at `expires_at` on tokio's clock (`None`: no token held).
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn expiry(provider: &str, expires_at: Option<Instant>) {
    #[cfg(feature = "metrics")]
    {
        let left = expires_at.map_or(Duration::ZERO, |at| {
            at.saturating_duration_since(Instant::now())
        });
        metrics::gauge!(SECONDS_UNTIL_EXPIRY, "provider" => provider.to_owned())
            .set(left.as_secs_f64());
    }
}
