//! The background refresh task: ask the identity provider, schedule the next refresh, retry on failure forever,
//! drop the token when it expires, and tell the subscribers.
//!
//! One task per manager runs this loop, so there is never more than one identity-provider request in flight. Each
//! request runs in its own short-lived task under `request_timeout`: a provider that hangs is cancelled, and one
//! that panics becomes an error instead of ending the manager.

use std::future::{Future, poll_fn};
use std::panic::AssertUnwindSafe;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use entraid_core::{Error, IdentityProvider, SharedIdentityProvider, SharedResponseParser, Token};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until, timeout_at};

use crate::backoff::{Rng, retry_delay};
use crate::clock::{later, refresh_plan, wall_clock_now};
use crate::manager::{Failure, Shared, State};
use crate::subscription::TokenEvent;

/// What the loop does next.
#[derive(Debug, Clone, Copy)]
enum Next {
    /// Ask now.
    Now,
    /// A scheduled refresh: a caller's need (without a valid token) or a forced refresh comes first.
    Refresh(Instant),
    /// A retry after a failure: nothing comes first but shutdown.
    Retry(Instant),
}

/// Marks the manager stopped when the task ends, however it ends (shutdown, panic, runtime drop), so no caller
/// waits forever and every subscription ends.
struct StopGuard(Arc<Shared>);

impl Drop for StopGuard {
    fn drop(&mut self) {
        self.0.close();
        tracing::debug!(provider = %self.0.provider_name, "token manager stopped");
    }
}

