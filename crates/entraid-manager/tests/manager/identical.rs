//! A provider that answers from its own cache (IMDS, `az`, MSAL-style caches) hands back the token the manager
//! already holds: it is not published again, it is not a rotation, and the next attempt has a floor, so the
//! refresh interval cannot shrink geometrically into a request loop.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use entraid_core::{BoxFuture, Error, IdentityProvider, IdentityProviderResponse, TokenResponse};
use entraid_manager::{TokenManager, TokenManagerOptions};
use tokio::time::Instant;

use crate::support::{TestWall, exact, next_token, secs};

/// Mints one-hour tokens and answers from its cache while the cached token has more than `renew_before` left.
#[derive(Debug)]
struct Caching {
    wall: Arc<TestWall>,
    renew_before: u64,
    lifetime: u64,
    /// (jwt, exp in wall seconds)
    cached: Mutex<Option<(String, i64)>>,
    calls: Mutex<Vec<Instant>>,
    minted: Mutex<u32>,
    t0: Instant,
}

impl Caching {
    fn new(wall: &Arc<TestWall>, lifetime: u64, renew_before: u64) -> Arc<Self> {
        Arc::new(Self {
            wall: Arc::clone(wall),
            renew_before,
            lifetime,
            cached: Mutex::new(None),
            calls: Mutex::new(Vec::new()),
            minted: Mutex::new(0),
            t0: Instant::now(),
        })
    }

    fn calls(&self) -> Vec<Duration> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|t| *t - self.t0)
            .collect()
    }
}

impl IdentityProvider for Caching {
    fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
        Box::pin(async move {
            self.calls.lock().unwrap().push(Instant::now());
            let now = self.wall.secs();
            let mut cached = self.cached.lock().unwrap();
            let renew = cached
                .as_ref()
                .is_none_or(|(_, exp)| *exp - now <= i64::try_from(self.renew_before).unwrap());
            if renew {
                let mut minted = self.minted.lock().unwrap();
                *minted += 1;
                let exp = now + i64::try_from(self.lifetime).unwrap();
                let jwt = entraid_core::unsigned_jwt(
                    &serde_json::json!({"oid": "cached-user", "exp": exp, "n": *minted}),
                );
                *cached = Some((jwt, exp));
            }
            let (jwt, exp) = cached.clone().unwrap();
            // As a cache answers: the same token, with the time it has left.
            let mut response = TokenResponse::new(jwt);
            response.expires_in = Some(u64::try_from(exp - now).unwrap());
            Ok(response.into())
        })
    }
}

fn options(wall: &Arc<TestWall>) -> TokenManagerOptions {
    TokenManagerOptions {
        wall_clock: wall.clock(),
        subscription_capacity: 1000,
        ..exact()
    }
}

#[tokio::test(start_paused = true)]
async fn a_cached_token_is_not_published_again_and_the_cache_is_asked_less_and_less_often() {
    // Renews 5 minutes before expiry, as `az` does.
    let wall = TestWall::new();
    let provider = Caching::new(&wall, 3600, 300);
    let manager = TokenManager::start(Arc::clone(&provider), options(&wall)).unwrap();
    let mut sub = manager.subscribe();
    let mut watch = manager.watch();
    let first = next_token(&mut sub).await;
    assert_eq!(watch.changed().await.unwrap().generation, 1);

    // 2520 s: cached (1080 s left) -> not published; next at 0.7 of what is left: 2520 + 756 = 3276 s (324 s
    // left) -> cached again; next at 3276 + 226.8 s = 3502.8 s (97 s left): the cache renews, a new token.
    let second = next_token(&mut sub).await;
    assert_ne!(
        first.access_token().expose_secret(),
        second.access_token().expose_secret()
    );
    let calls = provider.calls();
    assert_eq!(calls.len(), 4, "{calls:?}");
    assert_eq!(calls[1], secs(2520));
    assert_eq!(calls[2], secs(3276));
    assert!(
        calls[3] >= Duration::from_millis(3_502_800)
            && calls[3] <= Duration::from_millis(3_502_802),
        "{calls:?}"
    );
    let status = manager.status();
    assert_eq!((status.refreshes, status.identical_tokens), (2, 2));
    assert_eq!(status.attempts, 4);
    assert_eq!(status.generation, 2);
    // One generation per genuinely new token.
    assert_eq!(watch.changed().await.unwrap().generation, 2);
    assert!(
        sub.try_recv().is_none(),
        "the cached answers were not published"
    );
}

