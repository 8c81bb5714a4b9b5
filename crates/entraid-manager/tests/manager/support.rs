//! Test support: a scripted fake identity provider that counts its calls, and small helpers.
//!
//! Tokens are unsigned JWTs minted at call time (`oid` and `exp`), each with its own `oid` (`user-<call>`), so a
//! test can tell tokens apart. The manager never verifies signatures.

#![allow(clippy::expect_used, reason = "tests stop on a broken set-up")]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use entraid_core::{
    BoxFuture, Error, IdentityProvider, IdentityProviderResponse, Token, TokenResponse,
};
use entraid_manager::{RefreshJitter, Subscription, TokenEvent, TokenManagerOptions, WallClock};
use tokio::time::Instant;

/// An Entra error body, as the token endpoint sends with a 400.
pub(crate) const INVALID_CLIENT: &str = r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215]}"#;

/// How a scripted call fails.
#[derive(Debug, Clone)]
pub(crate) enum Fail {
    /// A connection error (retryable).
    Transport,
    /// An HTTP status with an optional `Retry-After`.
    Http(u16, Option<Duration>),
    /// A 400 with an Entra `invalid_client` body: an authentication failure, not retryable.
    InvalidClient,
}

impl Fail {
    fn error(&self) -> Error {
        match self {
            Self::Transport => Error::transport("Fake", "connection refused", None),
            Self::Http(status, retry_after) => {
                Error::from_http_status("Fake", *status, *retry_after, b"")
            }
            Self::InvalidClient => {
                Error::from_http_status("Fake", 400, None, INVALID_CLIENT.as_bytes())
            }
        }
    }
}

/// What one call to the fake provider does.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    /// A token response with `expires_in = lifetime` (exact) and an optional `refresh_in`.
    Token {
        lifetime: Duration,
        refresh_in: Option<Duration>,
    },
    /// A raw JWT whose `exp` is `offset_secs` from now (wall clock); negative: already expired.
    Raw { offset_secs: i64 },
    /// Fails.
    Fail(Fail),
    /// Never answers (until cancelled).
    Hang,
    /// Panics.
    Panic,
    /// Answers with the last JWT handed out again, as a raw token (a provider serving its cache).
    Same,
    /// Waits (tokio clock), then does the inner step.
    Delay(Duration, Box<Step>),
}

impl Step {
    pub(crate) fn token(lifetime_secs: u64) -> Self {
        Self::Token {
            lifetime: Duration::from_secs(lifetime_secs),
            refresh_in: None,
        }
    }

    pub(crate) fn delayed(self, by: Duration) -> Self {
        Self::Delay(by, Box::new(self))
    }
}

/// The script behind a [`Fake`] provider, kept by the test to inspect calls.
#[derive(Debug)]
pub(crate) struct Script {
    steps: Mutex<VecDeque<Step>>,
    default: Mutex<Step>,
    calls: Mutex<Vec<Instant>>,
    minted: Mutex<Vec<String>>,
    /// Hanging calls that were cancelled (their future dropped).
    pub(crate) cancelled: AtomicUsize,
    t0: Instant,
    /// The wall clock `exp` claims are minted on; `None`: the system clock.
    wall: Option<Arc<TestWall>>,
}

impl Script {
    /// A script that plays `steps`, then `default` for every further call.
    pub(crate) fn new(steps: impl IntoIterator<Item = Step>, default: Step) -> Arc<Self> {
        Arc::new(Self {
            steps: Mutex::new(steps.into_iter().collect()),
            default: Mutex::new(default),
            calls: Mutex::new(Vec::new()),
            minted: Mutex::new(Vec::new()),
            cancelled: AtomicUsize::new(0),
            t0: Instant::now(),
            wall: None,
        })
    }

    /// A script that mints `exp` claims on `wall` (give the manager the same clock).
    pub(crate) fn on_wall(
        steps: impl IntoIterator<Item = Step>,
        default: Step,
        wall: &Arc<TestWall>,
    ) -> Arc<Self> {
        Arc::new(Self {
            steps: Mutex::new(steps.into_iter().collect()),
            default: Mutex::new(default),
            calls: Mutex::new(Vec::new()),
            minted: Mutex::new(Vec::new()),
            cancelled: AtomicUsize::new(0),
            t0: Instant::now(),
            wall: Some(Arc::clone(wall)),
        })
    }

    fn wall_secs(&self) -> i64 {
        self.wall.as_ref().map_or_else(wall_now_secs, |w| w.secs())
    }

    /// Replaces what calls do once the scripted steps are used up.
    pub(crate) fn set_default(&self, step: Step) {
        *self.default.lock().unwrap() = step;
    }

