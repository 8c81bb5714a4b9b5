//! [`EntraIdAuth`]: pushes every new token to every live connection of every attached client.
//!
//! Each attached client gets its own worker task that follows the newest token (a `watch` channel), so a slow or
//! failing client never delays the others, and a client that is still retrying when a newer token arrives moves on
//! to the newer one. A worker re-authenticates with the username (`oid`) of the token it applies. A failed `AUTH` is
//! retried with backoff; if it still fails when the token the client's connections hold is about to expire, the
//! client is reconnected with the current token rather than left for the server to close. Every failure is
//! reported to [`EntraIdAuth::subscribe_errors`].

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{Notify, broadcast, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::field::Empty;
use tracing::{Instrument, Span};

use entraid_core::{Error, IdentityProvider, Token};
use entraid_manager::{
    Subscription, TokenEvent, TokenGeneration, TokenManager, TokenManagerOptions, TokenWatch,
};
use fred::interfaces::ClientLike;

use crate::control::ControlClients;
use crate::credentials::EntraCredentialProvider;
use crate::error::{ReauthError, ReauthErrorKind, token_error};
use crate::options::ReauthOptions;
use crate::stats::{Counters, ReauthStats};
use crate::supervisor::{AbortOnDrop, supervise};
use crate::target::{Attachable, Target};
use crate::telemetry;

/// A token as published to the workers: the manager's generation (number, token, expiry on tokio's clock) as its
/// `TokenWatch` returned it, with the span of its fan-out.
#[derive(Clone)]
struct Published {
    generation: u64,
    token: Arc<Token>,
    expires_at: Instant,
    span: Span,
}

/// The token a target's connections are taken to hold, with its expiry on tokio's clock (from the manager's stream):
/// the reconnect deadline is computed from it.
#[derive(Clone)]
struct Held {
    token: Arc<Token>,
    expires_at: Instant,
}

impl From<&Published> for Held {
    fn from(p: &Published) -> Self {
        Self {
            token: p.token.clone(),
            expires_at: p.expires_at,
        }
    }
}

impl From<TokenGeneration> for Held {
    fn from(g: TokenGeneration) -> Self {
        Self {
            token: g.token,
            expires_at: g.expires_at,
        }
    }
}

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
            telemetry::attached(false);
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
    /// Bumped after each attach has inserted its target: a fan-out's measuring task looks at every target again
    /// when it changed.
    attach_epoch: AtomicU64,
    counters: Arc<Counters>,
    /// The control clients that interrupt blocking commands, one per deployment.
    controls: ControlClients,
    errors: broadcast::Sender<ReauthError>,
    latest: watch::Sender<Option<Published>>,
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
                // A fan-out under way no longer waits for it.
                attached.applied.store(u64::MAX, Ordering::SeqCst);
                telemetry::attached(false);
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
        let inner = Arc::new(Inner {
            manager,
            options,
            targets: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            attach_epoch: AtomicU64::new(0),
            counters: Arc::default(),
            controls: ControlClients::default(),
            errors,
            latest: watch::Sender::new(None),
            applied: Notify::new(),
            task: Mutex::new(None),
            closed: std::sync::atomic::AtomicBool::new(false),
        });
        // The manager's own stream of generations: a token published at any time, even before this task runs,
        // is never missed (its first `changed` returns the token held now).
        let tokens = inner.manager.watch();
        // The manager's failures too: each is reported to `subscribe_errors` with its typed error.
        let events = inner.manager.subscribe();
        let handle = tokio::spawn(publish(Arc::downgrade(&inner), tokens, events));
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
        let target = Target::new(attachable, &self.inner().controls);
        // The client may have connected with an older token than the newest one (it connected before a rotation,
        // and is attached after it): its worker applies the newest token at once, then every newer one.
        let mut latest = self.inner().latest.subscribe();
        latest.mark_changed();
        let applied = Arc::new(AtomicU64::new(0));
        // Until then its connections are taken to hold the newest generation of the manager's stream (not
        // `current()`): the deadline is that generation's expiry on tokio's clock.
        let held = self.inner().manager.watch().borrow().map(Held::from);
        let weak = Arc::downgrade(self.inner());
        let worker = {
            let (target, applied) = (target.clone(), applied.clone());
            let mut first = Some((latest, held));
            let reporter = weak.clone();
            let describe = target.describe();
            tokio::spawn(supervise(
                move || {
                    // After a panic: a fresh receiver that sees the newest token at once, and no held token.
                    let (latest, held) = first.take().unwrap_or_else(|| {
                        let latest = weak.upgrade().map(|inner| {
                            let mut latest = inner.latest.subscribe();
                            latest.mark_changed();
                            latest
                        });
                        (latest.unwrap_or_else(|| watch::channel(None).1), None)
                    });
                    work(weak.clone(), target.clone(), applied.clone(), latest, held)
                },
                move |panic| {
                    if let Some(inner) = reporter.upgrade() {
                        inner.report(ReauthError {
                            kind: ReauthErrorKind::WorkerPanic,
                            target: describe.clone(),
                            attempt: 0,
                            message: format!(
                                "the re-authentication worker panicked ({panic}); restarted"
                            ),
                            reconnected: false,
                            token_error: None,
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
        self.inner().attach_epoch.fetch_add(1, Ordering::SeqCst);
        telemetry::attached(true);
        Attachment {
            id,
            inner: Arc::downgrade(self.inner()),
        }
    }

    /// The newest token handed to the attached clients (being pushed, or pushed already; see
    /// [`ReauthStats::fanouts_completed`]).
    pub fn pushed_token(&self) -> Option<Arc<Token>> {
        self.inner()
            .latest
            .borrow()
            .as_ref()
            .map(|p| p.token.clone())
    }

    /// Failures, as they happen (a lagging receiver misses the oldest): each failed re-authentication of an attached
    /// client, and each failed token refresh of the manager ([`ReauthErrorKind::Refresh`], with the manager's
    /// typed error in [`ReauthError::token_error`]: AADSTS codes through [`ReauthError::entra_error`]).
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

/// Publishes each new token generation of the manager to the workers and measures how long until all of them have
/// applied it; reports each of the manager's failures.
async fn publish(inner: Weak<Inner>, mut tokens: TokenWatch, mut events: Subscription) {
    loop {
        let next = tokio::select! {
            next = tokens.changed() => next,
            event = events.recv() => {
                match event {
                    Some(TokenEvent::Error(error)) => {
                        let Some(inner) = inner.upgrade() else { return };
                        refresh_failed(&inner, error);
                        continue;
                    }
                    Some(_) => continue,
                    None => return,
                }
            }
        };
        let Some(next) = next else { return };
        let Some(inner) = inner.upgrade() else { return };
        Counters::add(&inner.counters.rotations);
        let started = Instant::now();
        let generation = next.generation;
        let clients = inner.lock_targets().len();
        let span = tracing::info_span!("entraid.fanout", generation, clients, duration_ms = Empty);
        inner.latest.send_replace(Some(Published {
            generation,
            token: next.token,
            expires_at: next.expires_at,
            span: span.clone(),
        }));
        tokio::spawn(measure(Arc::downgrade(&inner), generation, started, span));
    }
}

/// The manager could not get a new token: a WARN and a [`ReauthError`] of kind
/// [`Refresh`](ReauthErrorKind::Refresh) carrying the manager's error. The attached clients keep the token they hold.
fn refresh_failed(inner: &Inner, error: Arc<Error>) {
    let attempt = inner.manager.status().consecutive_failures.max(1);
    tracing::warn!(provider = %inner.manager.provider_name(), attempt, retryable = error.is_retryable(),
        error = %error, "token refresh failed; attached clients keep the token they hold while the manager retries");
    let _ = inner.errors.send(ReauthError {
        kind: ReauthErrorKind::Refresh,
        target: "token manager".to_owned(),
        attempt,
        message: error.to_string(),
        reconnected: false,
        token_error: Some(error),
    });
}

/// Waits until every attached target has applied `generation` (or a newer one), then records the latency.
///
/// Woken each time a worker has applied a token, it re-checks only the targets still behind (an applied generation
/// never goes back; a detached target counts as done), so a fan-out to `n` targets costs it O(`n`) in all rather
/// than O(`n`) per wake-up; it looks at every target again only when one was attached meanwhile.
async fn measure(inner: Weak<Inner>, generation: u64, started: Instant, span: Span) {
    // Holding `Inner` here is fine: dropping the last handle sets `closed` and wakes this task.
    let Some(strong) = inner.upgrade() else {
        return;
    };
    let mut pending: Vec<Arc<AtomicU64>> = Vec::new();
    let mut seen_epoch = None;
    loop {
        let notified = strong.applied.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if strong.closed.load(Ordering::SeqCst) {
            return;
        }
        let epoch = strong.attach_epoch.load(Ordering::SeqCst);
        if seen_epoch != Some(epoch) {
            pending = strong
                .lock_targets()
                .values()
                .map(|a| a.applied.clone())
                .collect();
            seen_epoch = Some(epoch);
        }
        pending.retain(|applied| applied.load(Ordering::SeqCst) < generation);
        if pending.is_empty() {
            let latency = started.elapsed();
            let superseded = strong
                .latest
                .borrow()
                .as_ref()
                .is_some_and(|p| p.generation > generation);
            strong.counters.fanout_completed(latency, !superseded);
            span.record(
                "duration_ms",
                u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            );
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

/// One attached target's worker: applies the newest token each time one is published.
async fn work(
    inner: Weak<Inner>,
    target: Arc<Target>,
    applied: Arc<AtomicU64>,
    mut latest: watch::Receiver<Option<Published>>,
    mut held: Option<Held>,
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
        tokio::select! {
            changed = latest.changed() => if changed.is_err() { return },
            () = reconnected.notified() => {
                tracing::debug!(target_client = %target.describe(), "a connection came up: re-applying the newest token");
            }
        }
        let Some(published) = latest.borrow_and_update().clone() else {
            continue;
        };
        let Some(inner) = inner.upgrade() else { return };
        let span = tracing::info_span!(
            parent: &published.span,
            "entraid.reauth",
            target = %target.describe(),
            generation = published.generation,
            attempts = Empty,
            reconnected = Empty
        );
        let (now_held, generation) = apply(
            &inner,
            &target,
            published,
            &mut latest,
            held.as_ref(),
            &span,
        )
        .instrument(span.clone())
        .await;
        held = Some(now_held);
        // The generation the target's connections now hold, not the newest published: one published while this
        // one was being applied is still to be applied (`latest` shows it changed), and until it is, the target
        // is not up to date. (`fetch_max`: never back, and a detached target's `u64::MAX` stays.)
        applied.fetch_max(generation, Ordering::SeqCst);
        inner.applied.notify_waiters();
    }
}

/// Applies `published` (or a newer token, should one arrive meanwhile) to `target`, retrying until it works, or
/// reconnecting when the token its connections hold is about to expire. Returns the token the target now holds and
/// its generation (after a reconnect, whose connections authenticate with the manager's token of that moment, the
/// generation being applied: never newer than the target holds, and the one the next deadline is computed from).
async fn apply(
    inner: &Arc<Inner>,
    target: &Arc<Target>,
    mut published: Published,
    latest: &mut watch::Receiver<Option<Published>>,
    held: Option<&Held>,
    span: &Span,
) -> (Held, u64) {
    let options = &inner.options;
    // The connections hold `held` until re-authenticated: its expiry (on tokio's clock) is the deadline.
    let deadline = held.map(|held| deadline_for(held, options));
    let mut delay = options.retry_initial_delay;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let token = published.token.clone();
        let attempt_future = target.reauth(
            published.generation,
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
                span.record("attempts", attempt);
                span.record("reconnected", outcome.reconnected > 0);
                return (Held::from(&published), published.generation);
            }
            Err(error) => {
                Counters::add(&inner.counters.reauths_failed);
                let mut report = ReauthError {
                    kind: ReauthErrorKind::Reauth,
                    target: target.describe(),
                    attempt,
                    message: error.to_string(),
                    reconnected: false,
                    token_error: token_error(&error),
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
                            span.record("attempts", attempt);
                            span.record("reconnected", true);
                            report.reconnected = true;
                            inner.report(report);
                            // The new connections authenticated with the manager's token of the moment: the
                            // generation being applied or a newer one, which `latest` still shows.
                            return (Held::from(&published), published.generation);
                        }
                        Err(e) => {
                            report.message =
                                format!("{}; reconnect failed too: {e}", report.message);
                            report.token_error = report.token_error.or_else(|| token_error(&e));
                        }
                    }
                }
                inner.report(report);
                // Wait before the next attempt, but move on at once to a newer token.
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    changed = latest.changed() => if changed.is_err() { return (Held::from(&published), 0) },
                }
                if let Some(newer) = latest.borrow_and_update().clone() {
                    published = newer;
                }
                delay = (delay * 2).min(options.retry_max_delay);
            }
        }
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

/// When connections holding `held` must be reconnected at the latest: its expiry on tokio's clock, as the manager's
/// stream carries it, less the margin. No wall-clock read: the manager already turned the token's expiry into
/// tokio's clock (and cuts it after a detected suspend).
fn deadline_for(held: &Held, options: &ReauthOptions) -> Instant {
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
        let held = Held::from(manager.watch().borrow().unwrap());
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
        let left = deadline_for(&Held::from(held), &ReauthOptions::default()) - Instant::now();
        assert!(
            left <= 10 * 60 * Duration::from_secs(1),
            "deadline {left:?} from now, though the token has at most 10 minutes left"
        );
        manager.shutdown();
    }
}
