//! Retries: the backoff schedule and its jitter bounds, `Retry-After`, errors that are not retried, never giving
//! up, serving the old token until it expires, and a provider that hangs.

use std::sync::atomic::Ordering;
use std::time::Duration;

use entraid_core::Error;
use entraid_manager::{RetryOptions, TokenManager, TokenManagerOptions};

use crate::support::{
    Fail, Fake, Script, Step, assert_at, exact, next_error, next_token, secs, settle,
};

#[tokio::test(start_paused = true)]
async fn retries_follow_the_schedule_within_jitter_bounds() {
    let script = Script::new([], Step::Fail(Fail::Transport));
    let manager = TokenManager::start(Fake(script.clone()), exact()).unwrap();
    let mut sub = manager.subscribe();

    // ready() reports the error when the first burst (3 attempts) is used up.
    let err = manager.ready().await.unwrap_err();
    assert!(matches!(*err, Error::Transport { .. }), "{err:?}");
    let times = script.call_times();
    assert_eq!(times.len(), 3);
    assert_eq!(script.elapsed(), times[2]);

    tokio::time::sleep(secs(300)).await;
    let times = script.call_times();
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.len() > 150, "{gaps:?}");
    // Burst: full jitter under 1 s then 2 s. Then, as no token is held, the outage cadence: [1, 2] s (the
    // never-give-up cadence, [2, 4], [4, 8], then [5, 10] s, applies while a valid token is held).
    let bounds = |i: usize| match i {
        0 => (secs(0), secs(1)),
        1 => (secs(0), secs(2)),
        _ => (secs(1), secs(2)),
    };
    for (i, gap) in gaps.iter().enumerate() {
        let (low, high) = bounds(i);
        // Timers have 1 ms resolution.
        assert!(
            *gap >= low && *gap <= high + Duration::from_millis(1),
            "gap {i} = {gap:?} not in [{low:?}, {high:?}]"
        );
    }
    // Jittered: the waits are not all the same.
    let mut distinct = gaps[4..].to_vec();
    distinct.sort();
    distinct.dedup();
    assert!(distinct.len() > 5, "{gaps:?}");

    // Every failure is reported, and the status counts them.
    let status = manager.status();
    assert_eq!(status.consecutive_failures as usize, times.len());
    assert!(status.last_error.is_some());
    assert!(status.token_expires_at.is_none());
    for _ in 0..times.len() {
        next_error(&mut sub).await;
    }
    assert!(sub.try_recv().is_none());
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured() {
    let script = Script::new(
        [Step::Fail(Fail::Http(429, Some(secs(7))))],
        Step::token(3600),
    );
    let manager = TokenManager::start(Fake(script.clone()), exact()).unwrap();
    let mut sub = manager.subscribe();
    let err = next_error(&mut sub).await;
    assert_eq!(err.status(), Some(429));
    next_token(&mut sub).await;
    let times = script.call_times();
    assert_eq!(times.len(), 2);
    assert_at(times[1], secs(7));

    // A Retry-After longer than max_delay still wins, in the never-give-up cadence too.
    let script = Script::new(
        [Step::Fail(Fail::Http(503, Some(secs(45))))],
        Step::token(3600),
    );
    let options = TokenManagerOptions {
        retry: RetryOptions {
            max_attempts: 1,
            ..RetryOptions::default()
        },
        ..exact()
    };
    let manager = TokenManager::start(Fake(script.clone()), options).unwrap();
    let err = manager.ready().await.unwrap_err();
    assert_eq!(err.retry_after(), Some(secs(45)));
    manager.refresh_now().await.unwrap();
    assert_at(script.call_times()[1], secs(45));
}

