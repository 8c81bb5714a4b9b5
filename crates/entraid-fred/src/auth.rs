//! [`EntraIdAuth`]: pushes every new token to every live connection of every attached client.
//!
//! Each attached client gets its own worker task that follows the manager's one stream of token generations (its
//! own [`TokenWatch`]), so a slow or failing client never delays the others, and a client that is still retrying
//! when a newer token arrives moves on to the newer one. A worker re-authenticates with the username (`oid`) of the
//! token it applies. A failed `AUTH` is retried with backoff; if it still fails when the token the client's
//! connections hold is about to expire (the held generation's expiry on tokio's clock, as the stream carries it),
//! the client is reconnected with the current token rather than left for the server to close. Every failure is
//! reported to [`EntraIdAuth::subscribe_errors`].

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{Notify, broadcast};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use entraid_core::{Error, IdentityProvider, Token};
use entraid_manager::{TokenGeneration, TokenManager, TokenManagerOptions, TokenWatch};
use fred::interfaces::ClientLike;

use crate::credentials::EntraCredentialProvider;
use crate::options::ReauthOptions;
use crate::stats::{Counters, ReauthStats};
use crate::target::{Attachable, Target};

/// A re-authentication failure, as delivered to [`EntraIdAuth::subscribe_errors`] (the Go library's
/// `OnReAuthenticationError`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReauthError {
    /// Which attached client failed (`client <id>`, `subscriber <id>`, `pool of <n>`).
    pub target: String,
    /// The attempt that failed, from 1.
    pub attempt: u32,
    /// What fred reported (never contains the token).
    pub message: String,
    /// Whether the client was then reconnected with the current token.
    pub reconnected: bool,
}

impl fmt::Display for ReauthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "re-authentication of {} failed (attempt {}): {}",
            self.target, self.attempt, self.message
        )?;
        if self.reconnected {
            f.write_str("; reconnected with the current token")?;
        }
        Ok(())
    }
}

impl std::error::Error for ReauthError {}

/// Keeps attached fred clients authenticated with Entra ID tokens from a [`TokenManager`].
///
/// Cheap to clone; the background tasks stop when the last clone is dropped.
#[derive(Clone)]
pub struct EntraIdAuth {
    handle: Arc<Handle>,
}

/// The user's handles share one `Handle`; dropping the last one stops every task.
struct Handle {
    inner: Arc<Inner>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let inner = &self.inner;
        inner.closed.store(true, Ordering::SeqCst);
        if let Some(task) = inner.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
        for (_, attached) in inner.lock_targets().drain() {
            attached.worker.abort();
        }
        inner.applied.notify_waiters();
    }
}

impl fmt::Debug for EntraIdAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntraIdAuth")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

struct Inner {
    manager: TokenManager,
    options: ReauthOptions,
    targets: Mutex<HashMap<u64, Attached>>,
    next_id: AtomicU64,
    counters: Arc<Counters>,
    errors: broadcast::Sender<ReauthError>,
    /// The manager's stream, read only for its newest value (never awaited): what [`EntraIdAuth::pushed_token`]
    /// shows and what `measure` compares with.
    tokens: TokenWatch,
    /// Woken whenever a worker finishes applying a token.
    applied: Notify,
    task: Mutex<Option<AbortHandle>>,
    /// Set when the last handle is dropped.
    closed: std::sync::atomic::AtomicBool,
}

struct Attached {
    /// The newest generation this target has applied (or been given up on for a newer one).
    applied: Arc<AtomicU64>,
    worker: AbortHandle,
}

impl Inner {
    fn lock_targets(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Attached>> {
        self.targets.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn report(&self, error: ReauthError) {
        tracing::warn!(target_client = %error.target, attempt = error.attempt, error = %error.message,
            reconnected = error.reconnected, "re-authentication failed");
        let _ = self.errors.send(error);
    }
}

/// Keeps a client attached for push re-authentication; dropping it detaches the client.
#[must_use = "dropping the Attachment detaches the client at once"]
pub struct Attachment {
    id: u64,
    inner: Weak<Inner>,
}

impl fmt::Debug for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attachment").field("id", &self.id).finish()
    }
}

