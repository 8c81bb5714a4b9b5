//! Benchmarks of the hot path: reading the cached token with [`TokenManager::current`], on one thread and while a
//! second thread reads the same cache without pause, against a `Mutex<Arc<Token>>` (and an `RwLock<Arc<Token>>`) baseline
//! measured in the same run, and the cost of one `SystemTime::now` (the wall-clock expiry check `current()` makes).
//!
//! Run: `cargo bench -p entraid-manager --bench cached_read -- --warm-up-time 1 --measurement-time 3`

#![allow(clippy::expect_used, reason = "a benchmark stops on a broken set-up")]

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use entraid_core::{
    BoxFuture, Error, IdentityProvider, IdentityProviderResponse, Token, TokenResponse,
};
use entraid_manager::{TokenManager, TokenManagerOptions};

/// Hands out one-hour tokens.
#[derive(Debug)]
struct HourTokens;

impl IdentityProvider for HourTokens {
    fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
        Box::pin(async move {
            #[allow(clippy::disallowed_methods)] // Minting a fixture's `exp` needs the wall clock.
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let jwt =
                entraid_core::unsigned_jwt(&serde_json::json!({"oid": "bench", "exp": now + 3600}));
            let mut response = TokenResponse::new(jwt);
            response.expires_in = Some(3600);
            Ok(response.into())
        })
    }
}

/// Something that hands out the cached token.
trait Read: Sync {
    fn read(&self) -> Option<Arc<Token>>;
}

impl Read for TokenManager {
    fn read(&self) -> Option<Arc<Token>> {
        self.current()
    }
}

impl Read for Mutex<Arc<Token>> {
    fn read(&self) -> Option<Arc<Token>> {
        Some(Arc::clone(&self.lock().expect("not poisoned")))
    }
}

impl Read for RwLock<Arc<Token>> {
    fn read(&self) -> Option<Arc<Token>> {
        Some(Arc::clone(&self.read().expect("not poisoned")))
    }
}

/// Runs `bench` on this thread while another thread reads `cache` without pause.
fn contended<R: Read>(cache: &R, bench: impl FnOnce()) {
    let stop = AtomicBool::new(false);
    let started = Barrier::new(2);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            started.wait();
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..64 {
                    black_box(cache.read());
                }
            }
        });
        started.wait();
        bench();
        stop.store(true, Ordering::Relaxed);
    });
}

fn cached_read(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let manager = runtime.block_on(async {
        let manager =
            TokenManager::start(HourTokens, TokenManagerOptions::default()).expect("valid options");
        manager.ready().await.expect("a token");
        manager
    });
    let token = manager.current().expect("a token");
    let mutex = Mutex::new(Arc::clone(&token));
    let rwlock = RwLock::new(Arc::clone(&token));

    let mut single = c.benchmark_group("cached_read/single_thread");
    single.bench_function("TokenManager::current", |b| {
        b.iter(|| black_box(manager.current()))
    });
    single.bench_function("Mutex<Arc<Token>>", |b| b.iter(|| black_box(mutex.read())));
    single.bench_function("RwLock<Arc<Token>>", |b| {
        b.iter(|| black_box(rwlock.read()))
    });
    // What `current()` adds since it checks the wall-clock expiry: one read of the system clock.
    #[allow(clippy::disallowed_methods)] // Measuring the system clock itself.
    single.bench_function("SystemTime::now", |b| {
        b.iter(|| black_box(SystemTime::now()))
    });
    single.finish();

    let mut two = c.benchmark_group("cached_read/two_threads");
    contended(&manager, || {
        two.bench_function("TokenManager::current", |b| {
            b.iter(|| black_box(manager.current()))
        });
    });
    contended(&mutex, || {
        two.bench_function("Mutex<Arc<Token>>", |b| b.iter(|| black_box(mutex.read())));
    });
    contended(&rwlock, || {
        two.bench_function("RwLock<Arc<Token>>", |b| {
            b.iter(|| black_box(rwlock.read()))
        });
    });
    two.finish();

    manager.shutdown();
}

criterion_group!(benches, cached_read);
criterion_main!(benches);
