//! Lifecycle: start errors, dropping the last handle stops the background task, shutdown, status and Debug
//! output without secrets.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use entraid_core::Error;
use entraid_manager::{TokenManager, TokenManagerOptions};

use crate::support::{Fail, Fake, Script, Step, alive_tasks, exact, next_token, secs, settle};

#[test]
fn start_outside_a_runtime_is_a_configuration_error() {
    let script = Script::new([], Step::token(3600));
    let err = TokenManager::start(Fake(script), exact()).unwrap_err();
    assert!(
        matches!(&err, Error::Configuration { message } if message.contains("tokio runtime")),
        "{err:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn invalid_options_are_refused_at_start() {
    let script = Script::new([], Step::token(3600));
    let options = TokenManagerOptions {
        expiration_refresh_ratio: 0.0,
        ..exact()
    };
    let err = TokenManager::start(Fake(script.clone()), options).unwrap_err();
    assert!(matches!(err, Error::Configuration { .. }), "{err:?}");
    settle().await;
    assert_eq!(script.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_last_handle_stops_the_background_task() {
    let before = alive_tasks();
    let script = Script::new([], Step::token(3600));
    let manager = TokenManager::start(Fake(script.clone()), exact()).unwrap();
    let mut sub = manager.subscribe();
    manager.ready().await.unwrap();
    next_token(&mut sub).await;
    assert_eq!(alive_tasks(), before + 1);

    // A clone keeps it alive.
    let clone = manager.clone();
    drop(manager);
    settle().await;
    assert_eq!(alive_tasks(), before + 1);
    assert!(clone.status().running);
    assert!(clone.current().is_some());

    // The last handle stops it; the subscription does not keep it alive.
    drop(clone);
    assert!(sub.recv().await.is_none());
    settle().await;
    assert_eq!(alive_tasks(), before);
    assert_eq!(Arc::strong_count(&script), 1, "the provider was dropped");
    // And nothing runs later.
    tokio::time::sleep(secs(10_000)).await;
    assert_eq!(script.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_last_handle_cancels_a_request_in_flight() {
    let before = alive_tasks();
    let script = Script::new([Step::Hang], Step::token(3600));
    let manager = TokenManager::start(Fake(script.clone()), exact()).unwrap();
    settle().await;
    assert_eq!(script.calls(), 1);
    assert!(manager.status().fetching);
    drop(manager);
    settle().await;
    assert_eq!(script.cancelled.load(Ordering::SeqCst), 1);
    assert_eq!(alive_tasks(), before);
    assert_eq!(Arc::strong_count(&script), 1);
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_everything_for_every_handle() {
    let before = alive_tasks();
    let script = Script::new([], Step::token(3600));
    let manager = TokenManager::start(Fake(script.clone()), exact()).unwrap();
    let other = manager.clone();
    let mut sub = manager.subscribe();
    manager.ready().await.unwrap();
    manager.shutdown();

    assert!(other.current().is_none());
    for err in [
        other.token().await.unwrap_err(),
        other.refresh_now().await.unwrap_err(),
        other.ready().await.unwrap_err(),
    ] {
        assert!(err.is_unavailable(), "{err:?}");
        assert_eq!(
            err.to_string(),
            "TokenManager is unavailable: the token manager has shut down"
        );
    }
    // Queued events are still delivered, then the stream ends.
    next_token(&mut sub).await;
    assert!(sub.recv().await.is_none());
    assert!(other.subscribe().recv().await.is_none());
    let status = other.status();
    assert!(!status.running);
    assert!(status.token_expires_at.is_none() && status.next_refresh_at.is_none());
    settle().await;
    assert_eq!(alive_tasks(), before);
    tokio::time::sleep(secs(10_000)).await;
    assert_eq!(script.calls(), 1);
    other.shutdown(); // Idempotent.
}

#[tokio::test(start_paused = true)]
async fn status_reports_expiry_next_refresh_and_failures() {
    let script = Script::new(
        [Step::token(1000), Step::Fail(Fail::Transport)],
        Step::token(1000),
    );
    let manager = TokenManager::start(Fake(script.clone()), exact()).unwrap();
    let initial = manager.status();
    assert_eq!(
        (initial.attempts, initial.refreshes, initial.subscribers),
        (0, 0, 0)
    );
    assert!(initial.running && initial.token_expires_at.is_none());
    manager.ready().await.unwrap();
    let now = tokio::time::Instant::now();
    let status = manager.status();
    assert_eq!(status.token_expires_at, Some(now + secs(1000)));
    assert_eq!(status.next_refresh_at, Some(now + secs(700)));
    let token = manager.current().unwrap();
    assert_eq!(status.token_expires_on, Some(token.expires_on()));
    assert_eq!((status.attempts, status.refreshes), (1, 1));
    assert!(!status.fetching);
    assert_eq!(manager.provider_name(), "Fake");

    let _sub = manager.subscribe();
    let mut sub = manager.subscribe();
    crate::support::next_error(&mut sub).await;
    let status = manager.status();
    assert_eq!(status.subscribers, 2);
    assert_eq!(status.consecutive_failures, 1);
    assert!(matches!(
        status.last_error.as_deref(),
        Some(Error::Transport { .. })
    ));
    let retry_in = status.next_refresh_at.unwrap() - tokio::time::Instant::now();
    assert!(retry_in <= secs(1), "{retry_in:?}");
    assert_eq!(
        status.token_expires_at,
        Some(now + secs(1000)),
        "the old token is still served"
    );
    next_token(&mut sub).await;
    let status = manager.status();
    assert_eq!(status.consecutive_failures, 0);
    assert!(status.last_error.is_none());
    assert_eq!((status.attempts, status.refreshes), (3, 2));
}

#[tokio::test(start_paused = true)]
async fn debug_output_holds_no_secret() {
    let script = Script::new([], Step::token(3600));
    let manager = TokenManager::start(Fake(script.clone()), exact()).unwrap();
    let mut sub = manager.subscribe();
    let token = manager.token().await.unwrap();
    let event = sub.recv().await.unwrap();
    let jwt = token.access_token().expose_secret().to_owned();
    assert_eq!(script.minted(), std::slice::from_ref(&jwt));
    let shown = format!(
        "{manager:?} {:?} {event:?} {sub:?} {:?} {token:?}",
        manager.status(),
        exact()
    );
    let signature_free = jwt.trim_end_matches('.');
    for part in signature_free.split('.') {
        assert!(!shown.contains(part), "a JWT part leaked: {shown}");
    }
    assert!(
        shown.contains("Fake") && shown.contains("Secret([redacted])"),
        "{shown}"
    );
}

#[test]
fn handles_and_events_are_send_and_sync() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<TokenManager>();
    send_sync::<entraid_manager::Subscription>();
    send_sync::<entraid_manager::TokenEvent>();
    send_sync::<entraid_manager::ManagerStatus>();
    send_sync::<TokenManagerOptions>();
}