impl Attachment {
    /// Keeps the client attached for as long as the [`EntraIdAuth`] lives.
    pub fn forever(self) {
        std::mem::forget(self);
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            if let Some(attached) = inner.lock_targets().remove(&self.id) {
                attached.worker.abort();
            }
            inner.applied.notify_waiters();
        }
    }
}

impl EntraIdAuth {
    /// Starts pushing tokens from `manager` to attached clients, with default [`ReauthOptions`].
    ///
    /// Must be called inside a tokio runtime.
    pub fn new(manager: TokenManager) -> Self {
        Self::start(manager, ReauthOptions::default())
    }

    /// Starts pushing tokens from `manager` to attached clients. Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// [`Error::Configuration`] when `options` do not [validate](ReauthOptions::validate).
    pub fn with_options(manager: TokenManager, options: ReauthOptions) -> Result<Self, Error> {
        options.validate()?;
        Ok(Self::start(manager, options))
    }

    fn start(manager: TokenManager, options: ReauthOptions) -> Self {
        let (errors, _) = broadcast::channel(64);
        let tokens = manager.watch();
        let inner = Arc::new(Inner {
            tokens,
            manager,
            options,
            targets: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            counters: Arc::default(),
            errors,
            applied: Notify::new(),
            task: Mutex::new(None),
            closed: std::sync::atomic::AtomicBool::new(false),
        });
        // The manager's own stream of generations: a token published at any time, even before this task runs,
        // is never missed (its first `changed` returns the token held now).
        let tokens = inner.manager.watch();
        let handle = tokio::spawn(publish(Arc::downgrade(&inner), tokens));
        *inner.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle.abort_handle());
        Self {
            handle: Arc::new(Handle { inner }),
        }
    }

    /// Any identity provider (your own, or one from `entraid_identity` configured your way) with these token
    /// manager options. Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// Invalid options, or no tokio runtime.
    pub fn from_provider(
        provider: impl IdentityProvider + 'static,
        options: TokenManagerOptions,
    ) -> Result<Self, Error> {
        Ok(Self::new(TokenManager::start(provider, options)?))
    }

    fn inner(&self) -> &Arc<Inner> {
        &self.handle.inner
    }

    /// The credential provider to put in fred's `Config::credential_provider`: every new connection and
    /// reconnect AUTHs as (`oid`, token) with the current token.
    pub fn credential_provider(&self) -> Arc<EntraCredentialProvider> {
        Arc::new(EntraCredentialProvider::new(self.inner().manager.clone()))
    }

    /// Sets `config.credential_provider` (and clears any static username and password).
    pub fn configure(&self, config: &mut fred::types::config::Config) {
        config.username = None;
        config.password = None;
        config.credential_provider = Some(self.credential_provider());
    }

    /// A fred [`Builder`](fred::types::Builder) for `config`, authenticated by this (see
    /// [`configure`](Self::configure)) and, unless you set one later, with a reconnect policy (exponential,
    /// 100 ms to 10 s, unlimited attempts) so that clients can be reconnected when re-authentication cannot help.
    pub fn fred_builder(&self, mut config: fred::types::config::Config) -> fred::types::Builder {
        self.configure(&mut config);
        let mut builder = fred::types::Builder::from_config(config);
        builder.set_policy(fred::types::config::ReconnectPolicy::new_exponential(
            0, 100, 10_000, 2,
        ));
        builder
    }

    /// Attaches a client, subscriber or pool: each new token is pushed to all its live connections.
    ///
    /// The client should have a reconnect policy (`Builder::set_policy`): RESP2 subscribers, and clients whose
    /// re-authentication keeps failing, are reconnected, which fred does only under a policy.
    pub fn attach(&self, client: impl Into<Attachable>) -> Attachment {
        let attachable = client.into();
        if !attachable.has_reconnect_policy() {
            tracing::warn!(client = ?attachable, "attached client has no reconnect policy; it cannot be reconnected");
        }
        let id = self.inner().next_id.fetch_add(1, Ordering::Relaxed);
        let target = Target::new(attachable);
        // The client may have connected with an older token than the newest one (it connected before a rotation,
        // and is attached after it): its worker follows a fresh watch of the manager's stream, whose first
        // `changed` returns the newest generation at once, then every newer one. Until then its connections are
        // taken to hold that newest generation (the deadline is its expiry on tokio's clock).
        let tokens = self.inner().manager.watch();
        let held = tokens.borrow();
        let applied = Arc::new(AtomicU64::new(0));
        let weak = Arc::downgrade(self.inner());
        let worker = {
            let (target, applied) = (target.clone(), applied.clone());
            let mut first = Some((tokens, held));
            let reporter = weak.clone();
            let describe = target.describe();
            let manager = self.inner().manager.clone();
            tokio::spawn(supervise(
                move || {
                    // After a panic: a fresh watch that returns the newest generation at once, and no held token.
                    let (tokens, held) = first.take().unwrap_or_else(|| (manager.watch(), None));
                    work(weak.clone(), target.clone(), applied.clone(), tokens, held)
                },
                move |panic| {
                    if let Some(inner) = reporter.upgrade() {
                        inner.report(ReauthError {
                            target: describe.clone(),
                            attempt: 0,
                            message: format!(
                                "the re-authentication worker panicked ({panic}); restarted"
                            ),
                            reconnected: false,
                        });
                    }
                },
            ))
        };
        self.inner().lock_targets().insert(
            id,
            Attached {
                applied,
                worker: worker.abort_handle(),
            },
        );
        Attachment {
            id,
            inner: Arc::downgrade(self.inner()),
        }
    }

    /// The newest token handed to the attached clients: the newest valid generation of the manager's stream, which
    /// every worker follows (being pushed, or pushed already; see [`ReauthStats::fanouts_completed`]).
    pub fn pushed_token(&self) -> Option<Arc<Token>> {
        self.inner().tokens.borrow().map(|g| g.token)
    }

    /// Re-authentication failures, as they happen (a lagging receiver misses the oldest).
    pub fn subscribe_errors(&self) -> broadcast::Receiver<ReauthError> {
        self.inner().errors.subscribe()
    }

    /// The counters.
    pub fn stats(&self) -> ReauthStats {
        let attached = self.inner().lock_targets().len() as u64;
        self.inner().counters.snapshot(attached)
    }

    /// The token manager behind this.
    pub fn manager(&self) -> &TokenManager {
        &self.inner().manager
    }
}

