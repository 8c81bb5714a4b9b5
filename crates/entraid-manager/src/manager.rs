//! [`TokenManager`]: the cloneable handle, the state it shares with the refresh task, and [`ManagerStatus`].
//!
//! All state lives in one tokio `watch` channel written by the refresh task (and, for demand flags, by callers,
//! under the channel's lock, so single flight is exact). The hot path, [`TokenManager::current`], reads a
//! per-thread shard of the token instead (see `hot.rs`): readers never wait for each other or for a refresh.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use entraid_core::{Error, IdentityProvider, SharedIdentityProvider, Token};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::hot::HotCache;
use crate::options::TokenManagerOptions;
use crate::subscription::{Registry, Subscription};

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
}

/// What the handles and the refresh task share.
pub(crate) struct Shared {
    pub(crate) state: watch::Sender<State>,
    /// The hot-path copy of `state.token`, written with it (under the state's write lock).
    pub(crate) hot: HotCache,
    pub(crate) registry: Arc<Registry>,
    pub(crate) options: TokenManagerOptions,
    pub(crate) provider_name: String,
}

impl Shared {
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

/// Owned by the handles; the last one dropped stops the manager.
struct HandleInner {
    shared: Arc<Shared>,
}

impl Drop for HandleInner {
    fn drop(&mut self) {
        self.shared.close();
    }
}

/// Keeps a valid Entra ID token at hand, refreshing it in a background task, for as long as a handle lives.
///
/// A cheap `Clone` handle. The background task stops when the last handle is dropped or on
/// [`TokenManager::shutdown`]; a [`Subscription`] does not keep it alive. See the [crate docs](crate) for the
/// refresh, retry and single-flight rules.
#[derive(Clone)]
pub struct TokenManager {
    inner: Arc<HandleInner>,
}

impl TokenManager {
    /// Starts a manager over `provider`: spawns the background task, which asks for the first token at once.
    ///
    /// Must be called inside a tokio runtime with time enabled (`#[tokio::main]` and `#[tokio::test]` are).
    ///
    /// # Errors
    /// [`Error::Configuration`] when the options are invalid (see [`TokenManagerOptions::validate`]) or when called
    /// outside a tokio runtime.
    pub fn start(
        provider: impl IdentityProvider + 'static,
        options: TokenManagerOptions,
    ) -> Result<Self, Error> {
        options.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::configuration("TokenManager::start must be called inside a tokio runtime")
        })?;
        let provider = SharedIdentityProvider::new(provider);
        let shared = Arc::new(Shared {
            state: watch::Sender::new(State::default()),
            hot: HotCache::new(),
            registry: Arc::new(Registry::default()),
            provider_name: provider.name().to_owned(),
            options,
        });
        runtime.spawn(crate::refresh::run(Arc::clone(&shared), provider));
        Ok(Self {
            inner: Arc::new(HandleInner { shared }),
        })
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// The token held now, if it has not expired; never waits.
    ///
    /// This is the hot path: an uncontended read lock and an `Arc` clone on a cache line of the calling thread's
    /// own, so threads reading at the same time do not slow each other down, and a refresh in flight never
    /// blocks it. It reads no clock: the background task drops the token when it expires (on tokio's clock). Use
    /// [`TokenManager::token`] to wait for a token when there is none.
    ///
    /// Threads may get different `Arc`s (copies) of the same token: compare tokens by value, not by pointer.
    pub fn current(&self) -> Option<Arc<Token>> {
        self.shared().hot.get()
    }

    /// A valid token: the current one, or, when none is valid, the next one.
    ///
    /// Without a valid token, this asks the background task to fetch now (unless it is backing off after a
    /// failure) and waits; any number of concurrent callers share one identity-provider request. While the
    /// manager's retries are failing (its burst of `max_attempts` is used up, or the error is not retryable), this
    /// returns the last error at once instead of waiting, until a token arrives.
    ///
    /// # Errors
    /// The identity provider's (or parser's) last error, or [`Error::CredentialUnavailable`] after shutdown.
    pub async fn token(&self) -> Result<Arc<Token>, Arc<Error>> {
        let state = &self.shared().state;
        let mut rx = state.subscribe();
        if let Some(outcome) = settled(&rx.borrow_and_update(), Instant::now()) {
            return outcome;
        }
        state.send_if_modified(|s| {
            if s.closed || s.fetching || s.need || s.valid_token(Instant::now()).is_some() {
                return false;
            }
            s.need = true;
            true
        });
        loop {
            let Ok(s) = rx.wait_for(|s| settled(s, Instant::now()).is_some()).await else {
                return Err(shut_down_error());
            };
            if let Some(outcome) = settled(&s, Instant::now()) {
                return outcome;
            }
        }
    }

