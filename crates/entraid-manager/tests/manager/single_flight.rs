//! Single flight: concurrent callers without a valid token share one identity-provider request, and forced
//! refreshes coalesce.

use std::sync::Arc;
use std::time::Duration;

use entraid_manager::{TokenManager, TokenManagerOptions};
use tokio::sync::Notify;

use crate::support::{Fake, Script, Step, exact, secs, settle};

#[tokio::test(start_paused = true)]
async fn two_hundred_callers_without_a_token_cause_one_request() {
    let script = Script::new([], Step::token(3600).delayed(secs(1)));
    let manager = TokenManager::start(Fake(script.clone()), exact()).unwrap();
    let callers: Vec<_> = (0..200)
        .map(|_| {
            let manager = manager.clone();
            tokio::spawn(async move { manager.token().await })
        })
        .collect();
    let mut tokens = Vec::new();
    for caller in callers {
        tokens.push(caller.await.unwrap().unwrap());
    }
    assert_eq!(script.calls(), 1);
    assert!(tokens.iter().all(|t| Arc::ptr_eq(t, &tokens[0])));
    assert_eq!(script.elapsed(), secs(1));
}

#[tokio::test(start_paused = true)]
async fn callers_after_expiry_share_the_refresh_in_flight() {
    // Ratio 1.0: the refresh starts when the token expires, and takes 2 s; callers in between have no valid token.
    let script = Script::new([Step::token(10)], Step::token(10).delayed(secs(2)));
    let options = TokenManagerOptions {
        expiration_refresh_ratio: 1.0,
        ..exact()
    };
    let manager = TokenManager::start(Fake(script.clone()), options).unwrap();
    let first = manager.token().await.unwrap();
    tokio::time::sleep(secs(11)).await;
    assert!(manager.current().is_none());
    assert_eq!(script.calls(), 2);
    let callers: Vec<_> = (0..200)
        .map(|_| {
            let manager = manager.clone();
            tokio::spawn(async move { manager.token().await })
        })
        .collect();
    for caller in callers {
        let token = caller.await.unwrap().unwrap();
        assert_eq!(token.username(), "user-2");
    }
    assert_eq!(script.calls(), 2);
    assert_eq!(script.elapsed(), secs(12));
    assert_eq!(first.username(), "user-1");
}

#[tokio::test(start_paused = true)]
async fn concurrent_forced_refreshes_coalesce() {
    let script = Script::new([Step::token(3600)], Step::token(3600).delayed(secs(1)));
    let manager = TokenManager::start(Fake(script.clone()), exact()).unwrap();
    let first = manager.token().await.unwrap();
    let callers: Vec<_> = (0..200)
        .map(|_| {
            let manager = manager.clone();
            tokio::spawn(async move { manager.refresh_now().await })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap().unwrap().username(), "user-2");
    }
    assert_eq!(script.calls(), 2);
    assert_ne!(first.username(), "user-2");
    assert_eq!(manager.current().unwrap().username(), "user-2");

    // A forced refresh also joins a scheduled refresh in flight.
    tokio::time::sleep(secs(2520)).await;
    settle().await;
    assert_eq!(script.calls(), 3, "the scheduled refresh is in flight");
    let token = manager.refresh_now().await.unwrap();
    assert_eq!(token.username(), "user-3");
    assert_eq!(script.calls(), 3);
    // The refresh moves the schedule: the next one is 0.7 of the new token's lifetime later.
    let next = manager.status().next_refresh_at.unwrap() - tokio::time::Instant::now();
    assert_eq!(next, Duration::from_secs(2520));
}

/// A provider that waits for the test's go-ahead, so every caller arrives while the request is in flight.
#[derive(Debug)]
struct Gated {
    script: Arc<Script>,
    gate: Arc<Notify>,
}

impl entraid_core::IdentityProvider for Gated {
    fn request_token(
        &self,
    ) -> entraid_core::BoxFuture<
        '_,
        Result<entraid_core::IdentityProviderResponse, entraid_core::Error>,
    > {
        Box::pin(async move {
            self.gate.notified().await;
            Fake(self.script.clone()).request_token().await
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn single_flight_holds_on_many_threads() {
    // Real threads racing: every round, 200 callers on 4 workers, one request.
    for round in 0..25 {
        let script = Script::new([], Step::token(3600));
        let gate = Arc::new(Notify::new());
        let manager = TokenManager::start(
            Gated {
                script: script.clone(),
                gate: gate.clone(),
            },
            exact(),
        )
        .unwrap();
        let callers: Vec<_> = (0..200)
            .map(|_| {
                let manager = manager.clone();
                tokio::spawn(async move { manager.token().await })
            })
            .collect();
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        gate.notify_one();
        for caller in callers {
            assert_eq!(caller.await.unwrap().unwrap().username(), "user-1");
        }
        assert_eq!(script.calls(), 1, "round {round}");
    }
}