/// Aborts a spawned request when dropped (on timeout or shutdown).
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The refresh loop. Returns when the manager is closed.
pub(crate) async fn run(shared: Arc<Shared>, provider: SharedIdentityProvider) {
    let _guard = StopGuard(Arc::clone(&shared));
    let mut rx = shared.state.subscribe();
    let mut rng = Rng::from_entropy();
    let retry = &shared.options.retry;
    let mut next = Next::Now;
    let mut failures: u32 = 0;
    // The burst is over: retries follow the never-give-up cadence until a token arrives.
    let mut settled = false;

    loop {
        let proceed = match next {
            Next::Now => true,
            Next::Refresh(at) => wait(&shared, &mut rx, at, true).await,
            Next::Retry(at) => wait(&shared, &mut rx, at, false).await,
        };
        if !proceed {
            return;
        }

        shared.state.send_modify(|s| {
            s.fetching = true;
            s.need = false;
            s.force = false;
            s.next_attempt_at = None;
        });
        let Some(outcome) = attempt(&shared, &provider, &mut rx).await else {
            return;
        };

        match outcome {
            Ok((token, received)) => {
                let lifetime = token.lifetime();
                let expires_at = later(received, lifetime);
                let plan = refresh_plan(
                    lifetime,
                    token.refresh_in(),
                    shared.options.expiration_refresh_ratio,
                    shared.options.lower_refresh_bound,
                );
                let refresh_at = later(received, plan.after);
                let token = Arc::new(token);
                shared.state.send_modify(|s| {
                    shared.hot.set(Some(&token));
                    s.token = Some(Arc::clone(&token));
                    s.expires_at = Some(expires_at);
                    s.failure = None;
                    s.fetching = false;
                    s.attempts += 1;
                    s.refreshes += 1;
                    s.next_attempt_at = Some(refresh_at);
                });
                tracing::info!(
                    provider = %shared.provider_name,
                    lifetime_ms = millis(lifetime),
                    after_failures = failures,
                    "token refreshed"
                );
                if plan.lower_bound_ignored {
                    tracing::warn!(
                        provider = %shared.provider_name,
                        lifetime_ms = millis(lifetime),
                        lower_refresh_bound_ms = millis(shared.options.lower_refresh_bound),
                        "token lives shorter than lower_refresh_bound; the bound is ignored for it"
                    );
                }
                tracing::debug!(
                    provider = %shared.provider_name,
                    refresh_in_ms = millis(plan.after),
                    rule = plan.rule.as_str(),
                    "token refresh scheduled"
                );
                failures = 0;
                settled = false;
                shared.registry.publish(&TokenEvent::Token(token));
                next = Next::Refresh(refresh_at);
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                // A panicking user hook counts as "not retryable" rather than ending the manager.
                let retryable =
                    std::panic::catch_unwind(AssertUnwindSafe(|| (retry.is_retryable)(&error)))
                        .unwrap_or(false);
                let in_burst = !settled && retryable && failures < retry.max_attempts;
                let burst_ended = !settled && !in_burst;
                settled = !in_burst;
                let delay = retry_delay(
                    retry,
                    failures,
                    in_burst,
                    retryable,
                    error.retry_after(),
                    &mut rng,
                );
                let retry_at = later(Instant::now(), delay);
                if in_burst {
                    tracing::warn!(
                        provider = %shared.provider_name,
                        attempt = failures,
                        retry_in_ms = millis(delay),
                        error = %error,
                        "token request failed; retrying"
                    );
                } else if burst_ended {
                    tracing::error!(
                        provider = %shared.provider_name,
                        consecutive_failures = failures,
                        retryable,
                        retry_in_ms = millis(delay),
                        error = %error,
                        "token request failed; retrying until a token arrives"
                    );
                } else {
                    tracing::warn!(
                        provider = %shared.provider_name,
                        consecutive_failures = failures,
                        retry_in_ms = millis(delay),
                        error = %error,
                        "token request still failing; retrying"
                    );
                }
                let error = Arc::new(error);
                shared.state.send_modify(|s| {
                    s.failure = Some(Failure {
                        error: Arc::clone(&error),
                        consecutive: failures,
                        settled,
                    });
                    s.fetching = false;
                    s.attempts += 1;
                    s.next_attempt_at = Some(retry_at);
                });
                shared.registry.publish(&TokenEvent::Error(error));
                next = Next::Retry(retry_at);
            }
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What a wait sees when it looks at the state.
enum Look {
    Closed,
    Go,
    Stay(Option<Instant>),
}

fn look(s: &State, demand_aware: bool) -> Look {
    if s.closed {
        return Look::Closed;
    }
    if demand_aware && (s.force || (s.need && s.valid_token(Instant::now()).is_none())) {
        return Look::Go;
    }
    Look::Stay(s.token.as_ref().and(s.expires_at))
}

/// Drops the token if it has expired.
fn expire(shared: &Shared) {
    let now = Instant::now();
    let expired = shared.state.send_if_modified(|s| match s.expires_at {
        Some(at) if s.token.is_some() && at <= now => {
            shared.hot.set(None);
            s.token = None;
            s.expires_at = None;
            true
        }
        _ => false,
    });
    if expired {
        tracing::warn!(provider = %shared.provider_name, "token expired before a new one arrived");
    }
}

/// What ended a [`race`].
enum Woke<T> {
    /// The main future finished.
    Main(T),
    /// The token's expiry came.
    Expiry,
    /// The state changed (`false`: the sender is gone).
    Changed(bool),
}

/// Polls `main`, then the token's `expiry` timer (when given), then a state change, and returns the first that is
/// ready: a small `select!` that needs no tokio macros.
async fn race<F: Future + Unpin>(
    main: &mut F,
    expiry: Option<Instant>,
    rx: &mut watch::Receiver<State>,
) -> Woke<F::Output> {
    let mut expiry = pin!(expiry.map(sleep_until));
    let mut changed = pin!(rx.changed());
    poll_fn(|cx| {
        if let Poll::Ready(output) = Pin::new(&mut *main).poll(cx) {
            return Poll::Ready(Woke::Main(output));
        }
        if let Some(sleep) = expiry.as_mut().as_pin_mut()
            && sleep.poll(cx).is_ready()
        {
            return Poll::Ready(Woke::Expiry);
        }
        if let Poll::Ready(result) = changed.as_mut().poll(cx) {
            return Poll::Ready(Woke::Changed(result.is_ok()));
        }
        Poll::Pending
    })
    .await
}

/// Waits until `until`, dropping the token at its expiry on the way. A demand-aware wait ends early on a forced
/// refresh, or when a caller needs a token and none is valid. `false`: the manager is closed.
async fn wait(
    shared: &Shared,
    rx: &mut watch::Receiver<State>,
    until: Instant,
    demand_aware: bool,
) -> bool {
    let mut timer = pin!(sleep_until(until));
    loop {
        let expiry = match look(&rx.borrow_and_update(), demand_aware) {
            Look::Closed => return false,
            Look::Go => return true,
            Look::Stay(expiry) => expiry.filter(|e| *e < until),
        };
        match race(&mut timer, expiry, rx).await {
            Woke::Main(()) => return true,
            Woke::Expiry => expire(shared),
            Woke::Changed(alive) => {
                if !alive {
                    return false;
                }
            }
        }
    }
}

/// One identity-provider request under `request_timeout`. `None`: the manager closed meanwhile (the request is
/// cancelled).
async fn attempt(
    shared: &Shared,
    provider: &SharedIdentityProvider,
    rx: &mut watch::Receiver<State>,
) -> Option<Result<(Token, Instant), Error>> {
    let timeout = shared.options.request_timeout;
    let mut request = AbortOnDrop(tokio::spawn(request(
        provider.clone(),
        Arc::clone(&shared.options.response_parser),
    )));
    let mut bounded = pin!(timeout_at(later(Instant::now(), timeout), &mut request.0));
    loop {
        let expiry = match look(&rx.borrow_and_update(), false) {
            Look::Closed => return None,
            Look::Go => None,
            Look::Stay(expiry) => expiry,
        };
        match race(&mut bounded, expiry, rx).await {
            Woke::Main(Ok(Ok(outcome))) => return Some(outcome),
            Woke::Main(Ok(Err(e))) if e.is_panic() => {
                return Some(Err(Error::custom(
                    format!("identity provider {} panicked", shared.provider_name),
                    false,
                )));
            }
            // Cancelled: the runtime is shutting down.
            Woke::Main(Ok(Err(_))) => return None,
            // The request task is aborted when `request` drops.
            Woke::Main(Err(_elapsed)) => {
                return Some(Err(Error::timeout(shared.provider_name.clone(), timeout)));
            }
            Woke::Expiry => expire(shared),
            Woke::Changed(alive) => {
                if !alive {
                    return None;
                }
            }
        }
    }
}

/// The request task's body: ask, then parse with the wall-clock time of receipt.
async fn request(
    provider: SharedIdentityProvider,
    parser: SharedResponseParser,
) -> Result<(Token, Instant), Error> {
    let response = provider.request_token().await?;
    let received = Instant::now();
    let token = parser.parse(response, wall_clock_now())?;
    Ok((token, received))
}
