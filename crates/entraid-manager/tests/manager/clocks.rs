//! Two clocks and an outage. After a suspend or a VM freeze, tokio's clock has stood still while the wall clock
//! ran on: a token whose wall-clock expiry has passed is never handed out, and the jump triggers a refresh. And
//! once no valid token is held, retries come every 1-2 s, so recovery follows the endpoint's return closely.

#![allow(clippy::expect_used, reason = "tests stop on a broken set-up")]

use std::time::Duration;

use entraid_core::Error;
use entraid_manager::{RetryOptions, TokenManager, TokenManagerOptions};

use crate::support::{Fail, Fake, Script, Step, TestWall, exact, next_token, secs, settle};

/// Reads `current()` 16 times: within them (the first read on a thread and one in 16 check the wall clock) the
/// expired token is refused, and from the first refusal on, for every thread, it is never handed out again.
fn refused_within_sixteen_reads(manager: &TokenManager) {
    let reads: Vec<bool> = (0..16).map(|_| manager.current().is_some()).collect();
    let first_refusal = reads.iter().position(|some| !some).expect("refused");
    assert!(reads[first_refusal..].iter().all(|some| !some), "{reads:?}");
    // Other threads too, at once (the refusal emptied every shard).
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| assert!(manager.current().is_none()));
        }
    });
}

fn on(wall: &std::sync::Arc<TestWall>) -> TokenManagerOptions {
    TokenManagerOptions {
        wall_clock: wall.clock(),
        ..exact()
    }
}

#[tokio::test(start_paused = true)]
async fn a_token_expired_on_the_wall_clock_is_never_handed_out() {
    let wall = TestWall::new();
    let script = Script::on_wall([], Step::token(3600), &wall);
    let manager = TokenManager::start(Fake(script.clone()), on(&wall)).unwrap();
    let mut sub = manager.subscribe();
    let mut watch = manager.watch();
    let first = next_token(&mut sub).await;
    assert_eq!(watch.borrow_and_update().unwrap().generation, 1);
    tokio::time::sleep(secs(600)).await;

    // The laptop sleeps for an hour: the wall clock is now past the token's expiry, tokio's clock is not.
    wall.jump(secs(3600));
    // No read path hands the expired token out, before the background task has even run: token() and the
    // watch check on every call, current() within its sampled reads.
    assert!(watch.borrow().is_none());
    refused_within_sixteen_reads(&manager);
    // token() waits for a new one instead, and the jump made the manager ask at once.
    let fresh = manager.token().await.unwrap();
    assert_ne!(fresh.username(), first.username());
    assert!(fresh.expires_on() > wall.now());
    assert_eq!(script.call_times(), vec![secs(0), secs(600)]);
    assert_eq!(manager.current().unwrap().username(), fresh.username());
    assert_eq!(watch.changed().await.unwrap().generation, 2);
    assert_eq!(next_token(&mut sub).await.username(), fresh.username());
}

#[tokio::test(start_paused = true)]
async fn a_clock_jump_that_leaves_the_token_valid_still_triggers_a_refresh() {
    let wall = TestWall::new();
    let script = Script::on_wall([], Step::token(3600), &wall);
    let manager = TokenManager::start(Fake(script.clone()), on(&wall)).unwrap();
    let mut sub = manager.subscribe();
    next_token(&mut sub).await;
    tokio::time::sleep(secs(600)).await;

    // A 30-minute freeze: the token has 50 minutes left by tokio's clock but 20 by the wall clock; the refresh
    // planned for 2520 s on tokio's clock would come 12 minutes after the real expiry.
    wall.jump(secs(1800));
    assert!(manager.current().is_some(), "still valid on both clocks");
    next_token(&mut sub).await;
    let times = script.call_times();
    assert_eq!(times.len(), 2);
    // Found by the periodic comparison (every clock_check_interval: 10 s).
    assert!(times[1] >= secs(600) && times[1] <= secs(610), "{times:?}");
    // And the schedule is sane again: the next refresh at 0.7 of the new token's life.
    let status = manager.status();
    let next = status.next_refresh_at.unwrap() - tokio::time::Instant::now();
    assert_eq!(next, secs(2520));
}

#[tokio::test(start_paused = true)]
async fn small_drifts_and_a_clock_stepped_back_change_nothing() {
    let wall = TestWall::new();
    let script = Script::on_wall([], Step::token(3600), &wall);
    let manager = TokenManager::start(Fake(script.clone()), on(&wall)).unwrap();
    manager.ready().await.unwrap();
    tokio::time::sleep(secs(100)).await;
    wall.jump(secs(8)); // under the 10 s threshold (an NTP correction)
    tokio::time::sleep(secs(1000)).await;
    assert_eq!(script.calls(), 1);
    assert!(manager.current().is_some());
    // The refresh comes at the ratio point.
    tokio::time::sleep(secs(1420)).await;
    settle().await;
    assert_eq!(script.call_times(), vec![secs(0), secs(2520)]);
}