/// Counts each new token generation of the manager and measures how long until every worker (each following the
/// same stream) has applied it.
async fn publish(inner: Weak<Inner>, mut tokens: TokenWatch) {
    while let Some(next) = tokens.changed().await {
        let Some(inner) = inner.upgrade() else { return };
        Counters::add(&inner.counters.rotations);
        let started = Instant::now();
        tokio::spawn(measure(Arc::downgrade(&inner), next.generation, started));
    }
}

/// Waits until every attached target has applied `generation` (or a newer one), then records the latency.
async fn measure(inner: Weak<Inner>, generation: u64, started: Instant) {
    // Holding `Inner` here is fine: dropping the last handle sets `closed` and wakes this task.
    let Some(strong) = inner.upgrade() else {
        return;
    };
    loop {
        let notified = strong.applied.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if strong.closed.load(Ordering::SeqCst) {
            return;
        }
        let done = strong
            .lock_targets()
            .values()
            .all(|a| a.applied.load(Ordering::SeqCst) >= generation);
        if done {
            let latency = started.elapsed();
            let superseded = strong.tokens.generation() > generation;
            if !superseded {
                *strong
                    .counters
                    .last_fanout_latency
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(latency);
            }
            Counters::add(&strong.counters.fanouts_completed);
            tracing::debug!(
                generation,
                ?latency,
                "every attached client has the new token"
            );
            return;
        }
        notified.await;
    }
}

