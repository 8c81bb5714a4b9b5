//! Observability: the tracing events the manager emits, and that none of them holds a token.
//!
//! A test binary of its own: tracing caches per-callsite interest process-wide, so a capturing subscriber set for
//! one thread can miss events whose callsites other tests' threads registered at the same moment.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions: a failed unwrap fails the test, as it should"
)]

#[allow(
    dead_code,
    reason = "the shared support module; this binary uses part of it"
)]
#[path = "manager/support.rs"]
mod support;

use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex};

use entraid_manager::{RefreshJitter, TokenManager, TokenManagerOptions};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

use support::{Fail, Fake, Script, Step, next_error, next_token, secs};

/// A tracing subscriber that keeps every event as a line of text.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        write!(self.0, " {}={value:?}", field.name()).unwrap();
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = Line(event.metadata().level().to_string());
        event.record(&mut line);
        self.0.lock().unwrap().push(line.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[tokio::test(start_paused = true)]
async fn events_cover_the_lifecycle_and_hold_no_secret() {
    let capture = Capture::default();
    let _default = tracing::subscriber::set_default(capture.clone());

    let script = Script::new(
        [
            Step::token(100),
            Step::Fail(Fail::Transport),
            Step::Fail(Fail::Transport),
            Step::Fail(Fail::Transport),
            Step::Fail(Fail::Transport),
        ],
        Step::token(100),
    );
    let options = TokenManagerOptions {
        lower_refresh_bound: secs(3600),
        refresh_jitter: RefreshJitter::NONE,
        ..TokenManagerOptions::default()
    };
    let manager = TokenManager::start(Fake(script.clone()), options).unwrap();
    let mut sub = manager.subscribe();
    next_token(&mut sub).await;
    for _ in 0..4 {
        next_error(&mut sub).await;
    }
    next_token(&mut sub).await;
    drop(manager);

    // A second manager whose provider fails for good lets its token expire.

    let expiring = Script::new([Step::token(10)], Step::Fail(Fail::Transport));
    let manager =
        TokenManager::start(Fake(expiring.clone()), TokenManagerOptions::default()).unwrap();
    manager.ready().await.unwrap();
    tokio::time::sleep(secs(11)).await;
    assert!(manager.current().is_none());
    drop(manager);
    tokio::task::yield_now().await;

    // A provider answering from its cache, then a suspend seen through an injected wall clock.
    let wall = support::TestWall::new();
    let cached = Script::on_wall([Step::token(100), Step::Same], Step::token(100), &wall);
    let options = TokenManagerOptions {
        wall_clock: wall.clock(),
        refresh_jitter: RefreshJitter::NONE,
        ..TokenManagerOptions::default()
    };
    let manager = TokenManager::start(Fake(cached.clone()), options).unwrap();
    manager.ready().await.unwrap();
    tokio::time::sleep(secs(71)).await;
    assert_eq!(manager.status().identical_tokens, 1);
    wall.jump(secs(20));
    tokio::time::sleep(secs(11)).await;
    assert_eq!(cached.calls(), 3);
    drop(manager);
    tokio::task::yield_now().await;

    let lines = capture.0.lock().unwrap().clone();
    let all = lines.join("\n");
    for expected in [
        "INFO message=token refreshed provider=Fake lifetime_ms=100000",
        "DEBUG message=token refresh scheduled provider=Fake refresh_in_ms=70000 rule=\"ratio\"",
        "WARN message=token lives shorter than lower_refresh_bound",
        "WARN message=token request failed; retrying provider=Fake attempt=1",
        "ERROR message=token request failed; retrying until a token arrives provider=Fake consecutive_failures=3",
        "WARN message=token request still failing; retrying provider=Fake consecutive_failures=4",
        "INFO message=token refreshed provider=Fake lifetime_ms=100000 after_failures=4",
        "WARN message=token expired before a new one arrived provider=Fake",
        "DEBUG message=token manager stopped provider=Fake",
        "DEBUG message=identity provider answered with the token already held; not published provider=Fake",
        "WARN message=the wall clock ran ahead of tokio's clock (suspend or VM freeze?); refreshing now provider=Fake wall_clock_ahead_ms=",
    ] {
        assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
    }
    assert!(all.contains("error=Fake"), "{all}");
    let mut minted = script.minted();
    minted.extend(expiring.minted());
    minted.extend(cached.minted());
    assert_eq!(minted.len(), 5);
    for jwt in minted {
        for part in jwt.split('.').filter(|p| !p.is_empty()) {
            assert!(!all.contains(part), "a token leaked into the logs:\n{all}");
        }
    }
    assert!(!all.contains("user-"), "no claim values are logged:\n{all}");
}