#[tokio::test(start_paused = true)]
async fn a_clock_that_steps_back_before_the_task_looks_gets_its_token_served_again() {
    let wall = TestWall::new();
    let script = Script::on_wall([], Step::token(3600), &wall);
    let manager = TokenManager::start(Fake(script.clone()), on(&wall)).unwrap();
    manager.ready().await.unwrap();
    tokio::time::sleep(secs(60)).await;
    wall.jump(secs(7200));
    refused_within_sixteen_reads(&manager);
    // Stepped back before the background task ran: the token is valid, and served again without a request.
    wall.set_ahead(Duration::ZERO);
    settle().await;
    assert!(manager.current().is_some());
    assert_eq!(script.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_periodic_check_can_be_disabled() {
    let wall = TestWall::new();
    let script = Script::on_wall([], Step::token(3600), &wall);
    let options = TokenManagerOptions {
        clock_check_interval: Duration::ZERO,
        ..on(&wall)
    };
    let manager = TokenManager::start(Fake(script.clone()), options).unwrap();
    manager.ready().await.unwrap();
    tokio::time::sleep(secs(600)).await;
    wall.jump(secs(1800));
    tokio::time::sleep(secs(600)).await;
    assert_eq!(script.calls(), 1, "no periodic check");
    // Reads still refuse a token expired on the wall clock, and report it.
    wall.jump(secs(3600));
    refused_within_sixteen_reads(&manager);
    manager.token().await.unwrap();
    assert_eq!(script.calls(), 2);
}

/// The identity endpoint answers 503 for 12 s with 5 s tokens (the reported outage). Whenever it comes back, the
/// first new token follows within 2 s, where the never-give-up cadence alone (up to 10 s) took 6.5 s.
#[tokio::test(start_paused = true)]
async fn recovery_comes_within_two_seconds_of_the_endpoints_return() {
    for seed in 0..10u64 {
        let script = Script::new([Step::token(5)], Step::Fail(Fail::Http(503, None)));
        let options = TokenManagerOptions {
            rng_seed: Some(seed),
            subscription_capacity: 1000,
            ..TokenManagerOptions::default()
        };
        let manager = TokenManager::start(Fake(script.clone()), options).unwrap();
        manager.ready().await.unwrap();
        let mut sub = manager.subscribe();
        // The refresh (about 3.5 s) fails; the token expires at 5 s; the endpoint is back at 3.5 + 12 s plus a
        // seed-dependent offset.
        let back = Duration::from_millis(15_500 + seed * 137);
        tokio::time::sleep(back - script.elapsed()).await;
        assert!(
            manager.current().is_none(),
            "seed {seed}: expired during the outage"
        );
        assert!(
            manager.token().await.is_err(),
            "seed {seed}: a typed error, at once"
        );
        script.set_default(Step::token(5));
        let fresh = loop {
            match sub.recv().await.unwrap() {
                entraid_manager::TokenEvent::Token(t) => break t,
                _ => continue,
            }
        };
        let recovered = script.elapsed();
        assert!(
            recovered >= back && recovered <= back + secs(2),
            "seed {seed}: token at {recovered:?}, endpoint back at {back:?}"
        );
        assert_eq!(manager.current().unwrap().username(), fresh.username());
        // During the outage, once the token had expired, attempts were 1-2 s apart.
        let times = script.call_times();
        for pair in times.windows(2).filter(|p| p[0] >= secs(7)) {
            let gap = pair[1] - pair[0];
            assert!(
                gap >= secs(1) && gap <= secs(2) + Duration::from_millis(1),
                "seed {seed}: {times:?}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_outage_cadence_still_honours_retry_after() {
    let script = Script::new([], Step::Fail(Fail::Http(503, Some(secs(7)))));
    let manager = TokenManager::start(Fake(script.clone()), exact()).unwrap();
    let err = manager.ready().await.unwrap_err();
    assert_eq!(err.retry_after(), Some(secs(7)));
    tokio::time::sleep(secs(60)).await;
    let times = script.call_times();
    for pair in times.windows(2) {
        assert!(pair[1] - pair[0] >= secs(7), "{times:?}");
    }
    // And a custom outage_delay is used.
    let script = Script::new([], Step::Fail(Fail::Transport));
    let options = TokenManagerOptions {
        retry: RetryOptions {
            outage_delay: secs(6),
            ..RetryOptions::default()
        },
        ..exact()
    };
    let manager = TokenManager::start(Fake(script.clone()), options).unwrap();
    assert!(matches!(
        *manager.ready().await.unwrap_err(),
        Error::Transport { .. }
    ));
    tokio::time::sleep(secs(120)).await;
    let times = script.call_times();
    // From the fourth failure on, the never-give-up cadence ([4, 8] s, then [5, 10] s) is cut to [3, 6] s.
    for pair in times[3..].windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= secs(3) && gap <= secs(6) + Duration::from_millis(1),
            "{times:?}"
        );
    }
}
