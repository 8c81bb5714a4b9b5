//! Refresh timing: the ratio point, the lower bound, the issuer's `refresh_in`, and one request per rotation at
//! any token lifetime.

#![allow(clippy::expect_used, reason = "tests stop on a broken set-up")]

use std::time::Duration;

use entraid_core::Error;
use entraid_manager::{TokenManager, TokenManagerOptions};

use crate::support::{Fake, Script, Step, assert_at, exact, next_error, next_token, secs};

/// Starts a manager over `script` and returns the call times of the first two requests.
async fn first_refresh(script: &std::sync::Arc<Script>, options: TokenManagerOptions) -> Duration {
    let manager = TokenManager::start(Fake(script.clone()), options).unwrap();
    let mut sub = manager.subscribe();
    manager.ready().await.unwrap();
    next_token(&mut sub).await;
    next_token(&mut sub).await;
    let times = script.call_times();
    assert_eq!(times.len(), 2, "{times:?}");
    assert_eq!(times[0], Duration::ZERO);
    times[1]
}

#[tokio::test(start_paused = true)]
async fn refreshes_at_the_ratio_point() {
    let script = Script::new([], Step::token(3600));
    let at = first_refresh(&script, exact()).await;
    assert_at(at, secs(2520));

    let script = Script::new([], Step::token(3600));
    let options = TokenManagerOptions {
        expiration_refresh_ratio: 0.5,
        ..exact()
    };
    assert_at(first_refresh(&script, options).await, secs(1800));
}

#[tokio::test(start_paused = true)]
async fn refreshes_at_the_lower_bound_when_earlier() {
    let script = Script::new([], Step::token(3600));
    let options = TokenManagerOptions {
        lower_refresh_bound: secs(20 * 60),
        ..exact()
    };
    assert_at(first_refresh(&script, options).await, secs(2400));

    // A bound that leaves more time than the ratio changes nothing.
    let script = Script::new([], Step::token(3600));
    let options = TokenManagerOptions {
        lower_refresh_bound: secs(5 * 60),
        ..exact()
    };
    assert_at(first_refresh(&script, options).await, secs(2520));

    // A bound longer than the token's lifetime is ignored (no request loop).
    let script = Script::new([], Step::token(60));
    let options = TokenManagerOptions {
        lower_refresh_bound: secs(10 * 60),
        ..exact()
    };
    assert_at(first_refresh(&script, options).await, secs(42));
}

#[tokio::test(start_paused = true)]
async fn refreshes_at_refresh_in_when_earlier() {
    let issuer = |refresh_in| Step::Token {
        lifetime: secs(3600),
        refresh_in: Some(secs(refresh_in)),
    };
    let script = Script::new([], issuer(1800));
    assert_at(first_refresh(&script, exact()).await, secs(1800));
    let script = Script::new([], issuer(3000));
    assert_at(first_refresh(&script, exact()).await, secs(2520));
}

/// Runs a manager for `run_for` and checks the provider was called exactly once per rotation, at equal intervals,
/// and that a valid token was held the whole time.
async fn one_request_per_rotation(lifetime: Duration, run_for: Duration) {
    let script = Script::new(
        [],
        Step::Token {
            lifetime,
            refresh_in: None,
        },
    );
    let manager = TokenManager::start(Fake(script.clone()), exact()).unwrap();
    manager.ready().await.unwrap();
    let rotation = lifetime.mul_f64(0.7);
    // Check along the way that a valid token is always held: sample between rotations.
    let step = rotation / 3;
    while script.elapsed() + step < run_for {
        tokio::time::sleep(step).await;
        let status = manager.status();
        let expires_at = status.token_expires_at.expect("a token is held");
        assert!(expires_at > tokio::time::Instant::now());
        assert!(manager.current().is_some());
    }
    tokio::time::sleep(run_for - script.elapsed()).await;

    let times = script.call_times();
    let expected = (run_for.as_nanos() / rotation.as_nanos().max(1)) as usize + 1;
    assert_eq!(times.len(), expected, "{times:?}");
    for pair in times.windows(2) {
        assert_at(
            pair[1] - pair[0],
            Duration::from_millis(rotation.as_millis() as u64),
        );
    }
    assert_eq!(manager.status().attempts, expected as u64);
    assert_eq!(manager.status().refreshes, expected as u64);
}

#[tokio::test(start_paused = true)]
async fn one_request_per_rotation_with_one_second_tokens() {
    // 0.7 s rotations over 100.35 s: 144 calls, at 0, 0.7, ..., 100.1 s.
    one_request_per_rotation(secs(1), Duration::from_millis(100_350)).await;
}

#[tokio::test(start_paused = true)]
async fn one_request_per_rotation_with_six_hour_tokens() {
    // 15,120 s rotations over three days.
    one_request_per_rotation(secs(6 * 3600), secs(3 * 24 * 3600)).await;
}

#[tokio::test(start_paused = true)]
async fn a_token_expired_on_arrival_is_a_typed_error() {
    let script = Script::new([Step::Raw { offset_secs: -10 }], Step::token(3600));
    let manager = TokenManager::start(Fake(script.clone()), exact()).unwrap();
    let mut sub = manager.subscribe();
    let err = manager.ready().await.unwrap_err();
    assert!(
        matches!(*err, Error::TokenExpired { seconds_ago } if (9..=11).contains(&seconds_ago)),
        "{err:?}"
    );
    assert_eq!(
        script.calls(),
        1,
        "an expired token is not retried in a burst"
    );
    assert!(manager.current().is_none());
    assert!(matches!(
        *next_error(&mut sub).await,
        Error::TokenExpired { .. }
    ));
    // The manager keeps trying (5-10 s later) and recovers.
    let token = next_token(&mut sub).await;
    let times = script.call_times();
    assert!(times[1] >= secs(5) && times[1] <= secs(10), "{times:?}");
    assert_eq!(manager.token().await.unwrap().username(), token.username());
}

#[tokio::test(start_paused = true)]
async fn raw_tokens_expire_by_their_exp_claim() {
    let script = Script::new([], Step::Raw { offset_secs: 100 });
    let manager = TokenManager::start(Fake(script.clone()), exact()).unwrap();
    let token = manager.token().await.unwrap();
    let lifetime = token.lifetime();
    assert!(lifetime > secs(98) && lifetime <= secs(100), "{lifetime:?}");
    let status = manager.status();
    assert_eq!(
        status.token_expires_at.unwrap() - tokio::time::Instant::now(),
        lifetime
    );
    let next = status.next_refresh_at.unwrap() - tokio::time::Instant::now();
    assert_eq!(next, lifetime.mul_f64(0.7));
}
