//! [`TokenManager`]: the cloneable handle (what callers ask of the manager) and [`ManagerStatus`].
//!
//! The state the handle shares with the refresh loop is in `state.rs`; the loop itself in `refresh_loop.rs`.
//! The hot path, [`TokenManager::current`], reads a per-thread shard of the token (see `hot.rs`): readers never
//! wait for each other or for a refresh.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::SystemTime;

use entraid_core::{Error, IdentityProvider, SharedIdentityProvider, Token};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::hot::HotCache;
use crate::options::TokenManagerOptions;
use crate::state::{Shared, State, shut_down_error};
use crate::subscription::{Registry, Subscription};
use crate::watch::TokenWatch;

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
            wall_expired_reported: AtomicBool::new(false),
        });
        runtime.spawn(crate::refresh_loop::run(Arc::clone(&shared), provider));
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
    /// blocks it. The background task drops the token when it expires on tokio's clock.
    ///
    /// **Wall clock.** After a suspend or a VM freeze tokio's clock lags the wall clock, so a token can have
    /// expired by its `expires_on` while tokio's clock says otherwise. The first read on each thread and one read
    /// in 16 after it compare `expires_on` with the wall clock ([`TokenManagerOptions::wall_clock`]); a read that
    /// finds the token expired returns `None`, empties the cache for every thread at once and makes the
    /// background task compare the clocks and refresh; the task also compares them every
    /// [`clock_check_interval`](TokenManagerOptions::clock_check_interval). Not every read checks because one
    /// system-clock read costs more than the rest of this call on some virtual machines (`docs/BENCHMARKS.md`).
    /// [`TokenManager::token`] and [`TokenWatch`] check the wall clock on every call.
    ///
    /// Threads may get different `Arc`s (copies) of the same token: compare tokens by value, not by pointer.
    #[inline]
    pub fn current(&self) -> Option<Arc<Token>> {
        let shared = self.shared();
        let (token, check) = shared.hot.get();
        let token = token?;
        if !check || token.expires_on() > shared.options.wall_clock.now() {
            return Some(token);
        }
        shared.report_wall_expired();
        None
    }

    /// A stream of the manager's tokens that cannot miss the latest one: a [`TokenWatch`].
    ///
    /// It holds the newest token with its generation number (1 for the first token, +1 for each genuinely new
    /// one; a repeated token is not a new generation) and its expiry on tokio's clock. Reading it and waiting for
    /// the next one use the same value, so a token published between "read the current token" and "wait for the
    /// next" is never missed. It does not keep the manager alive.
    pub fn watch(&self) -> TokenWatch {
        let shared = self.shared();
        TokenWatch::new(shared.state.subscribe(), shared.options.wall_clock.clone())
    }

    /// A valid token: the current one, or, when none is valid, the next one.
    ///
    /// Without a valid token, this asks the background task to fetch now (unless it is backing off after a
    /// failure) and waits; any number of concurrent callers share one identity-provider request. While the
    /// manager's retries are failing (its burst of `max_attempts` is used up, or the error is not retryable), this
    /// returns the last error at once instead of waiting, until a token arrives. After a failed request of an
    /// interactive provider the error stands until [`TokenManager::refresh_now`]. A token that has expired on the
    /// wall clock is never returned (see the crate's *Time* section).
    ///
    /// # Errors
    /// The identity provider's (or parser's) last error, or [`Error::CredentialUnavailable`] after shutdown.
    pub async fn token(&self) -> Result<Arc<Token>, Arc<Error>> {
        let shared = self.shared();
        let clock = &shared.options.wall_clock;
        let state = &shared.state;
        let mut rx = state.subscribe();
        if let Some(outcome) = settled(&rx.borrow_and_update(), Instant::now(), clock.now()) {
            return outcome;
        }
        state.send_if_modified(|s| {
            let now = Instant::now();
            if s.closed || s.fetching || s.need || s.servable(now, clock.now()).is_some() {
                return false;
            }
            // Valid on tokio's clock but not on the wall clock: the clocks disagree; the task compares them.
            if s.valid_token(now).is_some() {
                s.clock_suspect = true;
            }
            s.need = true;
            true
        });
        loop {
            let Ok(s) = rx
                .wait_for(|s| settled(s, Instant::now(), clock.now()).is_some())
                .await
            else {
                return Err(shut_down_error());
            };
            if let Some(outcome) = settled(&s, Instant::now(), clock.now()) {
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
    /// backoff (or a server's `Retry-After`). After an interactive provider's failed sign-in, this is what asks
    /// the user again. When the provider answers with the token already held, that token is returned.
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
            identical_tokens: s.identical,
            generation: s.generation,
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

/// What a waiting caller gets, once there is something to give: a valid token (on both clocks), the shutdown
/// error, or a failure that ended a burst. `None`: keep waiting.
fn settled(s: &State, now: Instant, wall: SystemTime) -> Option<Result<Arc<Token>, Arc<Error>>> {
    if let Some(token) = s.servable(now, wall) {
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
    /// New tokens received since start (answers repeating the token held are not counted).
    pub refreshes: u64,
    /// Answers that repeated the token already held (same access token or same expiry): not published, not a
    /// rotation.
    pub identical_tokens: u64,
    /// The generation of the newest token (see [`TokenManager::watch`]); 0 before the first.
    pub generation: u64,
    /// Identity-provider requests completed since start (successful or not).
    pub attempts: u64,
    /// Live subscriptions.
    pub subscribers: usize,
    /// Whether the manager is running (not shut down).
    pub running: bool,
}
