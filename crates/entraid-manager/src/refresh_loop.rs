//! The refresh loop: the background task that asks the identity provider, schedules the next refresh (by the
//! rules in `clock.rs`), retries on failure forever, drops the token when it expires, and tells the subscribers.
//!
//! One task per manager runs this loop, so there is never more than one identity-provider request in flight. Each
//! request runs in its own short-lived task under `request_timeout`: a provider that hangs is cancelled, and one
//! that panics becomes an error instead of ending the manager.

use std::future::{Future, poll_fn};
use std::panic::AssertUnwindSafe;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use entraid_core::{
    Error, IdentityProvider, RequestHint, SharedIdentityProvider, SharedResponseParser, Token,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until, timeout_at};
use tracing::Instrument;

use crate::backoff::retry_delay;
use crate::clock::{FAR, WallClock, identical_retry, jittered, later, refresh_plan, wall_ahead};
use crate::options::RetryOptions;
use crate::rng::Rng;
use crate::state::{Failure, Shared, State};
use crate::subscription::TokenEvent;
use crate::telemetry::{self, Outcome, RequestTelemetry};

/// What the loop does next.
#[derive(Debug, Clone, Copy)]
enum Next {
    /// Ask now.
    Now,
    /// A scheduled refresh: a caller's need (without a valid token) or a forced refresh comes first.
    Refresh(Instant),
    /// A retry after a failure: nothing comes first but shutdown.
    Retry(Instant),
    /// An interactive request failed: wait for a forced refresh ([`TokenManager::refresh_now`]), not asking the
    /// user again on our own.
    ///
    /// [`TokenManager::refresh_now`]: crate::TokenManager::refresh_now
    Idle,
}

/// Marks the manager stopped when the task ends, however it ends (shutdown, panic, runtime drop), so no caller
/// waits forever and every subscription ends.
struct StopGuard(Arc<Shared>);

