//! Time: the crate's one wall-clock read, and the refresh-time rule.
//!
//! Everything the manager schedules runs on tokio's clock ([`tokio::time::Instant`]), so tests pause and advance
//! time. A token's own times are wall-clock (`SystemTime`) values from entraid-core; they are turned into tokio
//! instants once, when the token arrives, from its *lifetime* (`expires_on - received_at`) and the tokio instant of
//! receipt. Only [`wall_clock_now`] reads the system clock, through a [`WallClock`] (injectable for tests): for the
//! `received_at` the response parser checks `exp` against, for the wall-clock expiry check of every read, and for
//! the periodic comparison of the two clocks that detects a suspend.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// The wall-clock time now.
///
/// This is the only place in the crate that calls `SystemTime::now` (clippy's `disallowed-methods` rejects it
/// everywhere else); everything else goes through a [`WallClock`].
#[allow(clippy::disallowed_methods)]
pub(crate) fn wall_clock_now() -> SystemTime {
    SystemTime::now()
}

type WallFn = dyn Fn() -> SystemTime + Send + Sync;

/// The wall clock a [`TokenManager`](crate::TokenManager) compares tokens' `expires_on` with
/// ([`TokenManagerOptions::wall_clock`](crate::TokenManagerOptions::wall_clock)).
///
/// [`WallClock::system`] (the default) reads the system clock; [`WallClock::custom`] takes any function, so a
/// test can make the wall clock jump ahead of tokio's paused clock, as a suspended laptop or a frozen VM does.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use entraid_manager::WallClock;
///
/// let fixed = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
/// let clock = WallClock::custom(move || fixed);
/// assert_eq!(clock.now(), fixed);
/// assert!(WallClock::system().now() > SystemTime::UNIX_EPOCH);
/// ```
#[derive(Clone, Default)]
pub struct WallClock(Option<Arc<WallFn>>);

impl WallClock {
    /// The system clock (`SystemTime::now`).
    pub fn system() -> Self {
        Self(None)
    }

    /// A clock of your own.
    pub fn custom(now: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(now)))
    }

    /// The time now, on this clock.
    #[inline]
    pub fn now(&self) -> SystemTime {
        match &self.0 {
            None => wall_clock_now(),
            Some(now) => now(),
        }
    }
}

impl fmt::Debug for WallClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "WallClock(custom)"
        } else {
            "WallClock(system)"
        })
    }
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

/// Moves a refresh `after` receipt earlier by a random time in `[0, window]`, where the window is at most half of
/// `after` (so a jittered refresh never comes at once). Never later than `after`.
pub(crate) fn jittered(after: Duration, window: Duration, rng: &mut crate::rng::Rng) -> Duration {
    let window = window.min(after / 2);
    if window.is_zero() {
        return after;
    }
    after.saturating_sub(rng.duration_between(Duration::ZERO, window))
}

/// The delay before asking again after the provider answered with the token already held, which has `remaining`
/// left: the refresh rule over the remaining life, at least `floor`, and no later than the expiry.
pub(crate) fn identical_retry(
    remaining: Duration,
    ratio: f64,
    lower_bound: Duration,
    floor: Duration,
) -> Duration {
    refresh_plan(remaining, None, ratio, lower_bound)
        .after
        .max(floor)
        .min(remaining)
}

/// How far the wall clock ran ahead of tokio's clock since a token arrived (zero when it ran behind).
pub(crate) fn wall_ahead(
    wall_received: SystemTime,
    wall_now: SystemTime,
    tokio_received: Instant,
    tokio_now: Instant,
) -> Duration {
    let wall = wall_now
        .duration_since(wall_received)
        .unwrap_or(Duration::ZERO);
    wall.saturating_sub(tokio_now.saturating_duration_since(tokio_received))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

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
    fn jitter_moves_refreshes_earlier_within_the_window() {
        let mut rng = Rng::with_seed(11);
        let (mut min, mut max) = (Duration::MAX, Duration::ZERO);
        for _ in 0..10_000 {
            let d = jittered(S(2520), S(180), &mut rng);
            assert!(d <= S(2520) && d >= S(2340), "{d:?}");
            min = min.min(d);
            max = max.max(d);
        }
        assert!(min < S(2345) && max > S(2515), "{min:?} {max:?}");
        // At most half the time to the planned refresh; no window, no change.
        for _ in 0..1000 {
            let d = jittered(S(10), S(60), &mut rng);
            assert!(d >= S(5) && d <= S(10), "{d:?}");
        }
        assert_eq!(jittered(S(10), Duration::ZERO, &mut rng), S(10));
        assert_eq!(jittered(Duration::ZERO, S(10), &mut rng), Duration::ZERO);
        // The same seed gives the same schedule.
        let a: Vec<_> = (0..5)
            .map({
                let mut r = Rng::with_seed(3);
                move |_| jittered(S(100), S(20), &mut r)
            })
            .collect();
        let b: Vec<_> = (0..5)
            .map({
                let mut r = Rng::with_seed(3);
                move |_| jittered(S(100), S(20), &mut r)
            })
            .collect();
        assert_eq!(a, b);
    }

    #[test]
    fn identical_tokens_back_off_with_a_floor() {
        // 30 minutes left: the ratio over the remaining life.
        assert_eq!(identical_retry(S(1800), 0.7, Duration::ZERO, S(5)), S(1260));
        // A few seconds left: the floor, and never past the expiry.
        assert_eq!(identical_retry(S(6), 0.7, Duration::ZERO, S(5)), S(5));
        assert_eq!(identical_retry(S(3), 0.7, Duration::ZERO, S(5)), S(3));
        // The interval cannot shrink geometrically: with the floor, a provider that keeps answering with the same
        // token is asked at most once per floor.
        let mut remaining = S(3600);
        let mut asks = 0;
        while !remaining.is_zero() {
            remaining -= identical_retry(remaining, 0.7, Duration::ZERO, S(5));
            asks += 1;
        }
        assert!(asks < 12, "{asks}");
    }

    #[test]
    fn wall_clock_ahead_of_tokio() {
        let t0 = Instant::now();
        let w0 = SystemTime::UNIX_EPOCH + S(1_800_000_000);
        assert_eq!(wall_ahead(w0, w0 + S(100), t0, t0 + S(100)), Duration::ZERO);
        assert_eq!(wall_ahead(w0, w0 + S(700), t0, t0 + S(100)), S(600));
        // Behind (a clock stepped back): not a jump ahead.
        assert_eq!(wall_ahead(w0, w0 - S(50), t0, t0 + S(100)), Duration::ZERO);
        assert_eq!(wall_ahead(w0, w0 + S(50), t0, t0 + S(100)), Duration::ZERO);
    }

    #[test]
    fn wall_clocks() {
        let fixed = SystemTime::UNIX_EPOCH + S(42);
        let clock = WallClock::custom(move || fixed);
        assert_eq!(clock.now(), fixed);
        assert_eq!(format!("{clock:?}"), "WallClock(custom)");
        assert_eq!(format!("{:?}", WallClock::default()), "WallClock(system)");
        assert!(WallClock::system().now() > SystemTime::UNIX_EPOCH + S(1_577_836_800));
    }

    #[test]
    fn wall_clock_is_after_2020() {
        let since = wall_clock_now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap();
        assert!(since > S(1_577_836_800));
    }
}
