//! [`Subscriber`]: a pub/sub subscriber (RESP2 or RESP3) that moves to a new connection with every new token,
//! before the old token expires.
//!
//! redis-rs's pub/sub connection (`Client::get_async_pubsub`) takes no credentials provider, and on RESP2 the
//! server refuses `AUTH` while subscribed, so it cannot be re-authenticated in place. The subscriber does make
//! before break instead: on each new token it opens a connection authenticated with it and subscribes there;
//! once that subscription is confirmed it unsubscribes the old connection, forwards every message the old one
//! received before its unsubscribe was confirmed, and only then the new one's, and closes the old connection. No
//! message is lost and order is kept; a message published in the short overlap (between the new `SUBSCRIBE` and
//! the old `UNSUBSCRIBE`) is delivered twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use entraid_core::Token;
use entraid_manager::{Subscription, TokenEvent};
use futures_util::{FutureExt, StreamExt};
use redis::aio::{PubSubSink, PubSubStream};
use redis::{Client, Msg, RedisResult};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::EntraIdAuth;

/// What a [`Subscriber`] subscribes to.
#[derive(Debug, Clone, Default)]
struct Topics {
    channels: Vec<String>,
    patterns: Vec<String>,
}

#[derive(Debug, Default)]
struct SubscriberCounters {
    switches: AtomicU64,
    switch_failures: AtomicU64,
    connections_lost: AtomicU64,
}

/// A snapshot of a [`Subscriber`]'s counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriberStats {
    /// Moves to a connection authenticated with a newer token (make before break: nothing lost).
    pub switches: u64,
    /// Attempts to open and subscribe a new connection that failed (each is retried while the token is valid).
    pub switch_failures: u64,
    /// Connections that ended on their own (a network error, or the server closed them): the subscriber
    /// reconnected and re-subscribed, and messages published in between were not delivered.
    pub connections_lost: u64,
}

/// A pub/sub subscriber kept authenticated across token rotations by moving to a new connection with each new
/// token (see the module docs: at-least-once, in order, duplicates only in the switch overlap).
///
/// Dropping it closes its connection.
#[derive(Debug)]
pub struct Subscriber {
    messages: mpsc::UnboundedReceiver<Msg>,
    counters: Arc<SubscriberCounters>,
    task: JoinHandle<()>,
}

