//! One token stream: [`TokenManager::watch`] carries (generation, token, expiry on tokio's clock) and cannot miss
//! the latest token, where "read `current()`, then `subscribe()`" can.

use entraid_manager::TokenManager;

use crate::support::{Fake, Script, Step, exact, next_token, secs, settle};

#[tokio::test(start_paused = true)]
async fn a_token_published_between_read_and_wait_is_never_missed() {
    let script = Script::new([], Step::token(3600));
    let manager = TokenManager::start(Fake(script.clone()), exact()).unwrap();
    manager.ready().await.unwrap();

    // The old way: read the current token, then subscribe. A token published in between reaches no one.
    let read = manager.current().unwrap();
    manager.refresh_now().await.unwrap(); // published "in between"
    let mut late = manager.subscribe();
    assert_eq!(read.username(), "user-1");
    assert!(late.try_recv().is_none(), "the subscription missed user-2");

    // The watch: read, a token is published, and the wait returns it at once.
    let mut watch = manager.watch();
    let current = watch.borrow_and_update().unwrap();
    assert_eq!(
        (current.generation, current.token.username()),
        (2, "user-2")
    );
    manager.refresh_now().await.unwrap(); // published between the read and the wait
    let before = tokio::time::Instant::now();
    let next = watch.changed().await.unwrap();
    assert_eq!(tokio::time::Instant::now(), before, "no wait");
    assert_eq!((next.generation, next.token.username()), (3, "user-3"));
    assert_eq!(next.expires_at, manager.status().token_expires_at.unwrap());
    assert_eq!(watch.seen(), 3);
    assert_eq!(watch.generation(), 3);
    drop(late);
}

#[tokio::test(start_paused = true)]
async fn a_new_watch_returns_the_token_held_then_each_new_generation() {
    let script = Script::new([], Step::token(100));
    let manager = TokenManager::start(Fake(script.clone()), exact()).unwrap();
    // Made before the first token.
    let mut early = manager.watch();
    assert!(early.borrow().is_none());
    assert_eq!(early.generation(), 0);
    assert_eq!(early.changed().await.unwrap().generation, 1);
    // Made after: its first changed() is the token held, at once.
    let mut later = manager.watch();
    assert_eq!(later.changed().await.unwrap().generation, 1);
    // Then one generation per rotation (70 s), on both.
    let mut sub = manager.subscribe();
    for generation in 2..=5 {
        let got = early.changed().await.unwrap();
        assert_eq!(got.generation, generation);
        assert_eq!(later.changed().await.unwrap().generation, generation);
        let event = next_token(&mut sub).await;
        assert_eq!(event.username(), got.token.username());
        assert_eq!(got.expires_at, tokio::time::Instant::now() + secs(100));
    }
    assert!(format!("{early:?}").contains("generation: 5"));
    assert!(!format!("{:?}", early.borrow().unwrap()).contains("eyJ"));
    // After shutdown: None.
    manager.shutdown();
    assert!(early.changed().await.is_none());
    assert!(early.borrow().is_none());
}

#[tokio::test(start_paused = true)]
async fn an_expired_token_is_not_handed_out_by_the_watch_and_the_watch_does_not_keep_the_manager_alive()
 {
    let script = Script::new(
        [Step::token(10)],
        Step::Fail(crate::support::Fail::Transport),
    );
    let manager = TokenManager::start(Fake(script.clone()), exact()).unwrap();
    let mut watch = manager.watch();
    assert_eq!(watch.changed().await.unwrap().generation, 1);
    tokio::time::sleep(secs(11)).await;
    assert!(watch.borrow().is_none());
    assert_eq!(watch.generation(), 1);
    drop(manager);
    settle().await;
    assert!(watch.changed().await.is_none());
}