    /// Waits until the manager holds a valid token (`Ok`), or its first burst of attempts failed (`Err` with the
    /// last error). The same as [`TokenManager::token`] without the token.
    ///
    /// # Errors
    /// As [`TokenManager::token`].
    pub async fn ready(&self) -> Result<(), Arc<Error>> {
        self.token().await.map(drop)
    }

    /// Fetches a new token now, even if the current one is valid (for example after Redis refused it), and
    /// returns the outcome of that request.
    ///
    /// Coalesced: a request already in flight is joined, and concurrent calls share one request. While the manager
    /// is backing off after a failure, the call waits for the next scheduled attempt rather than bypassing the
    /// backoff (or a server's `Retry-After`).
    ///
    /// # Errors
    /// That request's error, or [`Error::CredentialUnavailable`] after shutdown.
    pub async fn refresh_now(&self) -> Result<Arc<Token>, Arc<Error>> {
        let state = &self.shared().state;
        let mut rx = state.subscribe();
        let mut target = 0;
        let mut closed = false;
        state.send_if_modified(|s| {
            closed = s.closed;
            target = s.attempts + 1;
            if s.closed || s.fetching || s.force {
                return false;
            }
            s.force = true;
            true
        });
        if closed {
            return Err(shut_down_error());
        }
        let Ok(s) = rx.wait_for(|s| s.closed || s.attempts >= target).await else {
            return Err(shut_down_error());
        };
        if s.closed {
            return Err(shut_down_error());
        }
        match (&s.failure, &s.token) {
            (Some(failure), _) => Err(Arc::clone(&failure.error)),
            (None, Some(token)) => Ok(Arc::clone(token)),
            (None, None) => Err(shut_down_error()),
        }
    }

    /// A new subscription to every token and error from now on. See [`Subscription`] for the queue policy.
    pub fn subscribe(&self) -> Subscription {
        let shared = self.shared();
        shared
            .registry
            .subscribe(shared.options.subscription_capacity)
    }

    /// A snapshot of the manager's state.
    pub fn status(&self) -> ManagerStatus {
        let shared = self.shared();
        let subscribers = shared.registry.len();
        let s = shared.state.borrow();
        ManagerStatus {
            token_expires_at: s.token.as_ref().and(s.expires_at),
            token_expires_on: s.token.as_ref().map(|t| t.expires_on()),
            next_refresh_at: s.next_attempt_at,
            fetching: s.fetching,
            consecutive_failures: s.failure.as_ref().map_or(0, |f| f.consecutive),
            last_error: s.failure.as_ref().map(|f| Arc::clone(&f.error)),
            refreshes: s.refreshes,
            attempts: s.attempts,
            subscribers,
            running: !s.closed,
        }
    }

    /// The identity provider's name, as it reports it.
    pub fn provider_name(&self) -> &str {
        &self.shared().provider_name
    }

    /// Stops the manager now, for every handle: the background task stops (cancelling a request in flight), no
    /// token is served, calls return an error and subscriptions end. Dropping the last handle does the same.
    pub fn shutdown(&self) {
        self.shared().close();
    }
}

/// What a waiting caller gets, once there is something to give: a valid token, the shutdown error, or a failure
/// that ended a burst. `None`: keep waiting.
fn settled(s: &State, now: Instant) -> Option<Result<Arc<Token>, Arc<Error>>> {
    if let Some(token) = s.valid_token(now) {
        return Some(Ok(Arc::clone(token)));
    }
    if s.closed {
        return Some(Err(shut_down_error()));
    }
    match &s.failure {
        Some(f) if f.settled => Some(Err(Arc::clone(&f.error))),
        _ => None,
    }
}

impl fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenManager")
            .field("provider", &self.provider_name())
            .field("status", &self.status())
            .finish()
    }
}

/// A snapshot of a [`TokenManager`]'s state, from [`TokenManager::status`]. Holds no secret.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ManagerStatus {
    /// When the current token expires, on tokio's clock; `None` without a valid token.
    pub token_expires_at: Option<Instant>,
    /// When the current token expires, as the token says (wall clock); `None` without a valid token.
    pub token_expires_on: Option<SystemTime>,
    /// When the manager next asks the identity provider (a scheduled refresh or a retry), on tokio's clock;
    /// `None` while a request is in flight and after shutdown.
    pub next_refresh_at: Option<Instant>,
    /// Whether an identity-provider request is in flight.
    pub fetching: bool,
    /// Failed attempts since the last success.
    pub consecutive_failures: u32,
    /// The last error, until an attempt succeeds.
    pub last_error: Option<Arc<Error>>,
    /// Tokens received since start.
    pub refreshes: u64,
    /// Identity-provider requests completed since start (successful or not).
    pub attempts: u64,
    /// Live subscriptions.
    pub subscribers: usize,
    /// Whether the manager is running (not shut down).
    pub running: bool,
}
