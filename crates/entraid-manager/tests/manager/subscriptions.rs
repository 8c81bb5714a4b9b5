//! Subscriptions: every token once and in order, every error, slow subscribers, and nothing left behind after
//! 100,000 subscribe/drop cycles and 10,000 rotations.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use entraid_core::Token;
use entraid_manager::{TokenEvent, TokenManager, TokenManagerOptions};

use crate::support::{
    Fail, Fake, Script, Step, alive_tasks, exact, next_error, next_token, secs, settle,
};

fn describe(event: &TokenEvent) -> String {
    match event {
        TokenEvent::Token(t) => t.username().to_owned(),
        TokenEvent::Error(e) => format!("error: {e}"),
        other => panic!("unknown event {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn every_subscriber_gets_every_token_once_in_order_and_every_error() {
    let script = Script::new(
        [
            Step::token(10),
            Step::Fail(Fail::Transport),
            Step::Fail(Fail::Http(503, None)),
        ],
        Step::token(10),
    );
    let manager = TokenManager::start(Fake(script.clone()), exact()).unwrap();
    let mut subs: Vec<_> = (0..3).map(|_| manager.subscribe()).collect();
    let mut seen = Vec::new();
    for sub in &mut subs {
        let mut events = Vec::new();
        for _ in 0..6 {
            events.push(describe(&sub.recv().await.unwrap()));
        }
        seen.push(events);
    }
    let expected = [
        "user-1",
        "error: Fake could not connect: connection refused",
        "error: Fake request failed (HTTP 503)",
        "user-4",
        "user-5",
        "user-6",
    ];
    for events in &seen {
        assert_eq!(events.len(), expected.len());
        assert_eq!(events[0], expected[0]);
        assert!(events[1].starts_with("error: Fake"), "{events:?}");
        assert_eq!(&events[2..], &expected[2..], "{events:?}");
    }
    // No duplicates were queued behind them.
    for sub in &mut subs {
        assert!(sub.try_recv().is_none());
        assert_eq!(sub.missed(), 0);
    }
    // A late subscriber sees only what happens after it subscribed.
    let mut late = manager.subscribe();
    assert_eq!(next_token(&mut late).await.username(), "user-7");
}

#[tokio::test(start_paused = true)]
async fn a_slow_subscriber_blocks_nobody() {
    let script = Script::new([], Step::token(10));
    let options = TokenManagerOptions {
        subscription_capacity: 4,
        ..exact()
    };
    let manager = TokenManager::start(Fake(script.clone()), options).unwrap();
    let slow = manager.subscribe();
    let mut fast = manager.subscribe();
    for n in 1..=50 {
        assert_eq!(next_token(&mut fast).await.username(), format!("user-{n}"));
    }
    // The refresh loop kept its schedule: one call every 7 s.
    assert_eq!(script.calls(), 50);
    assert_eq!(script.elapsed(), secs(7 * 49));
    // The slow one holds the newest four tokens and knows it missed 46.
    assert_eq!(slow.len(), 4);
    assert_eq!(slow.missed(), 46);
    let mut slow = slow;
    let names: Vec<String> = std::iter::from_fn(|| slow.try_recv())
        .map(|e| describe(&e))
        .collect();
    assert_eq!(names, ["user-47", "user-48", "user-49", "user-50"]);
}

#[tokio::test(start_paused = true)]
async fn subscribe_drop_cycles_leave_nothing_behind() {
    let script = Script::new([], Step::token(3600));
    let manager = TokenManager::start(Fake(script.clone()), exact()).unwrap();
    manager.ready().await.unwrap();
    let tasks = alive_tasks();
    let mut keeper = manager.subscribe();
    for _ in 0..100_000 {
        let sub = manager.subscribe();
        drop(sub);
    }
    assert_eq!(manager.status().subscribers, 1);
    assert_eq!(alive_tasks(), tasks);
    // Subscriptions dropped while events flow leave nothing either.
    for _ in 0..1000 {
        let sub = manager.subscribe();
        manager.refresh_now().await.unwrap();
        assert_eq!(sub.len(), 1);
    }
    assert_eq!(manager.status().subscribers, 1);
    assert_eq!(keeper.len(), 64, "the keeper's queue is bounded");
    assert_eq!(keeper.missed(), 1000 - 64);
    let mut last = None;
    while let Some(event) = keeper.try_recv() {
        last = Some(describe(&event));
    }
    assert_eq!(last.as_deref(), Some("user-1001"));
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_rotations_leave_nothing_behind() {
    let tasks_before = alive_tasks();
    let script = Script::new([], Step::token(1));
    let manager = TokenManager::start(Fake(script.clone()), exact()).unwrap();
    let slow = manager.subscribe();
    let mut drained = manager.subscribe();
    let seen: Arc<Mutex<Vec<Weak<Token>>>> = Arc::default();
    let drainer = tokio::spawn({
        let seen = Arc::clone(&seen);
        async move {
            let mut errors = 0;
            while let Some(event) = drained.recv().await {
                match event {
                    TokenEvent::Token(t) => seen.lock().unwrap().push(Arc::downgrade(&t)),
                    _ => errors += 1,
                }
            }
            errors
        }
    });
    let alive = || {
        let seen = seen.lock().unwrap();
        seen.iter().filter(|t| t.strong_count() > 0).count()
    };
    // Rotations every 0.7 s: 10,001 tokens at 0, 0.7, ..., 7000 s.
    tokio::time::sleep(Duration::from_millis(7_000_350)).await;
    settle().await;
    assert_eq!(script.calls(), 10_001);
    let status = manager.status();
    assert_eq!((status.refreshes, status.attempts), (10_001, 10_001));
    assert_eq!(status.subscribers, 2);
    assert_eq!(
        alive_tasks(),
        tasks_before + 2,
        "the refresh task and the drainer"
    );
    assert_eq!(seen.lock().unwrap().len(), 10_001);
    assert_eq!(manager.current().unwrap().username(), "user-10001");
    // Alive: the tokens in the slow subscriber's bounded queue (the newest 64, the current one among them).
    assert_eq!(slow.len(), 64);
    assert_eq!(slow.missed(), 10_001 - 64);
    assert_eq!(alive(), 64);
    drop(slow);
    assert_eq!(alive(), 1, "only the current token is left");

    drop(manager);
    assert_eq!(drainer.await.unwrap(), 0, "no errors");
    assert_eq!(alive(), 0, "every token was freed");
    settle().await;
    assert_eq!(alive_tasks(), tasks_before);
    assert_eq!(Arc::strong_count(&script), 1, "the provider was dropped");
}

#[tokio::test(start_paused = true)]
async fn errors_reach_subscribers_while_the_old_token_is_served() {
    let script = Script::new([Step::token(100)], Step::Fail(Fail::Transport));
    let manager = TokenManager::start(Fake(script.clone()), exact()).unwrap();
    let mut sub = manager.subscribe();
    next_token(&mut sub).await;
    let err = next_error(&mut sub).await;
    assert_eq!(script.elapsed(), secs(70));
    assert!(err.is_retryable());
    assert_eq!(manager.current().unwrap().username(), "user-1");
}
