//! The small random-number generator behind every jitter (retry waits, the refresh schedule's spread).
//!
//! xorshift64* seeded from the standard library's per-process random hasher keys ([`std::hash::RandomState`]), so
//! no random-number crate is needed and two processes started together do not retry in lock step. Jitter needs
//! spread, not cryptographic strength.

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

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

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

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