#[tokio::test(start_paused = true)]
async fn a_cache_that_answers_until_expiry_does_not_tighten_into_a_loop() {
    // Answers from its cache until the very end (renews only once the token has expired).
    let wall = TestWall::new();
    let provider = Caching::new(&wall, 600, 0);
    let manager = TokenManager::start(Arc::clone(&provider), options(&wall)).unwrap();
    let mut sub = manager.subscribe();
    next_token(&mut sub).await;
    // Over the first lifetime: 420 s, then 0.7 of what is left each time, but never sooner than 5 s apart
    // (identical_token_floor) and never after the expiry. Without the floor, the interval shrinks geometrically
    // towards the expiry: dozens of requests in its last second.
    let second = next_token(&mut sub).await;
    let calls = provider.calls();
    assert!(calls.len() <= 9, "{} calls: {calls:?}", calls.len());
    for pair in calls[1..calls.len() - 1].windows(2) {
        assert!(
            pair[1] - pair[0] >= secs(5) || pair[1] >= secs(600),
            "{calls:?}"
        );
    }
    // The new token came at the expiry.
    let last = *calls.last().unwrap();
    assert!(
        last >= secs(600) && last <= Duration::from_millis(600_002),
        "{calls:?}"
    );
    assert_eq!(second.username(), "cached-user");
    let status = manager.status();
    assert_eq!(status.refreshes, 2);
    assert_eq!(status.identical_tokens as usize, calls.len() - 2);
    assert!(sub.try_recv().is_none());
}

#[tokio::test(start_paused = true)]
async fn the_floor_is_an_option() {
    let wall = TestWall::new();
    let provider = Caching::new(&wall, 600, 0);
    let options = TokenManagerOptions {
        identical_token_floor: secs(60),
        ..options(&wall)
    };
    let manager = TokenManager::start(Arc::clone(&provider), options).unwrap();
    let mut sub = manager.subscribe();
    next_token(&mut sub).await;
    next_token(&mut sub).await;
    let calls = provider.calls();
    // 0, 420, 546 (0.7 * 180 = 126), 606 -> capped at the expiry (600) ... at most one a minute.
    for pair in calls[1..].windows(2) {
        assert!(
            pair[1] - pair[0] >= secs(54) || pair[1] >= secs(600),
            "{calls:?}"
        );
    }
    assert!(calls.len() <= 5, "{calls:?}");
}

#[tokio::test(start_paused = true)]
async fn the_same_access_token_again_is_not_a_new_generation() {
    use crate::support::{Fake, Script, Step};
    let script = Script::new([Step::token(100), Step::Same, Step::Same], Step::token(100));
    let manager = TokenManager::start(Fake(script.clone()), exact()).unwrap();
    let mut sub = manager.subscribe();
    let mut watch = manager.watch();
    assert_eq!(next_token(&mut sub).await.username(), "user-1");
    assert_eq!(watch.changed().await.unwrap().generation, 1);
    // 70 s: the same JWT (identical); 70 + 21 = 91 s: again; 91 + 6.3 = 97.3 s: a new token.
    let second = next_token(&mut sub).await;
    assert_eq!(second.username(), "user-4");
    assert_eq!(
        script.call_times(),
        vec![secs(0), secs(70), secs(91), Duration::from_millis(97_300)]
    );
    let got = watch.changed().await.unwrap();
    assert_eq!((got.generation, got.token.username()), (2, "user-4"));
    let status = manager.status();
    assert_eq!((status.refreshes, status.identical_tokens), (2, 2));
    assert!(sub.try_recv().is_none());
}