impl Drop for StopGuard {
    fn drop(&mut self) {
        self.0.close();
        telemetry::expiry(&self.0.provider_name, None);
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

/// How much longer than a provider's [`RequestHint::max_duration`] the manager waits before cancelling the
/// request: 5 s, so the provider's own timeout (and its clearer error) comes first.
pub(crate) const HINT_GRACE: Duration = Duration::from_secs(5);

/// The timeout of one request: the provider's own maximum (plus [`HINT_GRACE`]) when it states one, else the
/// manager's `request_timeout`.
pub(crate) fn request_timeout(hint: RequestHint, request_timeout: Duration) -> Duration {
    hint.max_duration()
        .map_or(request_timeout, |d| d.saturating_add(HINT_GRACE))
}

/// Whether two tokens are the same token for the manager: the same access token, or the same expiry for the same
/// principal (a provider answering from its cache, perhaps re-encoded). A new token for the same principal with
/// the same expiry would be worth no more than the one held.
fn same_token(held: &Token, new: &Token) -> bool {
    held.access_token().expose_secret() == new.access_token().expose_secret()
        || (held.expires_on() == new.expires_on() && held.username() == new.username())
}

/// The refresh loop. Returns when the manager is closed.
pub(crate) async fn run(shared: Arc<Shared>, provider: SharedIdentityProvider) {
    let _guard = StopGuard(Arc::clone(&shared));
    let mut rx = shared.state.subscribe();
    let options = &shared.options;
    let mut rng = options
        .rng_seed
        .map_or_else(Rng::from_entropy, Rng::with_seed);
    let retry = &options.retry;
    let mut next = Next::Now;
    let mut failures: u32 = 0;
    // The burst is over: retries follow the never-give-up cadence until a token arrives.
    let mut settled = false;

    loop {
        let proceed = match next {
            Next::Now => true,
            Next::Refresh(at) => wait(&shared, &mut rx, at, true).await,
            Next::Retry(at) => wait(&shared, &mut rx, at, false).await,
            Next::Idle => wait(&shared, &mut rx, later(Instant::now(), FAR), true).await,
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
        // A panicking hint is the default hint.
        let hint = std::panic::catch_unwind(AssertUnwindSafe(|| provider.request_hint()))
            .unwrap_or_default();
        let request = RequestTelemetry::start(&shared.provider_name, failures.saturating_add(1));
        let Some(outcome) = attempt(&shared, &provider, hint, &mut rx, request.span())
            .instrument(request.span().clone())
            .await
        else {
            return;
        };

        match outcome {
            Ok((token, received)) => {
                let held = {
                    let s = shared.state.borrow();
                    s.valid_token(received)
                        .filter(|held| same_token(held, &token))
                        .and(s.expires_at)
                };
                if let Some(expires_at) = held {
                    // The provider answered from its cache: nothing new to publish, and no tighter loop.
                    let remaining = expires_at.saturating_duration_since(received);
                    let after = identical_retry(
                        remaining,
                        options.expiration_refresh_ratio,
                        options.lower_refresh_bound,
                        options.identical_token_floor,
                    );
                    let refresh_at = later(received, after);
                    shared.state.send_modify(|s| {
                        s.failure = None;
                        s.fetching = false;
                        s.attempts += 1;
                        s.identical += 1;
                        s.next_attempt_at = Some(refresh_at);
                    });
                    tracing::debug!(
                        provider = %shared.provider_name,
                        remaining_ms = millis(remaining),
                        retry_in_ms = millis(after),
                        "identity provider answered with the token already held; not published"
                    );
                    request.finish(&shared.provider_name, Outcome::Identical);
                    failures = 0;
                    settled = false;
                    next = Next::Refresh(refresh_at);
                    continue;
                }
                let lifetime = token.lifetime();
                let expires_at = later(received, lifetime);
                let plan = refresh_plan(
                    lifetime,
                    token.refresh_in(),
                    options.expiration_refresh_ratio,
                    options.lower_refresh_bound,
                );
                let after = jittered(
                    plan.after,
                    options.refresh_jitter.window(lifetime),
                    &mut rng,
                );
                let refresh_at = later(received, after);
                let token = Arc::new(token);
                shared.state.send_modify(|s| {
                    shared.hot.set(Some(&token));
                    s.token = Some(Arc::clone(&token));
                    s.expires_at = Some(expires_at);
                    s.received_at = Some(received);
                    s.generation += 1;
                    s.failure = None;
                    s.fetching = false;
                    s.attempts += 1;
                    s.refreshes += 1;
                    s.next_attempt_at = Some(refresh_at);
                });
                shared.wall_expired_reported.store(false, Ordering::Release);
                request.generation(shared.state.borrow().generation);
                request.finish(&shared.provider_name, Outcome::Token);
                telemetry::refreshed(&shared.provider_name);
                telemetry::expiry(&shared.provider_name, Some(expires_at));
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
                        lower_refresh_bound_ms = millis(options.lower_refresh_bound),
                        "token lives shorter than lower_refresh_bound; the bound is ignored for it"
                    );
                }
                tracing::debug!(
                    provider = %shared.provider_name,
                    refresh_in_ms = millis(after),
                    rule = plan.rule.as_str(),
                    jitter_ms = millis(plan.after.saturating_sub(after)),
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
                request.retryable(retryable);
                request.finish(&shared.provider_name, Outcome::Error);
                telemetry::failed(&shared.provider_name, retryable);
                let interactive = hint.is_interactive();
                // A person who did not answer in time is not asked again at once.
                let timed_out = matches!(error, Error::Timeout { .. });
                let in_burst = !settled
                    && retryable
                    && failures < retry.max_attempts
                    && !(interactive && timed_out);
                let burst_ended = !settled && !in_burst;
                settled = !in_burst;
                let now = Instant::now();
                let delay = retry_delay(
                    retry,
                    failures,
                    in_burst,
                    retryable,
                    error.retry_after(),
                    &mut rng,
                );
                let mut retry_at = later(now, delay);
                if retryable {
                    // Outage cadence: once no valid token is held (or it expires before the next attempt),
                    // nothing works until one arrives, so ask again soon after, still no sooner than a
                    // `Retry-After`.
                    let valid_until = {
                        let s = shared.state.borrow();
                        s.valid_token(now).and(s.expires_at)
                    };
                    let from = valid_until.unwrap_or(now).max(now);
                    let outage = retry.outage_delay;
                    let outage_at =
                        later(from, rng.duration_between(outage / 2, outage)).max(later(
                            now,
                            error
                                .retry_after()
                                .unwrap_or_default()
                                .min(RetryOptions::MAX_RETRY_AFTER),
                        ));
                    retry_at = retry_at.min(outage_at);
                }
                let idle = interactive && !in_burst;
                let retry_in = retry_at.saturating_duration_since(now);
                if idle {
                    tracing::error!(
                        provider = %shared.provider_name,
                        consecutive_failures = failures,
                        error = %error,
                        "interactive token request failed; not asking the user again until refresh_now"
                    );
                } else if in_burst {
                    tracing::warn!(
                        provider = %shared.provider_name,
                        attempt = failures,
                        retry_in_ms = millis(retry_in),
                        error = %error,
                        "token request failed; retrying"
                    );
                } else if burst_ended {
                    tracing::error!(
                        provider = %shared.provider_name,
                        consecutive_failures = failures,
                        retryable,
                        retry_in_ms = millis(retry_in),
                        error = %error,
                        "token request failed; retrying until a token arrives"
                    );
                } else {
                    tracing::warn!(
                        provider = %shared.provider_name,
                        consecutive_failures = failures,
                        retry_in_ms = millis(retry_in),
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
                    s.next_attempt_at = (!idle).then_some(retry_at);
                });
                shared.registry.publish(&TokenEvent::Error(error));
                next = if idle {
                    Next::Idle
                } else {
                    Next::Retry(retry_at)
                };
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
        telemetry::expiry(&shared.provider_name, None);
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

/// Compares tokio's clock with the wall clock (periodically, and when a read found the token expired on the wall
/// clock). When the wall clock ran ahead by more than `clock_jump_threshold` since the token arrived (a suspend, a
/// frozen VM), or the token has expired on the wall clock, its expiry is recomputed from the wall clock (and it is
/// dropped when that has passed). `true`: it did, and the token should be refreshed now.
fn check_clock(shared: &Shared) -> bool {
    shared.wall_expired_reported.store(false, Ordering::Release);
    let now = Instant::now();
    let wall = shared.options.wall_clock.now();
    let threshold = shared.options.clock_jump_threshold;
    let mut jump = None;
    shared.state.send_if_modified(|s| {
        let was_suspect = std::mem::take(&mut s.clock_suspect);
        let (Some(token), Some(received)) = (&s.token, s.received_at) else {
            return was_suspect;
        };
        let ahead = wall_ahead(token.received_at(), wall, received, now);
        let left = token
            .expires_on()
            .duration_since(wall)
            .unwrap_or(Duration::ZERO);
        if ahead <= threshold && !left.is_zero() {
            if was_suspect {
                // A read emptied the hot cache, but the token is valid after all (the clock stepped back since):
                // serve it again.
                shared.hot.set(Some(token));
            }
            return was_suspect;
        }
        jump = Some((ahead, left));
        if left.is_zero() {
            shared.hot.set(None);
            s.token = None;
            s.expires_at = None;
            s.received_at = None;
        } else {
            let corrected = later(now, left);
            s.expires_at = Some(s.expires_at.map_or(corrected, |e| e.min(corrected)));
            // Re-based, so the same jump is not found again.
            s.received_at = Some(later(received, ahead));
        }
        true
    });
    let Some((ahead, left)) = jump else {
        return false;
    };
    tracing::warn!(
        provider = %shared.provider_name,
        wall_clock_ahead_ms = millis(ahead),
        token_left_ms = millis(left),
        "the wall clock ran ahead of tokio's clock (suspend or VM freeze?); refreshing now"
    );
    true
}

/// Waits until `until`, dropping the token at its expiry and comparing the clocks on the way. A demand-aware wait
/// ends early on a forced refresh, when a caller needs a token and none is valid, or when the clocks disagree.
/// `false`: the manager is closed.
async fn wait(
    shared: &Shared,
    rx: &mut watch::Receiver<State>,
    until: Instant,
    demand_aware: bool,
) -> bool {
    let mut timer = pin!(sleep_until(until));
    let interval = shared.options.clock_check_interval;
    let mut next_check = (!interval.is_zero()).then(|| later(Instant::now(), interval));
    loop {
        let suspect = rx.borrow().clock_suspect;
        if suspect || next_check.is_some_and(|at| at <= Instant::now()) {
            if next_check.is_some() {
                next_check = Some(later(Instant::now(), interval));
            }
            let jumped = check_clock(shared);
            telemetry::expiry(&shared.provider_name, {
                let s = shared.state.borrow();
                s.token.as_ref().and(s.expires_at)
            });
            if jumped && demand_aware {
                return true;
            }
        }
        let wake = match look(&rx.borrow_and_update(), demand_aware) {
            Look::Closed => return false,
            Look::Go => return true,
            Look::Stay(expiry) => {
                let check = expiry.and(next_check);
                [expiry, check]
                    .into_iter()
                    .flatten()
                    .min()
                    .filter(|e| *e < until)
            }
        };
        match race(&mut timer, wake, rx).await {
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
    hint: RequestHint,
    rx: &mut watch::Receiver<State>,
    span: &tracing::Span,
) -> Option<Result<(Token, Instant), Error>> {
    let timeout = request_timeout(hint, shared.options.request_timeout);
    // In the request's span, so the provider's own events and spans nest under it.
    let mut request = AbortOnDrop(tokio::spawn(
        request(
            provider.clone(),
            Arc::clone(&shared.options.response_parser),
            shared.options.wall_clock.clone(),
        )
        .instrument(span.clone()),
    ));
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
    clock: WallClock,
) -> Result<(Token, Instant), Error> {
    let response = provider.request_token().await?;
    let received = Instant::now();
    let token = parser.parse(response, clock.now())?;
    Ok((token, received))
}