impl Subscriber {
    /// The next message; `None` once the token manager has stopped (and every message was received).
    pub async fn next_message(&mut self) -> Option<Msg> {
        self.messages.recv().await
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> SubscriberStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SubscriberStats {
            switches: get(&self.counters.switches),
            switch_failures: get(&self.counters.switch_failures),
            connections_lost: get(&self.counters.connections_lost),
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EntraIdAuth {
    /// Subscribes to `channels` and `patterns` on `client`'s server (its URL without credentials; RESP2 or RESP3,
    /// TLS as configured on `client`), authenticated with the current token, and keeps the subscription alive
    /// across rotations. Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// redis-rs's error when no token can be had (the manager's error is in it: [`token_error`](crate::token_error)),
    /// or the first connection or subscription fails.
    pub async fn subscriber(
        &self,
        client: &Client,
        channels: Vec<String>,
        patterns: Vec<String>,
    ) -> RedisResult<Subscriber> {
        let topics = Topics { channels, patterns };
        let tokens = self.manager().subscribe();
        let token = self
            .manager()
            .token()
            .await
            .map_err(|e| crate::error::no_token(&e))?;
        let first = connect(client, &token, &topics).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let counters = Arc::new(SubscriberCounters::default());
        let task = tokio::spawn(run(Run {
            client: client.clone(),
            topics,
            tokens,
            current: token,
            connection: first,
            tx,
            counters: Arc::clone(&counters),
        }));
        Ok(Subscriber {
            messages: rx,
            counters,
            task,
        })
    }
}

/// A connection authenticated as `token`, subscribed to `topics`.
async fn connect(
    client: &Client,
    token: &Token,
    topics: &Topics,
) -> RedisResult<(PubSubSink, PubSubStream)> {
    let info = client.get_connection_info().clone();
    let redis = info
        .redis_settings()
        .clone()
        .set_username(token.username())
        .set_password(token.access_token().expose_secret());
    let client = Client::open(info.set_redis_settings(redis))?;
    let mut pubsub = client.get_async_pubsub().await?;
    if !topics.channels.is_empty() {
        pubsub.subscribe(&topics.channels).await?;
    }
    if !topics.patterns.is_empty() {
        pubsub.psubscribe(&topics.patterns).await?;
    }
    Ok(pubsub.split())
}

struct Run {
    client: Client,
    topics: Topics,
    tokens: Subscription,
    /// The newest token (the one the next connection uses).
    current: Arc<Token>,
    connection: (PubSubSink, PubSubStream),
    tx: mpsc::UnboundedSender<Msg>,
    counters: Arc<SubscriberCounters>,
}

const RETRY_INITIAL: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);
const UNSUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);

async fn run(mut r: Run) {
    // A switch to `current` is due (after a new token, or a failed attempt), at this time.
    let mut switch_at: Option<tokio::time::Instant> = None;
    let mut delay = RETRY_INITIAL;
    loop {
        let due = async {
            match switch_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            message = r.connection.1.next() => match message {
                Some(message) => {
                    if r.tx.send(message).is_err() {
                        return; // the Subscriber was dropped
                    }
                }
                None => {
                    // The connection ended on its own: reconnect with the newest token as soon as possible.
                    r.counters.connections_lost.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("pub/sub connection lost; reconnecting and re-subscribing");
                    loop {
                        // Use the newest token the manager has delivered meanwhile.
                        while let Some(event) = r.tokens.try_recv() {
                            if let TokenEvent::Token(token) = event {
                                r.current = token;
                            }
                        }
                        match connect(&r.client, &r.current, &r.topics).await {
                            Ok(connection) => {
                                r.connection = connection;
                                break;
                            }
                            Err(error) => {
                                r.counters.switch_failures.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(%error, retry_in = ?delay, "pub/sub reconnect failed");
                                tokio::time::sleep(delay).await;
                                delay = (delay * 2).min(RETRY_MAX);
                            }
                        }
                    }
                    delay = RETRY_INITIAL;
                    switch_at = None;
                }
            },
            event = r.tokens.recv() => match event {
                Some(TokenEvent::Token(token)) => {
                    if token.access_token().expose_secret() == r.current.access_token().expose_secret() {
                        continue; // the token the connection already has (delivered after the first read)
                    }
                    r.current = token;
                    delay = RETRY_INITIAL;
                    switch_at = Some(tokio::time::Instant::now());
                }
                Some(_) => {}
                None => return, // the manager stopped
            },
            () = due => {
                match connect(&r.client, &r.current, &r.topics).await {
                    Ok(new) => {
                        let mut old = std::mem::replace(&mut r.connection, new);
                        unsubscribe(&mut old.0, &r.topics).await;
                        // Everything the old connection received before its unsubscribe was confirmed is queued
                        // now: forward it before anything from the new one.
                        while let Some(Some(message)) = old.1.next().now_or_never() {
                            if r.tx.send(message).is_err() {
                                return;
                            }
                        }
                        r.counters.switches.fetch_add(1, Ordering::Relaxed);
                        switch_at = None;
                    }
                    Err(error) => {
                        r.counters.switch_failures.fetch_add(1, Ordering::Relaxed);
                        if r.current.is_expired(SystemTime::now()) {
                            tracing::warn!(%error, "pub/sub switch failed and the token has expired; waiting for the next");
                            switch_at = None;
                        } else {
                            tracing::warn!(%error, retry_in = ?delay, "pub/sub switch to a new token failed");
                            switch_at = Some(tokio::time::Instant::now() + delay);
                            delay = (delay * 2).min(RETRY_MAX);
                        }
                    }
                }
            }
        }
    }
}

/// Unsubscribes the old connection from everything (best effort: it is closed right after either way).
async fn unsubscribe(sink: &mut PubSubSink, topics: &Topics) {
    let work = async {
        if !topics.channels.is_empty() {
            sink.unsubscribe(&topics.channels).await?;
        }
        if !topics.patterns.is_empty() {
            sink.punsubscribe(&topics.patterns).await?;
        }
        RedisResult::Ok(())
    };
    match tokio::time::timeout(UNSUBSCRIBE_TIMEOUT, work).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::debug!(%error, "unsubscribing the old pub/sub connection failed")
        }
        Err(_) => tracing::debug!("unsubscribing the old pub/sub connection timed out"),
    }
}
