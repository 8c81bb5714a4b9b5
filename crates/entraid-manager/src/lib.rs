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
//! zero: no bound) and the issuer's `refresh_in` / `refresh_on`. Only one request is made per refresh, at any token
//! lifetime.
//!
//! ## Retries that never give up
//! A failed request is retried with exponential backoff and full jitter, up to `max_attempts` (3) in a burst; a
//! `Retry-After` is honoured; errors the `is_retryable` hook rejects (by default authentication failures and other
//! 4xx answers) end the burst at once. After a burst the manager **keeps trying**, every `max_delay / 2` to
//! `max_delay` (10 s), until a token arrives: a credential fixed later (a rotated secret, a refreshed federated
//! token file) is picked up without a restart. The previous token is served until it expires; every failure is
//! reported to subscribers; a success clears the error state. See [`RetryOptions`] for the exact schedule.
//!
//! ## Single flight
//! One background task makes every identity-provider request, one at a time. Callers of
//! [`TokenManager::token`] that find no valid token wait for that task's next result together, and
//! [`TokenManager::refresh_now`] joins a request in flight, so any number of concurrent callers cause one request.
//!
//! ## Hot path
//! [`TokenManager::current`] reads the cached token without waiting for anything: each thread reads its own
//! cache-line-aligned shard (an uncontended read lock and an `Arc` clone), so concurrent readers share no memory and
//! a refresh in flight never blocks them (numbers in `docs/BENCHMARKS.md`).
//!
//! ## Lifecycle
//! [`TokenManager::start`] spawns the background task; it stops when the last [`TokenManager`] handle is dropped
//! or on [`TokenManager::shutdown`], cancelling a request in flight and ending every [`Subscription`].
//!
//! ## Time
//! All timing uses tokio's clock, so tests run with paused time. A token's wall-clock expiry is turned into a tokio
//! instant once, on receipt, from its lifetime. The crate reads the system clock in one place (the `received_at`
//! handed to the response parser); clippy's `disallowed-methods` enforces it.
//!
//! ## Observability
//! `tracing` events: `token refreshed` (info), `token refresh scheduled` (debug), `token request failed; retrying`
//! (warn), `token request failed; retrying until a token arrives` (error, when a burst ends), `token expired before
//! a new one arrived` (warn). They carry the provider name, durations and the error, never a token.
//! [`TokenManager::status`] returns a [`ManagerStatus`] snapshot.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backoff;
mod clock;
mod hot;
mod manager;
mod options;
mod refresh;
mod subscription;
mod watch;

pub use clock::WallClock;
pub use manager::{ManagerStatus, TokenManager};
pub use options::{
    RefreshJitter, RetryOptions, RetryPredicate, TokenManagerOptions, default_is_retryable,
};
pub use subscription::{Subscription, TokenEvent};
pub use watch::{TokenGeneration, TokenWatch};
