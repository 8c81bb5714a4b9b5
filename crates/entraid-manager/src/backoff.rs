//! Retry waits: exponential backoff with jitter, and the small random-number generator behind the jitter.
//!
//! The generator is xorshift64* seeded from the standard library's per-process random hasher keys
//! ([`std::hash::RandomState`]), so no random-number crate is needed and two processes started together do not
//! retry in lock step. Jitter needs spread, not cryptographic strength.

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use crate::options::RetryOptions;

/// A xorshift64* generator.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator seeded from the process's random hasher keys.
    pub(crate) fn from_entropy() -> Self {
        Self::with_seed(RandomState::new().hash_one(0x5eed_u64))
    }

    /// A generator with a fixed seed (any value, zero included).
    pub(crate) fn with_seed(seed: u64) -> Self {
        // splitmix64 spreads the seed's bits; xorshift's state must not be zero.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        Self(if z == 0 { 0x2545_f491_4f6c_dd1d } else { z })
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A random duration in `[low, high]` (nanosecond resolution). `low > high` yields `high`.
    pub(crate) fn duration_between(&mut self, low: Duration, high: Duration) -> Duration {
        let low = saturating_nanos(low);
        let high = saturating_nanos(high);
        if low >= high {
            return Duration::from_nanos(high);
        }
        let span = high - low;
        let offset = match span.checked_add(1) {
            Some(n) => self.next_u64() % n,
            None => self.next_u64(),
        };
        Duration::from_nanos(low + offset)
    }
}

fn saturating_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

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

    #[test]
    fn generator_edges() {
        let mut a = Rng::with_seed(0);
        let mut b = Rng::with_seed(0);
        assert_eq!(a.next_u64(), b.next_u64());
        assert_ne!(Rng::with_seed(1).next_u64(), Rng::with_seed(2).next_u64());
        let mut r = Rng::from_entropy();
        assert_eq!(r.duration_between(S(3), S(3)), S(3));
        assert_eq!(r.duration_between(S(4), S(3)), S(3));
        let huge = r.duration_between(Duration::ZERO, Duration::MAX);
        assert!(huge <= Duration::from_nanos(u64::MAX));
        // Different seeds from entropy (the keys change on every RandomState::new).
        let draws: Vec<u64> = (0..4).map(|_| Rng::from_entropy().next_u64()).collect();
        assert!(draws.windows(2).any(|w| w[0] != w[1]), "{draws:?}");
    }
}
