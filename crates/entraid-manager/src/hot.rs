//! The hot path: the cached token, sharded so that threads reading it at the same time touch no common memory.
//!
//! Returning an `Arc<Token>` means incrementing a reference count. If every thread cloned the same `Arc` under the
//! same lock, two readers would bounce two cache lines between their cores on every read (the lock word and the
//! count), which is what a `Mutex<Arc<Token>>` does. Here each shard, on its own cache line, holds its own `Arc` of
//! its own copy of the token; a thread reads the shard picked by a per-thread number, so readers on different
//! threads share nothing, and a read costs one uncontended read lock and one uncontended count increment.
//! The refresh task writes every shard once per token (a few copies of a small struct, once per rotation).

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use entraid_core::Token;

/// Shards per cache: the first 16 threads that read (a runtime's workers, typically) share nothing. Later threads
/// share a shard with an earlier one, which is still correct, only no longer free of contention.
const SHARDS: usize = 16;

/// One shard, alone on its cache line (128 bytes covers adjacent-line prefetching too).
#[repr(align(128))]
#[derive(Default)]
struct Shard(RwLock<Option<Arc<Token>>>);

/// The cached token, sharded by thread.
pub(crate) struct HotCache {
    shards: Box<[Shard]>,
}

static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

/// One read in this many (per thread) also checks the token's wall-clock expiry (see [`HotCache::get`]).
pub(crate) const WALL_CHECK_EVERY: u32 = 16;

/// What a thread keeps for the hot path.
struct ThreadSlot {
    /// This thread's number, handed out in order, so the first [`SHARDS`] threads get distinct shards.
    slot: usize,
    /// Reads on this thread, to pick the ones that check the wall clock.
    reads: Cell<u32>,
}

thread_local! {
    static THREAD: ThreadSlot = ThreadSlot {
        slot: NEXT_SLOT.fetch_add(1, Ordering::Relaxed),
        reads: Cell::new(0),
    };
}

impl HotCache {
    /// A cache with [`SHARDS`] shards.
    pub(crate) fn new() -> Self {
        Self::with_shards(SHARDS)
    }

    pub(crate) fn with_shards(n: usize) -> Self {
        Self {
            shards: (0..n.max(1)).map(|_| Shard::default()).collect(),
        }
    }

    /// The cached token, and whether this read should also check its wall-clock expiry: the first read on each
    /// thread and one in [`WALL_CHECK_EVERY`] after it (a read of the system clock costs more than the rest of
    /// this read on some virtual machines).
    pub(crate) fn get(&self) -> (Option<Arc<Token>>, bool) {
        let (slot, check) = THREAD
            .try_with(|t| {
                let n = t.reads.get();
                t.reads.set(n.wrapping_add(1));
                (t.slot, n % WALL_CHECK_EVERY == 0)
            })
            .unwrap_or((0, true));
        let shard = &self.shards[slot % self.shards.len()];
        let token = shard
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        (token, check)
    }

    /// Replaces the cached token in every shard: the first shard shares `token`'s `Arc`, the others get copies.
    pub(crate) fn set(&self, token: Option<&Arc<Token>>) {
        for (i, shard) in self.shards.iter().enumerate() {
            let value = token.map(|t| {
                if i == 0 {
                    Arc::clone(t)
                } else {
                    Arc::new(Token::clone(t))
                }
            });
            let old = std::mem::replace(
                &mut *shard.0.write().unwrap_or_else(PoisonError::into_inner),
                value,
            );
            // Dropped after the lock is released.
            drop(old);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use entraid_core::{IdentityProviderResponse, unsigned_jwt};
    use std::time::{Duration, UNIX_EPOCH};

    fn token(oid: &str) -> Arc<Token> {
        let jwt = unsigned_jwt(&serde_json::json!({"oid": oid, "exp": 5000}));
        let received = UNIX_EPOCH + Duration::from_secs(1000);
        Arc::new(Token::from_response(IdentityProviderResponse::raw_token(jwt), received).unwrap())
    }

    #[test]
    fn every_thread_sees_the_same_token() {
        let cache = HotCache::with_shards(4);
        assert!(cache.get().0.is_none());
        let t = token("a");
        cache.set(Some(&t));
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    let got = cache.get().0.unwrap();
                    assert_eq!(got.username(), "a");
                    assert_eq!(
                        got.access_token().expose_secret(),
                        t.access_token().expose_secret()
                    );
                });
            }
        });
        // Shard 0 shares the caller's Arc; the others hold copies.
        assert_eq!(Arc::strong_count(&t), 2);
        cache.set(Some(&token("b")));
        assert_eq!(Arc::strong_count(&t), 1);
        assert_eq!(cache.get().0.unwrap().username(), "b");
        cache.set(None);
        assert!(cache.get().0.is_none());
    }

    #[test]
    fn one_read_in_sixteen_per_thread_checks_the_wall_clock() {
        let cache = HotCache::with_shards(2);
        std::thread::scope(|scope| {
            for _ in 0..3 {
                scope.spawn(|| {
                    let checks: Vec<bool> = (0..48).map(|_| cache.get().1).collect();
                    // The first read of the thread checks, then every sixteenth.
                    let at: Vec<usize> = (0..48).filter(|i| checks[*i]).collect();
                    assert_eq!(at, [0, 16, 32]);
                });
            }
        });
    }

    #[test]
    fn shards_are_cache_line_aligned() {
        assert_eq!(align_of::<Shard>(), 128);
        assert_eq!(HotCache::new().shards.len(), SHARDS);
        assert_eq!(HotCache::with_shards(0).shards.len(), 1);
    }
}