#[tokio::test(start_paused = true)]
async fn server_errors_are_retried_in_the_burst() {
    let script = Script::new(
        [
            Step::Fail(Fail::Http(503, None)),
            Step::Fail(Fail::Http(500, None)),
        ],
        Step::token(3600),
    );
    let manager = TokenManager::start(Fake(script.clone()), exact()).unwrap();
    // ready() waits through the burst's failures for the token.
    manager.ready().await.unwrap();
    let times = script.call_times();
    assert_eq!(times.len(), 3);
    assert!(
        times[1] <= secs(1) && times[2] - times[1] <= secs(2),
        "{times:?}"
    );
    let status = manager.status();
    assert_eq!(status.consecutive_failures, 0);
    assert!(status.last_error.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_400_is_not_retried() {
    let script = Script::new([Step::Fail(Fail::InvalidClient)], Step::token(3600));
    let manager = TokenManager::start(Fake(script.clone()), exact()).unwrap();
    let mut sub = manager.subscribe();
    let err = manager.ready().await.unwrap_err();
    // Reported at once, without a retry in the burst.
    assert_eq!(script.elapsed(), Duration::ZERO);
    assert!(
        matches!(
            *err,
            Error::AuthenticationFailed {
                status: Some(400),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("AADSTS7000215"), "{err}");
    assert!(matches!(
        *next_error(&mut sub).await,
        Error::AuthenticationFailed { .. }
    ));
    // token() does not wait either: the error stands until a token arrives.
    assert!(manager.token().await.is_err());
    assert_eq!(script.elapsed(), Duration::ZERO);
    // No attempt in the burst's window: only the never-give-up cadence, after max_delay / 2 to max_delay, tries
    // again (a fixed credential is picked up without a restart).
    tokio::time::sleep(Duration::from_millis(4999)).await;
    assert_eq!(script.calls(), 1);
    next_token(&mut sub).await;
    let times = script.call_times();
    assert!(times[1] >= secs(5) && times[1] <= secs(10), "{times:?}");
}

#[tokio::test(start_paused = true)]
async fn never_gives_up_and_serves_the_old_token_until_it_expires() {
    let script = Script::new([Step::token(100)], Step::Fail(Fail::Transport));
    let options = TokenManagerOptions {
        subscription_capacity: 1000,
        ..exact()
    };
    let manager = TokenManager::start(Fake(script.clone()), options).unwrap();
    let mut sub = manager.subscribe();
    let first = manager.token().await.unwrap();
    assert_eq!(first.username(), "user-1");

    // The refresh at 70 s fails, and keeps failing; the old token is served until it expires at 100 s.
    tokio::time::sleep(Duration::from_millis(99_990)).await;
    assert!(script.calls() >= 4, "{:?}", script.call_times());
    assert_eq!(manager.current().unwrap().username(), "user-1");
    assert_eq!(manager.token().await.unwrap().username(), "user-1");
    assert_eq!(script.elapsed(), Duration::from_millis(99_990));

    // After expiry: nothing served, and callers get the typed error at once.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(manager.current().is_none());
    let err = manager.token().await.unwrap_err();
    assert!(matches!(*err, Error::Transport { .. }), "{err:?}");
    assert_eq!(script.elapsed(), Duration::from_millis(100_010));
    assert!(manager.status().token_expires_at.is_none());

    // Ten minutes of failures later the provider comes back, and the manager recovers on its own.
    tokio::time::sleep(secs(600)).await;
    let failures = script.calls() - 1;
    assert!(failures > 60, "{failures}");
    assert_eq!(manager.status().consecutive_failures as usize, failures);
    // Until then, callers get the error at once.
    assert!(manager.token().await.is_err());
    let mut watcher = manager.subscribe();
    script.set_default(Step::token(3600));
    let fresh = next_token(&mut watcher).await;
    assert_eq!(manager.token().await.unwrap().username(), fresh.username());
    assert_ne!(fresh.username(), "user-1");
    // Never slower than max_delay between two attempts.
    let times = script.call_times();
    for pair in times[1..].windows(2) {
        assert!(
            pair[1] - pair[0] <= secs(10) + Duration::from_millis(1),
            "{times:?}"
        );
    }
    let status = manager.status();
    assert_eq!(status.consecutive_failures, 0);
    assert!(status.last_error.is_none());

    // Subscribers saw the first token, every failure, then the new token.
    assert_eq!(next_token(&mut sub).await.username(), "user-1");
    for _ in 0..failures {
        next_error(&mut sub).await;
    }
    assert_eq!(next_token(&mut sub).await.username(), fresh.username());
}

#[tokio::test(start_paused = true)]
async fn a_hung_provider_times_out_and_is_cancelled() {
    let script = Script::new([Step::Hang], Step::token(3600));
    let manager = TokenManager::start(Fake(script.clone()), exact()).unwrap();
    let mut sub = manager.subscribe();
    let err = next_error(&mut sub).await;
    assert!(
        matches!(*err, Error::Timeout { after, .. } if after == secs(30)),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "Fake timed out after 30s");
    assert_at(script.elapsed(), secs(30));
    settle().await;
    assert_eq!(
        script.cancelled.load(Ordering::SeqCst),
        1,
        "the hung call was dropped"
    );
    // The timeout is retryable: the next attempt comes within a second, and ready() gets its token.
    manager.ready().await.unwrap();
    assert!(script.call_times()[1] <= secs(31));

    // A shorter timeout applies the same way.
    let script = Script::new([Step::Hang, Step::Hang], Step::token(3600));
    let options = TokenManagerOptions {
        request_timeout: secs(2),
        ..exact()
    };
    let manager = TokenManager::start(Fake(script.clone()), options).unwrap();
    manager.ready().await.unwrap();
    let times = script.call_times();
    assert_eq!(times.len(), 3);
    assert!(times[1] >= secs(2) && times[1] <= secs(3), "{times:?}");
    settle().await;
    assert_eq!(script.cancelled.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_provider_is_an_error_not_a_dead_manager() {
    let script = Script::new([Step::Panic], Step::token(3600));
    let manager = TokenManager::start(Fake(script.clone()), exact()).unwrap();
    let mut sub = manager.subscribe();
    let err = next_error(&mut sub).await;
    assert_eq!(err.to_string(), "identity provider Fake panicked");
    next_token(&mut sub).await;
    assert!(manager.status().running);
}

#[tokio::test(start_paused = true)]
async fn a_custom_retry_predicate_is_used() {
    // Treat 404 as retryable: it is retried inside the burst (under 1 s), not after the 5-10 s cadence.
    let script = Script::new([Step::Fail(Fail::Http(404, None))], Step::token(3600));
    let options = TokenManagerOptions {
        retry: RetryOptions::default().with_is_retryable(|e| e.status() == Some(404)),
        ..exact()
    };
    let manager = TokenManager::start(Fake(script.clone()), options).unwrap();
    manager.ready().await.unwrap();
    assert!(
        script.call_times()[1] <= secs(1),
        "{:?}",
        script.call_times()
    );
}

#[tokio::test(start_paused = true)]
async fn a_panicking_retry_hook_counts_as_not_retryable() {
    let script = Script::new([Step::Fail(Fail::Transport)], Step::token(3600));
    let options = TokenManagerOptions {
        retry: RetryOptions::default().with_is_retryable(|_| panic!("scripted hook panic")),
        ..exact()
    };
    let manager = TokenManager::start(Fake(script.clone()), options).unwrap();
    let err = manager.ready().await.unwrap_err();
    assert!(matches!(*err, Error::Transport { .. }), "{err:?}");
    let mut sub = manager.subscribe();
    next_token(&mut sub).await;
    let times = script.call_times();
    assert!(times[1] >= secs(5) && times[1] <= secs(10), "{times:?}");
    assert!(manager.status().running);
}
