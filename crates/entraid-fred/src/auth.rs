//! [`EntraIdAuth`]: pushes every new token to every live connection of every attached client.
//!
//! One background task listens to the token manager. On each new token it re-authenticates all attached clients
//! concurrently, with the username (`oid`) of *that* token. A client whose `AUTH` fails is retried with backoff;
//! if it still fails when the token its connections hold is about to expire, it is reconnected with the current
//! token rather than left for the server to close. Failures are reported to [`EntraIdAuth::subscribe_errors`].

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::SystemTime;

use tokio::sync::broadcast;
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

use entraid_core::Token;
use entraid_manager::{TokenEvent, TokenManager};

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
/// Cheap to clone; the background task stops when the last clone is dropped.
#[derive(Clone)]
pub struct EntraIdAuth {
    inner: Arc<Inner>,
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
    targets: Mutex<HashMap<u64, Arc<Target>>>,
    next_id: AtomicU64,
    counters: Arc<Counters>,
    errors: broadcast::Sender<ReauthError>,
    /// The token the attached connections were last authenticated with.
    last_token: Mutex<Option<Arc<Token>>>,
    /// Bumped on each new token: retries for an older token stop.
    generation: AtomicU64,
    task: Mutex<Option<AbortHandle>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self.task.get_mut().ok().and_then(Option::take) {
            task.abort();
        }
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
            inner.lock_targets().remove(&self.id);
        }
    }
}