/// One attached target's worker: applies the newest generation of the manager's stream each time one is
/// published, and again each time a connection of the target comes up. `held` is the generation the target's
/// connections are taken to hold (its expiry is the reconnect deadline).
async fn work(
    inner: Weak<Inner>,
    target: Arc<Target>,
    applied: Arc<AtomicU64>,
    mut tokens: TokenWatch,
    mut held: Option<TokenGeneration>,
) {
    // A connection that comes up while a token is being pushed (or that fred reconnected with a token fetched just
    // before a newer one was published) may hold an older token than the newest: every reconnect of the target's
    // clients re-applies the newest token.
    let reconnected = Arc::new(Notify::new());
    let _forwarders: Vec<AbortOnDrop> = target
        .reconnect_events()
        .into_iter()
        .map(|mut events| {
            let reconnected = reconnected.clone();
            AbortOnDrop(tokio::spawn(async move {
                loop {
                    match events.recv().await {
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                            reconnected.notify_one()
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                }
            }))
        })
        .collect();
    loop {
        let next = tokio::select! {
            changed = tokens.changed() => match changed {
                Some(next) => next,
                None => return,
            },
            () = reconnected.notified() => {
                tracing::debug!(target_client = %target.describe(), "a connection came up: re-applying the newest token");
                // The stream's newest generation, as the manager holds it now.
                let Some(next) = tokens.borrow_and_update() else { continue };
                next
            }
        };
        let Some(inner) = inner.upgrade() else { return };
        let (now_held, generation) = apply(&inner, &target, next, &mut tokens, held.as_ref()).await;
        held = Some(now_held);
        // The generation the target's connections now hold, not the newest published: one published while this
        // one was being applied is still to be applied (`tokens` has not returned it yet), and until it is, the
        // target is not up to date.
        applied.store(generation, Ordering::SeqCst);
        inner.applied.notify_waiters();
    }
}

/// Applies `published` (or a newer generation, should the stream return one meanwhile) to `target`, retrying until
/// it works, or reconnecting when the generation its connections hold is about to expire. Returns the generation
/// the target now holds and its number (after a reconnect, whose connections authenticate with the manager's token
/// of that moment, the generation being applied: never newer than the target holds, and the one whose expiry the
/// next deadline is computed from).
async fn apply(
    inner: &Arc<Inner>,
    target: &Arc<Target>,
    mut published: TokenGeneration,
    tokens: &mut TokenWatch,
    held: Option<&TokenGeneration>,
) -> (TokenGeneration, u64) {
    let options = &inner.options;
    // The connections hold `held` until re-authenticated: its expiry (on tokio's clock) is the deadline.
    let deadline = held.map(|held| deadline_for(held, options));
    let mut delay = options.retry_initial_delay;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let token = published.token.clone();
        let attempt_future = target.reauth(
            token.username(),
            token.access_token().expose_secret(),
            deadline,
            options,
            &inner.counters,
        );
        // A guard over the whole attempt (control client, unblock, AUTH, cluster sync, and where a blocking command
        // cannot be interrupted, the wait for it until the deadline and a reconnect): a worker never hangs.
        let guard = options.auth_timeout.saturating_mul(ATTEMPT_TIMEOUT_FACTOR);
        let guard_until = Instant::now() + guard;
        let guard_until = deadline.map_or(guard_until, |d| guard_until.max(d + guard));
        let result = tokio::time::timeout_at(guard_until, attempt_future)
            .await
            .unwrap_or_else(|_| Err(timeout_error("re-authentication attempt", guard)));
        match result {
            Ok(outcome) => {
                inner
                    .counters
                    .reauths_sent
                    .fetch_add(outcome.reauthed, Ordering::Relaxed);
                inner
                    .counters
                    .reconnects
                    .fetch_add(outcome.reconnected, Ordering::Relaxed);
                let generation = published.generation;
                return (published, generation);
            }
            Err(error) => {
                Counters::add(&inner.counters.reauths_failed);
                let mut report = ReauthError {
                    target: target.describe(),
                    attempt,
                    message: error.to_string(),
                    reconnected: false,
                };
                if deadline.is_none_or(|d| Instant::now() + delay >= d) {
                    let limit = options
                        .auth_timeout
                        .saturating_mul(crate::target::RECONNECT_TIMEOUT_FACTOR);
                    let reconnect = tokio::time::timeout(limit, target.reconnect(options))
                        .await
                        .unwrap_or_else(|_| Err(timeout_error("reconnect", limit)));
                    match reconnect {
                        Ok(()) => {
                            Counters::add(&inner.counters.reconnects);
                            report.reconnected = true;
                            inner.report(report);
                            // The new connections authenticated with the manager's token of the moment: the
                            // generation being applied or a newer one. A newer one is still ahead in `tokens`.
                            let generation = published.generation;
                            return (published, generation);
                        }
                        Err(e) => {
                            report.message =
                                format!("{}; reconnect failed too: {e}", report.message)
                        }
                    }
                }
                inner.report(report);
                // Wait before the next attempt, but move on at once to a newer token.
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    changed = tokens.changed() => match changed {
                        Some(newer) => published = newer,
                        None => return (published, 0),
                    },
                }
                delay = (delay * 2).min(options.retry_max_delay);
            }
        }
    }
}

