//! The credential stream redis-rs reads: the current token first, then every new token from the manager.
//!
//! redis-rs polls a stream's next item only after it has used the previous one: the handshake takes the first
//! item and drops the stream; the connection's re-auth task sends `AUTH` with each item and polls again only when
//! that `AUTH` succeeded (after a failure it stops and drops the stream). So a poll after an item means its
//! `AUTH` went through, and a drop with a new token in flight means the task stopped: both are counted.

use std::pin::Pin;
use std::sync::Arc;

use entraid_core::Token;
use entraid_manager::{Subscription, TokenEvent, TokenManager};
use futures_util::Stream;
use redis::{BasicAuth, RedisResult};

use crate::stats::Counters;

/// The boxed stream type redis-rs's `StreamingCredentialsProvider::subscribe` returns.
pub(crate) type CredentialStream =
    Pin<Box<dyn Stream<Item = RedisResult<BasicAuth>> + Send + 'static>>;

/// One stream's state; dropping it (with the stream) records how it ended.
struct State {
    manager: TokenManager,
    /// Subscribed before the first token is read, so no token delivered after it is missed.
    subscription: Subscription,
    /// The last token handed out on this stream (so a token is never sent twice on one stream).
    last: Option<Arc<Token>>,
    /// Whether the first item (the handshake's, or the task's first) has been produced.
    started: bool,
    /// A token after the first was handed out and the stream has not been polled since.
    new_token_in_flight: bool,
    counters: Arc<Counters>,
}

impl Drop for State {
    fn drop(&mut self) {
        Counters::bump(&self.counters.streams_closed);
        if self.new_token_in_flight {
            Counters::bump(&self.counters.reauth_tasks_stopped);
            tracing::warn!(
                "redis-rs stopped re-authenticating a connection (its AUTH with a new Entra ID token failed, or \
                 the connection closed during it)"
            );
        }
    }
}

fn credentials(token: &Token) -> BasicAuth {
    BasicAuth::new(
        token.username().to_owned(),
        token.access_token().expose_secret().to_owned(),
    )
}

fn same_token(a: &Token, b: &Token) -> bool {
    a.access_token().expose_secret() == b.access_token().expose_secret()
}

impl State {
    /// The next credentials, or `None` once the manager has stopped.
    async fn next(&mut self) -> Option<RedisResult<BasicAuth>> {
        if self.new_token_in_flight {
            // Polled again after a new token: redis-rs's AUTH with it succeeded.
            self.new_token_in_flight = false;
            Counters::bump(&self.counters.reauths_confirmed);
        }
        if !self.started {
            self.started = true;
            return Some(match self.manager.token().await {
                Ok(token) => {
                    let auth = credentials(&token);
                    self.last = Some(token);
                    Counters::bump(&self.counters.credentials_sent);
                    Ok(auth)
                }
                // The manager's errors never carry a secret. After this, the stream waits for the next token
                // (redis-rs's re-auth task logs an error item and polls again).
                Err(e) => Err(crate::error::no_token(&e)),
            });
        }
        loop {
            match self.subscription.recv().await? {
                TokenEvent::Token(token) => {
                    if self
                        .last
                        .as_deref()
                        .is_some_and(|last| same_token(last, &token))
                    {
                        continue;
                    }
                    let auth = credentials(&token);
                    self.last = Some(token);
                    self.new_token_in_flight = true;
                    Counters::bump(&self.counters.credentials_sent);
                    return Some(Ok(auth));
                }
                // A failed refresh: the current token stays valid and the manager retries; nothing to send.
                _ => continue,
            }
        }
    }
}

/// A new stream over `manager`.
pub(crate) fn credential_stream(
    manager: &TokenManager,
    counters: &Arc<Counters>,
) -> CredentialStream {
    Counters::bump(&counters.streams_opened);
    let state = State {
        subscription: manager.subscribe(),
        manager: manager.clone(),
        last: None,
        started: false,
        new_token_in_flight: false,
        counters: Arc::clone(counters),
    };
    Box::pin(futures_util::stream::unfold(
        state,
        |mut state| async move {
            let item = state.next().await?;
            Some((item, state))
        },
    ))
}
