//! Time: the crate's one wall-clock read, and the refresh-time rule.
//!
//! Everything the manager schedules runs on tokio's clock ([`tokio::time::Instant`]), so tests pause and advance
//! time. A token's own times are wall-clock (`SystemTime`) values from entraid-core; they are turned into tokio
//! instants once, when the token arrives, from its *lifetime* (`expires_on - received_at`) and the tokio instant of
//! receipt. Only [`wall_clock_now`] reads the system clock, to give the response parser the `received_at` it checks
//! `exp` against.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// The wall-clock time now: the `received_at` handed to the response parser.
///
/// This is the only place in the crate that calls `SystemTime::now` (clippy's `disallowed-methods` rejects it
/// everywhere else). It is read once per token, at receipt; refresh timing never compares wall-clock times again.
#[allow(clippy::disallowed_methods)]
pub(crate) fn wall_clock_now() -> SystemTime {
    SystemTime::now()
}

/// The longest delay the manager schedules: 30 years (timers further out than that are the same as never).
pub(crate) const FAR: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// `at + d`, with `d` cut to [`FAR`].
pub(crate) fn later(at: Instant, d: Duration) -> Instant {
    at.checked_add(d.min(FAR)).unwrap_or(at)
}

/// Which rule chose the refresh time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefreshRule {
    /// `ratio * lifetime` after receipt.
    Ratio,
    /// `lower_refresh_bound` before expiry.
    LowerBound,
    /// The issuer's `refresh_in` / `refresh_on`.
    Issuer,
}

impl RefreshRule {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Ratio => "ratio",
            Self::LowerBound => "lower_refresh_bound",
            Self::Issuer => "refresh_in",
        }
    }
}

/// When to refresh a token, as a delay after receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RefreshPlan {
    /// Delay after receipt.
    pub(crate) after: Duration,
    /// The rule that chose it.
    pub(crate) rule: RefreshRule,
    /// The lower bound was set but this token lives too short for it (it was ignored).
    pub(crate) lower_bound_ignored: bool,
}

/// The refresh rule: the earliest of `ratio * lifetime`, `lifetime - lower_bound` and `refresh_in`.
///
/// A bound that would leave no time at all (a lower bound at least the lifetime, a zero `refresh_in`) is ignored,
/// so a short-lived token never makes the manager ask again at once, in a loop. `ratio` is in `(0, 1]`.
pub(crate) fn refresh_plan(
    lifetime: Duration,
    refresh_in: Option<Duration>,
    ratio: f64,
    lower_bound: Duration,
) -> RefreshPlan {
    let mut plan = RefreshPlan {
        after: lifetime.mul_f64(ratio),
        rule: RefreshRule::Ratio,
        lower_bound_ignored: false,
    };
    if !lower_bound.is_zero() {
        match lifetime.checked_sub(lower_bound).filter(|d| !d.is_zero()) {
            Some(bound) if bound < plan.after => {
                plan.after = bound;
                plan.rule = RefreshRule::LowerBound;
            }
            Some(_) => {}
            None => plan.lower_bound_ignored = true,
        }
    }
    if let Some(issuer) = refresh_in.filter(|d| !d.is_zero())
        && issuer < plan.after
    {
        plan.after = issuer;
        plan.rule = RefreshRule::Issuer;
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn earliest_rule_wins() {
        let hour = S(3600);
        let p = refresh_plan(hour, None, 0.7, Duration::ZERO);
        assert_eq!((p.after, p.rule), (hour.mul_f64(0.7), RefreshRule::Ratio));
        assert!((p.after.as_secs_f64() - 2520.0).abs() < 1e-6);

        let p = refresh_plan(hour, None, 0.7, S(20 * 60));
        assert_eq!((p.after, p.rule), (S(2400), RefreshRule::LowerBound));
        // A lower bound that leaves more time than the ratio changes nothing.
        let p = refresh_plan(hour, None, 0.7, S(60));
        assert_eq!(p.rule, RefreshRule::Ratio);

        let p = refresh_plan(hour, Some(S(1800)), 0.7, S(20 * 60));
        assert_eq!((p.after, p.rule), (S(1800), RefreshRule::Issuer));
        let p = refresh_plan(hour, Some(S(3000)), 0.7, Duration::ZERO);
        assert_eq!(p.rule, RefreshRule::Ratio);

        let p = refresh_plan(hour, None, 1.0, Duration::ZERO);
        assert_eq!(p.after, hour);
    }

    #[test]
    fn bounds_that_leave_no_time_are_ignored() {
        let p = refresh_plan(S(60), None, 0.7, S(300));
        assert_eq!((p.after, p.rule), (S(42), RefreshRule::Ratio));
        assert!(p.lower_bound_ignored);
        let p = refresh_plan(S(60), None, 0.7, S(60));
        assert!(p.lower_bound_ignored);
        let p = refresh_plan(S(60), Some(Duration::ZERO), 0.5, Duration::ZERO);
        assert_eq!((p.after, p.rule), (S(30), RefreshRule::Ratio));
    }

    #[test]
    fn later_saturates() {
        let now = Instant::now();
        assert_eq!(later(now, S(5)), now + S(5));
        assert_eq!(later(now, Duration::MAX), now + FAR);
    }

    #[test]
    fn wall_clock_is_after_2020() {
        let since = wall_clock_now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap();
        assert!(since > S(1_577_836_800));
    }
}
