//! The fred adapter's telemetry: the names of the spans it opens for each fan-out of a new token and for each
//! attached client's part in it, and, with the `metrics` feature, the names of its metrics, sent through the
//! `metrics` facade to whatever recorder the application installs. `docs/telemetry.md` has the table; the token
//! manager's own are in [`entraid_manager::telemetry`].
//!
//! - `entraid.fanout` (INFO), one per new token: `generation`, `clients` (attached when it started) and, when
//!   every attached client has the token, `duration_ms` (tokio's clock).
//! - `entraid.reauth` (INFO), a child of its fan-out's span, one per attached client and token: `target`
//!   (`client <id>`, `subscriber <id>`, `pool of <n>`), `generation`, and when done `attempts` and `reconnected`.
//!
//! Without the `metrics` feature the metric calls are empty and inlined away: nothing of the facade is compiled.

use std::time::Duration;

/// The name of the span of one fan-out (one new token pushed to every attached client).
pub const FANOUT_SPAN: &str = "entraid.fanout";
/// The name of the span of one attached client's re-authentication with one token.
pub const REAUTH_SPAN: &str = "entraid.reauth";

/// Metric (counter): new tokens pushed to the attached clients (fan-outs started).
pub const ROTATIONS: &str = "entraid_fred_rotations_total";
/// Metric (counter): fan-outs finished.
pub const FANOUTS: &str = "entraid_fred_fanouts_total";
/// Metric (counter): successful re-authentications (a pool counts each client, a cluster client once).
pub const REAUTHS: &str = "entraid_fred_reauths_total";
/// Metric (counter): failed re-authentication attempts (each retry counts).
pub const REAUTH_FAILURES: &str = "entraid_fred_reauth_failures_total";
/// Metric (counter): clients reconnected instead of re-authenticated.
pub const RECONNECTS: &str = "entraid_fred_reconnects_total";
/// Metric (counter): reconnects of clients whose `AUTH` waited behind a blocking command the access policy does
/// not let the adapter interrupt (also counted in [`RECONNECTS`]).
pub const BLOCKED_RECONNECTS: &str = "entraid_fred_blocked_reconnects_total";
/// Metric (counter): blocking commands interrupted with `CLIENT UNBLOCK` so an `AUTH` could run.
pub const UNBLOCKS: &str = "entraid_fred_unblocks_total";
/// Metric (gauge): clients attached now (to every `EntraIdAuth` of the process).
pub const ATTACHED: &str = "entraid_fred_attached_clients";
/// Metric (histogram, seconds): from a new token to every attached client having it.
pub const FANOUT_DURATION: &str = "entraid_fred_fanout_duration_seconds";

/// A fan-out took `latency`.
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn fanout_latency(latency: Duration) {
    #[cfg(feature = "metrics")]
    metrics::histogram!(FANOUT_DURATION).record(latency.as_secs_f64());
}

/// A client was attached (`true`) or detached.
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn attached(attached: bool) {
    #[cfg(feature = "metrics")]
    {
        let gauge = metrics::gauge!(ATTACHED);
        if attached {
            gauge.increment(1.0);
        } else {
            gauge.decrement(1.0);
        }
    }
}
