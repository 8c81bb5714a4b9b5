//! The state the [`TokenManager`](crate::TokenManager) handles share with the refresh loop: one tokio `watch`
//! value ([`State`]) and what sits beside it ([`Shared`]).
//!
//! All state lives in that one `watch` channel, written by the refresh loop (and, for demand flags, by callers,
//! under the channel's lock, so single flight is exact). Its own module so that the handle (`manager.rs`), the
//! loop (`refresh_loop.rs`) and the token stream (`watch.rs`) all depend on it and not on each other.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use entraid_core::{Error, Token};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::hot::HotCache;
use crate::options::TokenManagerOptions;
use crate::subscription::Registry;

/// A failed attempt, as the state records it.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) error: Arc<Error>,
    pub(crate) consecutive: u32,
    /// The burst is over (used up, or the error was not retryable): callers without a valid token get this error
    /// at once instead of waiting for the next attempt.
    pub(crate) settled: bool,
}

/// Everything the manager knows, in one `watch` value.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// The token served now; cleared when it expires.
    pub(crate) token: Option<Arc<Token>>,
    /// When `token` expires, on tokio's clock.
    pub(crate) expires_at: Option<Instant>,
    /// When `token` arrived, on tokio's clock (its `received_at` is the wall-clock time of the same moment).
    pub(crate) received_at: Option<Instant>,
    /// Counts genuinely new tokens: 1 for the first, never for a token equal to the one held.
    pub(crate) generation: u64,
    /// A read found the token expired on the wall clock: the refresh task compares the clocks at once.
    pub(crate) clock_suspect: bool,
    /// Answers that repeated the token already held (not published).
    pub(crate) identical: u64,
    /// When the refresh task next asks the identity provider (a scheduled refresh or a retry).
    pub(crate) next_attempt_at: Option<Instant>,
    /// The last attempt's error, until an attempt succeeds.
    pub(crate) failure: Option<Failure>,
    /// An identity-provider request is in flight.
    pub(crate) fetching: bool,
    /// A caller needs a token and none is valid: fetch now (unless backing off).
    pub(crate) need: bool,
    /// A caller asked for a forced refresh: fetch now (unless backing off).
    pub(crate) force: bool,
    /// Attempts completed (successful or not).
    pub(crate) attempts: u64,
    /// Tokens received.
    pub(crate) refreshes: u64,
    /// Shut down: nothing is served, the refresh task stops.
    pub(crate) closed: bool,
}

impl State {
    /// The token, when there is one and it has not expired at `now`.
    pub(crate) fn valid_token(&self, now: Instant) -> Option<&Arc<Token>> {
        match (&self.token, self.expires_at) {
            (Some(token), Some(expires_at)) if now < expires_at => Some(token),
            _ => None,
        }
    }

    /// The token, when it has expired neither at `now` on tokio's clock nor at `wall` on the wall clock: what a
    /// read may hand out.
    pub(crate) fn servable(&self, now: Instant, wall: SystemTime) -> Option<&Arc<Token>> {
        self.valid_token(now).filter(|t| t.expires_on() > wall)
    }
}

/// What the handles and the refresh task share.
pub(crate) struct Shared {
    pub(crate) state: watch::Sender<State>,
    /// The hot-path copy of `state.token`, written with it (under the state's write lock).
    pub(crate) hot: HotCache,
    pub(crate) registry: Arc<Registry>,
    pub(crate) options: TokenManagerOptions,
    pub(crate) provider_name: String,
    /// A read already reported a token expired on the wall clock (cleared by the refresh task once it looked).
    pub(crate) wall_expired_reported: AtomicBool,
}

impl Shared {
    /// A read found the token expired on the wall clock (a suspend, a frozen VM, a clock step): empties the
    /// hot cache for every thread at once and asks the refresh task to compare the clocks now. Cheap when
    /// repeated: one relaxed load until the task has looked.
    #[cold]
    pub(crate) fn report_wall_expired(&self) {
        if self.wall_expired_reported.load(Ordering::Relaxed)
            || self.wall_expired_reported.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let wall = self.options.wall_clock.now();
        self.state.send_if_modified(|s| {
            if s.closed {
                return false;
            }
            // Under the state's lock, so a new token written meanwhile is not wiped out.
            if s.token.as_ref().is_some_and(|t| t.expires_on() <= wall) {
                self.hot.set(None);
            }
            let was = s.clock_suspect;
            s.clock_suspect = true;
            !was
        });
    }

    /// Stops serving and tells the refresh task and every subscription to stop. Idempotent.
    pub(crate) fn close(&self) {
        self.state.send_if_modified(|s| {
            if s.closed {
                return false;
            }
            s.closed = true;
            s.token = None;
            self.hot.set(None);
            s.expires_at = None;
            s.next_attempt_at = None;
            s.fetching = false;
            true
        });
        self.registry.close();
    }
}

/// The error every call returns once the manager has shut down.
pub(crate) fn shut_down_error() -> Arc<Error> {
    Arc::new(Error::unavailable(
        "TokenManager",
        "the token manager has shut down",
    ))
}