/// Aborts the task when dropped (so a worker's helper tasks end with it).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs the task `make` builds; when it panics, calls `on_panic` with the panic message and runs a new one. Ends
/// when a task returns. Dropping (aborting) the supervisor aborts the running task.
async fn supervise<F, Fut>(mut make: F, on_panic: impl Fn(String))
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let mut task = AbortOnDrop(tokio::spawn(make()));
        let outcome = (&mut task).await;
        match outcome {
            Ok(()) => return,
            Err(e) if e.is_panic() => {
                let panic = e.into_panic();
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".to_owned());
                on_panic(message);
            }
            Err(_) => return,
        }
    }
}

impl Future for AbortOnDrop {
    type Output = Result<(), tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

/// How many `auth_timeout`s one re-authentication attempt of one target may take (control client, unblock,
/// `AUTH`, cluster sync), beyond any wait for a blocking command until the deadline.
const ATTEMPT_TIMEOUT_FACTOR: u32 = 3;

fn timeout_error(what: &str, after: std::time::Duration) -> fred::error::Error {
    fred::error::Error::new(
        fred::error::ErrorKind::Timeout,
        format!("{what} timed out after {after:?}"),
    )
}

/// When connections holding `held` must be reconnected at the latest: its expiry on tokio's clock, as the stream
/// carries it, less the margin. No wall-clock read: the manager already turned the token's expiry into tokio's
/// clock (and corrects it after a suspend).
fn deadline_for(held: &TokenGeneration, options: &ReauthOptions) -> Instant {
    let margin = options.reconnect_margin.min(held.token.lifetime() / 5);
    held.expires_at
        .checked_sub(margin)
        .unwrap_or(held.expires_at)
}

impl Attachable {
    /// Whether fred will reconnect this client (it has a reconnect policy).
    fn has_reconnect_policy(&self) -> bool {
        match self {
            Self::Client(c) => c.client_reconnect_policy().is_some(),
            Self::Subscriber(c) => c.client_reconnect_policy().is_some(),
            Self::Pool(p) => p
                .clients()
                .iter()
                .all(|c| c.client_reconnect_policy().is_some()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;
    use std::time::{Duration, SystemTime};

    use entraid_core::{BoxFuture, IdentityProviderResponse};
    use entraid_manager::WallClock;

    const HOUR: Duration = Duration::from_secs(3600);

    /// Mints one gateway-style token (`oid` = `deadline`, a 1 h lifetime on the system clock), then fails.
    #[derive(Debug)]
    struct OneToken(AtomicU32);

    impl IdentityProvider for OneToken {
        fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
            Box::pin(async move {
                if self.0.fetch_add(1, Ordering::SeqCst) > 0 {
                    return Err(Error::transport("OneToken", "no second token", None));
                }
                let jwt = entraid_testkit::redis::token("deadline", HOUR);
                Ok(IdentityProviderResponse::raw_token(jwt))
            })
        }

        fn name(&self) -> &str {
            "OneToken"
        }
    }

    /// A manager whose wall clock is `wall` (shared, so a test can move it), on tokio's paused clock.
    async fn manager_with_wall(wall: Arc<Mutex<SystemTime>>) -> TokenManager {
        let options = TokenManagerOptions {
            wall_clock: WallClock::custom(move || *wall.lock().unwrap_or_else(|e| e.into_inner())),
            ..TokenManagerOptions::default()
        };
        let manager = TokenManager::start(OneToken(AtomicU32::new(0)), options).unwrap();
        manager.ready().await.unwrap();
        manager
    }

    #[tokio::test(start_paused = true)]
    async fn the_reconnect_deadline_follows_tokios_clock_not_the_wall_clock() {
        // The wall clock stands still while tokio's clock runs on: by the wall clock (the manager's, and the
        // system's, which paused time does not move) the token has an hour left; on tokio's clock, 40 minutes.
        let wall = Arc::new(Mutex::new(SystemTime::now()));
        let manager = manager_with_wall(wall).await;
        let held = manager.watch().borrow().unwrap();
        tokio::time::advance(20 * 60 * Duration::from_secs(1)).await;
        assert!(
            held.token.remaining(SystemTime::now()) > 59 * 60 * Duration::from_secs(1),
            "the wall clock disagrees with tokio's"
        );
        let options = ReauthOptions::default();
        let deadline = deadline_for(&held, &options);
        assert_eq!(deadline, held.expires_at - options.reconnect_margin);
        let left = deadline - Instant::now();
        assert!(
            left <= 40 * 60 * Duration::from_secs(1) - options.reconnect_margin,
            "deadline {left:?} from now: read from the wall clock, not from the stream"
        );
        manager.shutdown();
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_suspend_the_reconnect_deadline_is_the_managers_corrected_expiry() {
        // The manager's wall clock jumps 50 minutes ahead of tokio's (a suspended laptop): the manager cuts the
        // held token's expiry on tokio's clock to the 10 minutes the wall clock leaves it (its refresh fails, so
        // the token stays held). The system clock did not jump: a deadline computed from it would be an hour out.
        let wall = Arc::new(Mutex::new(SystemTime::now()));
        let manager = manager_with_wall(wall.clone()).await;
        let mut tokens = manager.watch();
        let before = tokens.borrow_and_update().unwrap();
        *wall.lock().unwrap_or_else(|e| e.into_inner()) += 50 * 60 * Duration::from_secs(1);
        // The manager compares the clocks every 10 s.
        tokio::time::advance(Duration::from_secs(11)).await;
        let held = loop {
            let held = tokens.borrow().unwrap();
            if held.expires_at < before.expires_at {
                break held;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(held.generation, before.generation, "the same token");
        let left = deadline_for(&held, &ReauthOptions::default()) - Instant::now();
        assert!(
            left <= 10 * 60 * Duration::from_secs(1),
            "deadline {left:?} from now, though the token has at most 10 minutes left"
        );
        manager.shutdown();
    }

    #[tokio::test]
    async fn a_panicking_worker_is_reported_and_restarted() {
        let runs = Arc::new(AtomicU32::new(0));
        let panics = Arc::new(Mutex::new(Vec::new()));
        let (r, p) = (runs.clone(), panics.clone());
        supervise(
            move || {
                let run = r.fetch_add(1, Ordering::SeqCst);
                async move {
                    assert!(run >= 2, "worker failure {run}");
                }
            },
            move |message| p.lock().unwrap_or_else(|e| e.into_inner()).push(message),
        )
        .await;
        assert_eq!(runs.load(Ordering::SeqCst), 3, "restarted after each panic");
        let panics = panics.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(panics.len(), 2);
        assert!(panics[0].contains("worker failure 0"), "{panics:?}");
    }

    #[tokio::test]
    async fn aborting_the_supervisor_aborts_the_worker() {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        let supervisor = tokio::spawn(supervise(
            move || {
                let tx = tx.clone();
                async move {
                    // Holds the sender until aborted.
                    let _tx = tx;
                    std::future::pending::<()>().await;
                }
            },
            |_| {},
        ));
        tokio::task::yield_now().await;
        supervisor.abort();
        // The worker's sender is dropped only if the worker was aborted too.
        assert!(rx.recv().await.is_none());
    }
}
