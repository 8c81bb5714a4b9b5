//! Retry waits: exponential backoff with jitter (drawn from [`Rng`]).

use std::time::Duration;

use crate::options::RetryOptions;
use crate::rng::Rng;

/// The backoff ceiling after `failures` consecutive failures (at least 1):
/// `min(max_delay, initial_delay * backoff_multiplier^(failures - 1))`.
pub(crate) fn ceiling(options: &RetryOptions, failures: u32) -> Duration {
    let exponent = i32::try_from(failures.saturating_sub(1)).unwrap_or(i32::MAX);
    let secs = options.initial_delay.as_secs_f64() * options.backoff_multiplier.powi(exponent);
    match Duration::try_from_secs_f64(secs) {
        Ok(d) => d.min(options.max_delay),
        Err(_) => options.max_delay,
    }
}

/// The wait before the next attempt, after `failures` consecutive failures.
///
/// `in_burst`: the failure was retryable and the burst is not used up (full jitter); otherwise the manager is in
/// its never-give-up cadence (equal jitter, `[cap / 2, cap]`). `retryable`: whether the last error was; after an
/// error that is not retryable the cap is `max_delay`. `retry_after` is a floor, cut to
/// [`RetryOptions::MAX_RETRY_AFTER`].
pub(crate) fn retry_delay(
    options: &RetryOptions,
    failures: u32,
    in_burst: bool,
    retryable: bool,
    retry_after: Option<Duration>,
    rng: &mut Rng,
) -> Duration {
    let jittered = if !retryable {
        rng.duration_between(options.max_delay / 2, options.max_delay)
    } else {
        let cap = ceiling(options, failures);
        if in_burst {
            rng.duration_between(Duration::ZERO, cap)
        } else {
            rng.duration_between(cap / 2, cap)
        }
    };
    match retry_after {
        Some(after) => jittered.max(after.min(RetryOptions::MAX_RETRY_AFTER)),
        None => jittered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn ceilings_grow_and_cap() {
        let o = RetryOptions::default();
        let caps: Vec<Duration> = (1..=6).map(|k| ceiling(&o, k)).collect();
        assert_eq!(caps, vec![S(1), S(2), S(4), S(8), S(10), S(10)]);
        assert_eq!(ceiling(&o, u32::MAX), S(10));
        let flat = RetryOptions {
            backoff_multiplier: 1.0,
            ..RetryOptions::default()
        };
        assert_eq!(ceiling(&flat, 50), S(1));
    }

    #[test]
    fn jitter_stays_in_bounds_and_spreads() {
        let o = RetryOptions::default();
        let mut rng = Rng::with_seed(7);
        let n = 10_000;
        for (failures, in_burst, low, high) in [
            (1, true, S(0), S(1)),
            (2, true, S(0), S(2)),
            (3, false, S(2), S(4)),
            (4, false, S(4), S(8)),
            (9, false, S(5), S(10)),
        ] {
            let mut sum = 0.0;
            let (mut min, mut max) = (Duration::MAX, Duration::ZERO);
            for _ in 0..n {
                let d = retry_delay(&o, failures, in_burst, true, None, &mut rng);
                assert!(d >= low && d <= high, "{d:?} not in [{low:?}, {high:?}]");
                sum += d.as_secs_f64();
                min = min.min(d);
                max = max.max(d);
            }
            // Uniform: the mean is near the middle and the samples reach both ends.
            let mean = sum / f64::from(n);
            let middle = (low + high).as_secs_f64() / 2.0;
            let width = (high - low).as_secs_f64();
            assert!((mean - middle).abs() < width * 0.05, "mean {mean}");
            assert!(min - low < (high - low) / 50, "min {min:?}");
            assert!(high - max < (high - low) / 50, "max {max:?}");
        }
    }

    #[test]
    fn errors_that_are_not_retryable_wait_the_longest() {
        let o = RetryOptions::default();
        let mut rng = Rng::with_seed(1);
        for _ in 0..1000 {
            let d = retry_delay(&o, 1, false, false, None, &mut rng);
            assert!(d >= S(5) && d <= S(10), "{d:?}");
        }
    }

    #[test]
    fn retry_after_is_a_floor_with_a_ceiling() {
        let o = RetryOptions::default();
        let mut rng = Rng::with_seed(3);
        for _ in 0..1000 {
            assert_eq!(retry_delay(&o, 1, true, true, Some(S(7)), &mut rng), S(7));
        }
        // A Retry-After shorter than the backoff does not shorten it.
        for _ in 0..1000 {
            let d = retry_delay(&o, 9, false, true, Some(S(1)), &mut rng);
            assert!(d >= S(5), "{d:?}");
        }
        assert_eq!(
            retry_delay(&o, 1, true, true, Some(S(86_400)), &mut rng),
            RetryOptions::MAX_RETRY_AFTER
        );
    }
}