    /// Calls so far.
    pub(crate) fn calls(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    /// When each call was made, since the script was created.
    pub(crate) fn call_times(&self) -> Vec<Duration> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|t| *t - self.t0)
            .collect()
    }

    /// Every JWT handed out.
    pub(crate) fn minted(&self) -> Vec<String> {
        self.minted.lock().unwrap().clone()
    }

    /// Time since the script was created.
    pub(crate) fn elapsed(&self) -> Duration {
        Instant::now() - self.t0
    }

    fn mint(&self, call: usize, exp: i64) -> String {
        let jwt = entraid_core::unsigned_jwt(
            &serde_json::json!({"oid": format!("user-{call}"), "exp": exp, "tid": "tenant"}),
        );
        self.minted.lock().unwrap().push(jwt.clone());
        jwt
    }

    async fn play(&self, call: usize, step: Step) -> Result<IdentityProviderResponse, Error> {
        match step {
            Step::Token {
                lifetime,
                refresh_in,
            } => {
                let exp = self.wall_secs() + i64::try_from(lifetime.as_secs()).unwrap() + 1;
                let mut response = TokenResponse::new(self.mint(call, exp));
                response.expires_in = Some(lifetime.as_secs());
                response.refresh_in = refresh_in.map(|d| d.as_secs());
                response.token_type = Some("Bearer".to_owned());
                Ok(response.into())
            }
            Step::Raw { offset_secs } => Ok(IdentityProviderResponse::raw_token(
                self.mint(call, self.wall_secs() + offset_secs),
            )),
            Step::Fail(fail) => Err(fail.error()),
            Step::Hang => {
                let _probe = CancelProbe(&self.cancelled);
                std::future::pending().await
            }
            Step::Panic => panic!("scripted provider panic"),
            Step::Same => {
                let last = self.minted.lock().unwrap().last().cloned();
                Ok(IdentityProviderResponse::raw_token(
                    last.expect("a token minted before"),
                ))
            }
            Step::Delay(by, inner) => {
                tokio::time::sleep(by).await;
                Box::pin(self.play(call, *inner)).await
            }
        }
    }
}

struct CancelProbe<'a>(&'a AtomicUsize);

impl Drop for CancelProbe<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Wall-clock seconds, for minting `exp` claims.
#[allow(clippy::disallowed_methods)] // Fixtures need wall-clock `exp` values, as a real issuer sends.
pub(crate) fn wall_now_secs() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    i64::try_from(secs).unwrap()
}

/// A fake identity provider playing a [`Script`].
#[derive(Debug, Clone)]
pub(crate) struct Fake(pub Arc<Script>);

impl IdentityProvider for Fake {
    fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
        let call = {
            let mut calls = self.0.calls.lock().unwrap();
            calls.push(Instant::now());
            calls.len()
        };
        let step = self
            .0
            .steps
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| self.0.default.lock().unwrap().clone());
        Box::pin(self.0.play(call, step))
    }

    fn name(&self) -> &str {
        "Fake"
    }
}

/// The next event, which must be a token.
pub(crate) async fn next_token(sub: &mut Subscription) -> Arc<Token> {
    match sub.recv().await {
        Some(TokenEvent::Token(t)) => t,
        other => panic!("expected a token, got {other:?}"),
    }
}

/// The next event, which must be an error.
pub(crate) async fn next_error(sub: &mut Subscription) -> Arc<Error> {
    match sub.recv().await {
        Some(TokenEvent::Error(e)) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Asserts `actual` is `expected`, up to tokio's 1 ms timer resolution.
#[track_caller]
pub(crate) fn assert_at(actual: Duration, expected: Duration) {
    assert!(
        actual >= expected && actual <= expected + Duration::from_millis(2),
        "at {actual:?}, expected {expected:?}"
    );
}

/// Seconds.
pub(crate) const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Alive tasks on this runtime.
pub(crate) fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Lets every ready task run (paused clock: without advancing time past pending timers).
pub(crate) async fn settle() {
    for _ in 0..16 {
        tokio::task::yield_now().await;
    }
}

/// The default options without refresh jitter: refreshes come exactly at the refresh rule's point.
pub(crate) fn exact() -> TokenManagerOptions {
    TokenManagerOptions {
        refresh_jitter: RefreshJitter::NONE,
        ..TokenManagerOptions::default()
    }
}

/// A wall clock that follows tokio's (paused) clock from the real time at creation, and can jump ahead the way
/// the wall clock does across a suspend or a VM freeze while tokio's clock stands still.
#[derive(Debug)]
pub(crate) struct TestWall {
    base: SystemTime,
    t0: Instant,
    ahead: Mutex<Duration>,
}

impl TestWall {
    #[allow(clippy::disallowed_methods)] // The base of a fake wall clock: real time once.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            base: UNIX_EPOCH
                + Duration::from_secs(
                    SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap()
                        .as_secs(),
                ),
            t0: Instant::now(),
            ahead: Mutex::new(Duration::ZERO),
        })
    }

    /// The time now on this clock.
    pub(crate) fn now(&self) -> SystemTime {
        self.base + (Instant::now() - self.t0) + *self.ahead.lock().unwrap()
    }

    /// Whole seconds since the epoch.
    pub(crate) fn secs(&self) -> i64 {
        i64::try_from(self.now().duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap()
    }

    /// Moves the wall clock ahead by `by` (tokio's clock does not move).
    pub(crate) fn jump(&self, by: Duration) {
        *self.ahead.lock().unwrap() += by;
    }

    /// Sets how far the wall clock is ahead of tokio's (zero: back in step).
    pub(crate) fn set_ahead(&self, ahead: Duration) {
        *self.ahead.lock().unwrap() = ahead;
    }

    /// This clock, for `TokenManagerOptions::wall_clock`.
    pub(crate) fn clock(self: &Arc<Self>) -> WallClock {
        let wall = Arc::clone(self);
        WallClock::custom(move || wall.now())
    }
}
