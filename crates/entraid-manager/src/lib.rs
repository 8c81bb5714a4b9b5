//! # entraid-manager
//!
//! The token manager: keeps a valid Entra ID token at hand for as long as the process lives, at the cost of one
//! identity-provider request per refresh. It works over any [`IdentityProvider`](entraid_core::IdentityProvider)
//! from entraid-core, on tokio, and depends on nothing else (no HTTP client).
//!
//! ```
//! use std::time::{SystemTime, UNIX_EPOCH};
//! use entraid_core::{BoxFuture, Error, IdentityProvider, IdentityProviderResponse, unsigned_jwt};
//! use entraid_manager::{TokenEvent, TokenManager, TokenManagerOptions};
//!
//! /// A provider of your own: a vault, a sidecar, another identity library.
//! #[derive(Debug)]
//! struct MyProvider;
//!
//! impl IdentityProvider for MyProvider {
//!     fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
//!         Box::pin(async move {
//!             // A real provider fetches a signed token; this one mints an unsigned one valid for an hour.
//!             let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 3600;
//!             let jwt = unsigned_jwt(&serde_json::json!({"oid": "0000-1111", "exp": exp}));
//!             Ok(IdentityProviderResponse::raw_token(jwt))
//!         })
//!     }
//!
//!     fn name(&self) -> &str {
//!         "MyProvider"
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let manager = TokenManager::start(MyProvider, TokenManagerOptions::default())?;
//! let mut events = manager.subscribe();
//!
//! let token = manager.token().await?; // waits for the first token
//! assert_eq!(token.username(), "0000-1111"); // Redis username: the `oid` claim
//! let _password: &str = token.access_token().expose_secret(); // Redis password: the token
//!
//! // The hot path: the cached token, without waiting.
//! assert!(manager.current().is_some());
//!
//! // Every new token (and every error) reaches every subscription.
//! match events.recv().await {
//!     Some(TokenEvent::Token(t)) => assert_eq!(t.username(), "0000-1111"),
//!     other => panic!("unexpected {other:?}"),
//! }
//! manager.shutdown();
//! assert!(events.recv().await.is_none());
//! # Ok(())
//! # }
//! ```
//!
//! ## Refresh
//! A token received at `received_at` with lifetime `expires_on - received_at` is refreshed at the earliest of
//! `received_at + expiration_refresh_ratio * lifetime` (default 0.7), `expires_on - lower_refresh_bound` (default
//! zero: no bound) and the issuer's `refresh_in` / `refresh_on`, moved **earlier** by a random time within the
//! [`RefreshJitter`] window (default 5 % of the lifetime, at most 5 minutes), so a fleet started together does not
//! refresh and re-authenticate in lock step. Jitter never makes a refresh later than the rule's point. Only one
//! request is made per refresh, at any token lifetime. `rng_seed` makes the jitter reproducible.
//!
//! ## Cached answers
//! A provider that answers from its own cache (IMDS, `az`, MSAL-style caches) may hand back the token the manager
//! already holds (the same access token, or the same expiry for the same principal). It is not published again
//! (no subscriber event, no new [`TokenWatch`] generation, no rotation counted); the next attempt comes at the
//! refresh rule applied to what is left of the token's life, never sooner than `identical_token_floor` (5 s) after
//! the answer and never after the expiry, so the interval cannot shrink geometrically into a request loop.
//!
//! ## Retries that never give up
//! A failed request is retried with exponential backoff and full jitter, up to `max_attempts` (3) in a burst; a
//! `Retry-After` is honoured; errors the `is_retryable` hook rejects (by default authentication failures and other
//! 4xx answers) end the burst at once. After a burst the manager **keeps trying**, every `max_delay / 2` to
//! `max_delay` (10 s), until a token arrives: a credential fixed later (a rotated secret, a refreshed federated
//! token file) is picked up without a restart. Once no valid token is held (or it expires before the next
//! attempt), retryable failures are retried every `outage_delay / 2` to `outage_delay` (1-2 s; `Retry-After`
//! still a floor), so the first token follows the endpoint's return within about 2 s. The previous token is served
//! until it expires; every failure is reported to subscribers; a success clears the error state. See
//! [`RetryOptions`] for the exact schedule.
//!
//! ## Interactive providers
//! A provider describes its requests with [`entraid_core::RequestHint`]: a `max_duration` replaces
//! `request_timeout` for its requests (plus 5 s of grace, so the provider's own timeout comes first), and an
//! *interactive* provider (browser, device code) is not asked again on the manager's own initiative after a
//! failure that involved the user: a timeout or an error that is not retryable settles at once, a retryable one
//! gets the burst only. The error then stands ([`TokenManager::token`] returns it at once) until a caller forces a
//! new sign-in with [`TokenManager::refresh_now`]; no new browser tab or device code every few seconds.
//!
//! ## Single flight
//! One background task makes every identity-provider request, one at a time. Callers of
//! [`TokenManager::token`] that find no valid token wait for that task's next result together, and
//! [`TokenManager::refresh_now`] joins a request in flight, so any number of concurrent callers cause one request.
//!
//! ## Hot path
//! [`TokenManager::current`] reads the cached token without waiting for anything: each thread reads its own
//! cache-line-aligned shard (an uncontended read lock and an `Arc` clone), so concurrent readers share no memory and
//! a refresh in flight never blocks them, plus one wall-clock read (numbers in `docs/BENCHMARKS.md`).
//!
//! ## One token stream
//! [`TokenManager::watch`] returns a [`TokenWatch`]: the newest token with its generation number and its expiry on
//! tokio's clock, read from the manager's own state, so a token published between reading the current one and
//! waiting for the next is never missed. [`TokenManager::subscribe`] remains for event queues that also carry
//! errors.
//!
//! ## Lifecycle
//! [`TokenManager::start`] spawns the background task; it stops when the last [`TokenManager`] handle is dropped
//! or on [`TokenManager::shutdown`], cancelling a request in flight and ending every [`Subscription`] and
//! [`TokenWatch`].
//!
//! ## Time
//! All timing uses tokio's clock, so tests run with paused time. A token's wall-clock expiry is turned into a tokio
//! instant once, on receipt, from its lifetime. Two clocks can disagree: after a suspend or a VM freeze tokio's
//! clock has stood still while the wall clock ran on. So every read path ([`TokenManager::current`],
//! [`TokenManager::token`], [`TokenWatch`]) also refuses a token whose `expires_on` has passed on the wall clock,
//! and the background task compares the clocks every `clock_check_interval` (10 s) while it waits: when the wall
//! clock ran more than `clock_jump_threshold` (10 s) ahead since the token arrived, it recomputes the expiry from
//! the wall clock and refreshes at once. The wall clock is injectable ([`WallClock`]); the crate reads the system
//! clock in one function (`clock::wall_clock_now`), which clippy's `disallowed-methods` enforces.
//!
//! ## Observability
//! `tracing` events: `token refreshed` (info), `token refresh scheduled` (debug, with the jitter applied),
//! `identity provider answered with the token already held; not published` (debug), `token request failed;
//! retrying` (warn), `token request failed; retrying until a token arrives` (error, when a burst ends),
//! `interactive token request failed; not asking the user again until refresh_now` (error), `the wall clock ran
//! ahead of tokio's clock (suspend or VM freeze?); refreshing now` (warn), `token expired before a new one
//! arrived` (warn). They carry the provider name, durations and the error, never a token. Each identity-provider
//! request runs in a span `entraid.token_request` (see [`telemetry`]): `provider`, `attempt`, `outcome`,
//! `duration_ms`, `generation`, `retryable`. [`TokenManager::status`] returns a [`ManagerStatus`] snapshot.
//!
//! ## Metrics (feature `metrics`)
//! Seconds until the token expires, refreshes, failures and request durations, through the `metrics` facade; the
//! names are in [`telemetry`]. Off by default, and compiled out when off.
//!
//! ## Errors through text-only types
//! [`ErrorTag`] lets an adapter whose client library takes only a string error (fred, redis-rs) carry the
//! manager's `Arc<Error>` inside it and give it back, AADSTS codes and all.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backoff;
mod clock;
mod error_tag;
mod hot;
mod manager;
mod options;
mod refresh_loop;
mod rng;
mod state;
mod subscription;
pub mod telemetry;
mod watch;

pub use clock::WallClock;
pub use error_tag::ErrorTag;
pub use manager::{ManagerStatus, TokenManager};
pub use options::{
    RefreshJitter, RetryOptions, RetryPredicate, TokenManagerOptions, default_is_retryable,
};
pub use subscription::{Subscription, TokenEvent};
pub use watch::{TokenGeneration, TokenWatch};

// The README's examples are compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