impl Inner {
    fn lock_targets(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Target>>> {
        self.targets.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl EntraIdAuth {
    /// Starts pushing tokens from `manager` to attached clients, with default [`ReauthOptions`].
    ///
    /// Must be called inside a tokio runtime.
    pub fn new(manager: TokenManager) -> Self {
        Self::with_options(manager, ReauthOptions::default())
    }

    /// Starts pushing tokens from `manager` to attached clients.
    pub fn with_options(manager: TokenManager, options: ReauthOptions) -> Self {
        let (errors, _) = broadcast::channel(64);
        let inner = Arc::new(Inner {
            last_token: Mutex::new(manager.current()),
            manager,
            options,
            targets: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            counters: Arc::default(),
            errors,
            generation: AtomicU64::new(0),
            task: Mutex::new(None),
        });
        let subscription = inner.manager.subscribe();
        let weak = Arc::downgrade(&inner);
        let handle = tokio::spawn(run(weak, subscription));
        *inner.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle.abort_handle());
        Self { inner }
    }

    /// The credential provider to put in fred's `Config::credential_provider`: every new connection and
    /// reconnect AUTHs as (`oid`, token) with the current token.
    pub fn credential_provider(&self) -> Arc<EntraCredentialProvider> {
        Arc::new(EntraCredentialProvider::new(self.inner.manager.clone()))
    }

    /// Sets `config.credential_provider` (and clears any static username and password).
    pub fn configure(&self, config: &mut fred::types::config::Config) {
        config.username = None;
        config.password = None;
        config.credential_provider = Some(self.credential_provider());
    }

    /// Attaches a client, subscriber or pool: each new token is pushed to all its live connections.
    pub fn attach(&self, client: impl Into<Attachable>) -> Attachment {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        self.inner
            .lock_targets()
            .insert(id, Target::new(client.into()));
        Attachment {
            id,
            inner: Arc::downgrade(&self.inner),
        }
    }

    /// Re-authentication failures, as they happen (a lagging receiver misses the oldest).
    pub fn subscribe_errors(&self) -> broadcast::Receiver<ReauthError> {
        self.inner.errors.subscribe()
    }

    /// The counters.
    pub fn stats(&self) -> ReauthStats {
        let attached = self.inner.lock_targets().len() as u64;
        self.inner.counters.snapshot(attached)
    }

    /// The token manager behind this.
    pub fn manager(&self) -> &TokenManager {
        &self.inner.manager
    }
}

/// The background task: one fan-out per new token.
async fn run(inner: Weak<Inner>, mut subscription: entraid_manager::Subscription) {
    while let Some(event) = subscription.recv().await {
        let Some(inner) = inner.upgrade() else { return };
        match event {
            TokenEvent::Token(token) => fan_out(&inner, token).await,
            TokenEvent::Error(error) => {
                tracing::debug!(error = %error, "token manager reported an error; connections keep the current token");
            }
            _ => {}
        }
    }
}

/// Pushes `token` to every attached client, concurrently.
async fn fan_out(inner: &Arc<Inner>, token: Arc<Token>) {
    let started = Instant::now();
    let generation = inner.generation.fetch_add(1, Ordering::SeqCst) + 1;
    let previous = inner
        .last_token
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .replace(token.clone());
    Counters::add(&inner.counters.rotations);
    let targets: Vec<Arc<Target>> = inner.lock_targets().values().cloned().collect();
    if targets.is_empty() {
        Counters::add(&inner.counters.fanouts_completed);
        return;
    }
    // The connections hold `previous` until re-authenticated: its expiry is the deadline.
    let deadline = previous
        .as_deref()
        .map(|p| deadline_for(p, &inner.options))
        .unwrap_or_else(Instant::now);
    let mut set = JoinSet::new();
    for target in targets {
        let (inner, token) = (inner.clone(), token.clone());
        set.spawn(async move {
            reauth_with_retries(&inner, &target, &token, generation, deadline).await
        });
    }
    while set.join_next().await.is_some() {}
    let latency = started.elapsed();
    *inner
        .counters
        .last_fanout_latency
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some(latency);
    Counters::add(&inner.counters.fanouts_completed);
    tracing::debug!(
        username = token.username(),
        ?latency,
        "pushed new token to attached clients"
    );
}

/// When connections holding `token` must be reconnected at the latest.
fn deadline_for(token: &Token, options: &ReauthOptions) -> Instant {
    // The one wall-clock read here: how long `token` has left, turned into tokio's clock.
    let left = token.remaining(SystemTime::now());
    let margin = options.reconnect_margin.min(token.lifetime() / 5);
    Instant::now() + left.saturating_sub(margin)
}

async fn reauth_with_retries(
    inner: &Arc<Inner>,
    target: &Arc<Target>,
    token: &Token,
    generation: u64,
    deadline: Instant,
) {
    let options = &inner.options;
    let password = token.access_token().expose_secret();
    let mut delay = options.retry_initial_delay;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match target
            .reauth(token.username(), password, options, &inner.counters)
            .await
        {
            Ok(outcome) => {
                inner
                    .counters
                    .reauths_sent
                    .fetch_add(outcome.reauthed, Ordering::Relaxed);
                inner
                    .counters
                    .reconnects
                    .fetch_add(outcome.reconnected, Ordering::Relaxed);
                return;
            }
            Err(error) => {
                Counters::add(&inner.counters.reauths_failed);
                let superseded = inner.generation.load(Ordering::SeqCst) != generation;
                let out_of_time = Instant::now() + delay >= deadline;
                let reconnect = out_of_time && !superseded;
                let mut report = ReauthError {
                    target: target.describe(),
                    attempt,
                    message: error.to_string(),
                    reconnected: false,
                };
                if reconnect {
                    match target.reconnect(options).await {
                        Ok(()) => {
                            Counters::add(&inner.counters.reconnects);
                            report.reconnected = true;
                        }
                        Err(e) => {
                            report.message =
                                format!("{}; reconnect failed too: {e}", report.message)
                        }
                    }
                }
                tracing::warn!(target = %report.target, attempt, error = %report.message, reconnected = report.reconnected,
                    "re-authentication failed");
                let _ = inner.errors.send(report.clone());
                if superseded || report.reconnected {
                    return;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(options.retry_max_delay);
            }
        }
    }
}
