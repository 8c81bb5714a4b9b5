//! What can be attached for push re-authentication ([`Attachable`]), and how each kind is re-authenticated.
//!
//! - A [`Client`] (centralized or clustered): `AUTH oid token`. On a cluster fred sends it to every primary node
//!   (`AUTH`, not `HELLO`: fred 10.1's clustered `hello()` drops its AUTH arguments), then the client's cluster
//!   backchannel (an idle connection fred keeps for `CLUSTER SLOTS`) is replaced by a fresh one through
//!   `sync_cluster`, so it is not left to expire.
//! - A connection blocked in `BLPOP`/`BRPOP`/`XREAD BLOCK` cannot run the `AUTH` until the blocking command
//!   returns. When the `AUTH` has waited `unblock_after`, the blocking command is interrupted with
//!   `CLIENT UNBLOCK <id> TIMEOUT`, sent from a small *control client* (built from the attached client's config,
//!   created the first time it is needed, and re-authenticated on every rotation like any attached client). The
//!   application sees its blocking call return as if its timeout had elapsed (nil); the `AUTH` then runs.
//! - A [`SubscriberClient`]: on RESP3, `AUTH` works while subscribed. On RESP2 the server refuses `AUTH` in
//!   subscribe mode, so the subscriber is reconnected (with the current token) and re-subscribed.
//! - A [`Pool`]: each of its clients, concurrently.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fred::clients::{Client, Pool, SubscriberClient};
use fred::error::{Error as FredError, ErrorKind};
use fred::interfaces::{
    AuthInterface, ClientInterface, ClientLike, ClusterInterface, EventInterface, PubsubInterface,
};
use fred::types::config::Server;
use fred::types::{Builder, ClientState, ClusterHash, CustomCommand, Key, RespVersion, Value};
use tokio::time::Instant;

use crate::options::ReauthOptions;
use crate::stats::Counters;

/// A fred client that [`EntraIdAuth::attach`](crate::EntraIdAuth::attach) keeps authenticated.
#[derive(Clone)]
#[non_exhaustive]
pub enum Attachable {
    /// A single (centralized or clustered) client.
    Client(Client),
    /// A pub/sub subscriber.
    Subscriber(SubscriberClient),
    /// A pool: each client in it.
    Pool(Pool),
}

impl std::fmt::Debug for Attachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Client(c) => f.debug_tuple("Client").field(&c.id()).finish(),
            Self::Subscriber(c) => f.debug_tuple("Subscriber").field(&c.id()).finish(),
            Self::Pool(p) => f.debug_tuple("Pool").field(&p.size()).finish(),
        }
    }
}

impl From<&Client> for Attachable {
    fn from(value: &Client) -> Self {
        Self::Client(value.clone())
    }
}

impl From<&SubscriberClient> for Attachable {
    fn from(value: &SubscriberClient) -> Self {
        Self::Subscriber(value.clone())
    }
}

impl From<&Pool> for Attachable {
    fn from(value: &Pool) -> Self {
        Self::Pool(value.clone())
    }
}

/// The outcome of re-authenticating one attached target.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// Clients that ran `AUTH`.
    pub(crate) reauthed: u64,
    /// Clients reconnected instead.
    pub(crate) reconnected: u64,
}

impl Outcome {
    const REAUTHED: Self = Self {
        reauthed: 1,
        reconnected: 0,
    };
    const RECONNECTED: Self = Self {
        reauthed: 0,
        reconnected: 1,
    };
    const SKIPPED: Self = Self {
        reauthed: 0,
        reconnected: 0,
    };
}

/// An attached target with its lazily created control client.
pub(crate) struct Target {
    attachable: Attachable,
    /// Created the first time a blocking command must be interrupted; replaced when it is no longer connected;
    /// dropped for good once the server refuses `CLIENT UNBLOCK`.
    control: tokio::sync::Mutex<Option<Client>>,
    /// The server refused `CLIENT UNBLOCK` (`NOPERM`: the identity's access policy, e.g. Azure's Data
    /// Contributor): blocked connections are reconnected before their token expires instead of interrupted.
    unblock_refused: AtomicBool,
    /// The pool members whose last re-authentication failed: only they are reconnected.
    failed_members: std::sync::Mutex<Vec<usize>>,
}

/// What interrupting a client's blocking commands achieved.
enum Unblock {
    /// This many blocking commands were interrupted (0: none was blocked).
    Interrupted(u64),
    /// The access policy refuses `CLIENT UNBLOCK`.
    Refused,
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(control) = self.control.get_mut().take() {
            close_in_background(control);
        }
    }
}

impl Target {
    pub(crate) fn new(attachable: Attachable) -> Arc<Self> {
        Arc::new(Self {
            attachable,
            control: tokio::sync::Mutex::new(None),
            unblock_refused: AtomicBool::new(false),
            failed_members: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Describes the target for logs and errors.
    pub(crate) fn describe(&self) -> String {
        match &self.attachable {
            Attachable::Client(c) => format!("client {}", c.id()),
            Attachable::Subscriber(c) => format!("subscriber {}", c.id()),
            Attachable::Pool(p) => format!("pool of {}", p.size()),
        }
    }

    /// Re-authenticates every connection of the target (and its control client) with (`username`, `password`).
    /// `deadline` is when the connections' current token must be replaced at the latest (see
    /// [`ReauthOptions::reconnect_margin`]).
    pub(crate) async fn reauth(
        self: &Arc<Self>,
        username: &str,
        password: &str,
        deadline: Option<Instant>,
        options: &ReauthOptions,
        counters: &Arc<Counters>,
    ) -> Result<Outcome, FredError> {
        self.reauth_control(username, password).await;
        match &self.attachable {
            Attachable::Client(client) => {
                self.auth_client(client, username, password, deadline, options, counters)
                    .await
            }
            Attachable::Subscriber(subscriber) => {
                if !is_live(subscriber) {
                    Ok(Outcome::SKIPPED)
                } else if subscriber.protocol_version() == RespVersion::RESP3 {
                    self.auth_client(subscriber, username, password, deadline, options, counters)
                        .await
                } else {
                    reauth_resp2_subscriber(subscriber, username, password, options).await?;
                    Ok(Outcome::REAUTHED)
                }
            }
            Attachable::Pool(pool) => {
                let mut set = tokio::task::JoinSet::new();
                for index in 0..pool.clients().len() {
                    let (target, username, password) =
                        (self.clone(), username.to_owned(), password.to_owned());
                    let (options, counters) = (options.clone(), counters.clone());
                    set.spawn(async move {
                        let Attachable::Pool(pool) = &target.attachable else {
                            return (index, Ok(Outcome::SKIPPED));
                        };
                        let client = &pool.clients()[index];
                        let outcome = target
                            .auth_client(
                                client, &username, &password, deadline, &options, &counters,
                            )
                            .await;
                        (index, outcome)
                    });
                }
                let mut total = Outcome::SKIPPED;
                let mut first_error = None;
                let mut failed = Vec::new();
                while let Some(joined) = set.join_next().await {
                    match joined {
                        Ok((_, Ok(outcome))) => {
                            total.reauthed += outcome.reauthed;
                            total.reconnected += outcome.reconnected;
                        }
                        Ok((index, Err(e))) => {
                            failed.push(index);
                            first_error = first_error.or(Some(e));
                        }
                        Err(e) => {
                            first_error = first_error
                                .or(Some(FredError::new(ErrorKind::Unknown, e.to_string())));
                        }
                    }
                }
                *self
                    .failed_members
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = failed;
                first_error.map_or(Ok(total), Err)
            }
        }
    }

    /// Every fred client's reconnect events (`reconnect_rx`): one receiver per client (a pool's members each).
    pub(crate) fn reconnect_events(&self) -> Vec<tokio::sync::broadcast::Receiver<Server>> {
        match &self.attachable {
            Attachable::Client(client) => vec![client.reconnect_rx()],
            Attachable::Subscriber(subscriber) => vec![subscriber.reconnect_rx()],
            Attachable::Pool(pool) => pool.clients().iter().map(|c| c.reconnect_rx()).collect(),
        }
    }

    /// Reconnects every client of the target; their new connections AUTH with the current token.
    pub(crate) async fn reconnect(&self, options: &ReauthOptions) -> Result<(), FredError> {
        match &self.attachable {
            Attachable::Client(client) => client.force_reconnection().await,
            Attachable::Subscriber(subscriber) => reconnect_subscriber(subscriber, options).await,
            Attachable::Pool(pool) => {
                // Only the members that failed; all of them if none is known to have (a panic, a timeout).
                let failed = std::mem::take(
                    &mut *self
                        .failed_members
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()),
                );
                if failed.is_empty() {
                    return pool.force_reconnection().await;
                }
                for index in failed {
                    if let Some(member) = pool.clients().get(index) {
                        member.force_reconnection().await?;
                    }
                }
                Ok(())
            }
        }
    }

    /// `AUTH` on one client, interrupting a blocking command that holds the connection, or, where the access
    /// policy refuses `CLIENT UNBLOCK`, waiting for the blocking command to end by itself until `deadline` and
    /// reconnecting the client then.
    async fn auth_client<C>(
        &self,
        client: &C,
        username: &str,
        password: &str,
        deadline: Option<Instant>,
        options: &ReauthOptions,
        counters: &Counters,
    ) -> Result<Outcome, FredError>
    where
        C: AuthInterface + ClientInterface + ClusterInterface + ClientLike,
    {
        if !is_live(client) {
            // Not connected: when it connects again, fred asks the credential provider for the current token.
            return Ok(Outcome::SKIPPED);
        }
        let auth = client.auth(Some(username.to_owned()), password.to_owned());
        tokio::pin!(auth);
        let timed_out = || {
            FredError::new(
                ErrorKind::Timeout,
                format!("AUTH timed out after {:?}", options.auth_timeout),
            )
        };
        let result = match tokio::time::timeout(options.unblock_after, &mut auth).await {
            Ok(result) => result,
            Err(_) => {
                // The AUTH is queued behind something, most likely a blocking command: interrupt it.
                let unblocked = if self.unblock_refused.load(Ordering::Relaxed) {
                    Unblock::Refused
                } else {
                    match self.unblock(client).await {
                        Ok(outcome) => outcome,
                        Err(e) => {
                            tracing::debug!(client = %client.id(), error = %e, "CLIENT UNBLOCK failed");
                            Unblock::Interrupted(0)
                        }
                    }
                };
                match unblocked {
                    Unblock::Interrupted(n) => {
                        if n > 0 {
                            counters.unblocks.fetch_add(n, Ordering::Relaxed);
                            tracing::debug!(client = %client.id(), "interrupted a blocking command so AUTH could run");
                        }
                        let remaining = options.auth_timeout.saturating_sub(options.unblock_after);
                        tokio::time::timeout(remaining.max(Duration::from_millis(1)), auth)
                            .await
                            .unwrap_or_else(|_| Err(timed_out()))
                    }
                    Unblock::Refused if !options.reconnect_blocked => {
                        let remaining = options.auth_timeout.saturating_sub(options.unblock_after);
                        tokio::time::timeout(remaining.max(Duration::from_millis(1)), auth)
                            .await
                            .unwrap_or_else(|_| Err(timed_out()))
                    }
                    Unblock::Refused => {
                        // The blocking command may end by itself (its own timeout, an item): the AUTH then runs.
                        // Only when the current token would expire first is the client reconnected.
                        let wait_until =
                            deadline.unwrap_or_else(|| Instant::now() + options.auth_timeout);
                        match tokio::time::timeout_at(wait_until, &mut auth).await {
                            Ok(result) => result,
                            Err(_) => {
                                tracing::debug!(client = %client.id(),
                                    "AUTH still waits behind a blocking command and CLIENT UNBLOCK is refused: reconnecting");
                                tokio::time::timeout(
                                    options
                                        .auth_timeout
                                        .saturating_mul(RECONNECT_TIMEOUT_FACTOR),
                                    client.force_reconnection(),
                                )
                                .await
                                .unwrap_or_else(|_| Err(timed_out()))?;
                                counters.blocked_reconnects.fetch_add(1, Ordering::Relaxed);
                                return Ok(Outcome::RECONNECTED);
                            }
                        }
                    }
                }
            }
        };
        result?;
        if client.is_clustered() {
            // Replace the idle CLUSTER SLOTS backchannel with one authenticated by the current token.
            if let Err(e) = client.sync_cluster().await {
                tracing::debug!(client = %client.id(), error = %e, "cluster sync after re-auth failed");
            }
        }
        Ok(Outcome::REAUTHED)
    }

    /// Sends `CLIENT UNBLOCK <id> TIMEOUT` for each of `client`'s connections from the control client.
    async fn unblock<C: ClientInterface>(&self, client: &C) -> Result<Unblock, FredError> {
        let control = self.control_for(client).await?;
        let mut unblocked = 0u64;
        for (server, id) in client.connection_ids() {
            match unblock_on(&control, &server, id).await {
                Ok(n) => unblocked += u64::try_from(n).unwrap_or(0),
                Err(e) if is_noperm(&e) => {
                    // Never needed again: close it rather than keep re-authenticating it.
                    if let Some(control) = self.control.lock().await.take() {
                        close_in_background(control);
                    }
                    if !self.unblock_refused.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            client = %client.id(),
                            "the server refused CLIENT UNBLOCK (NOPERM): the identity's data access policy (e.g. \
                             Azure's Data Contributor) does not allow it, so a connection blocked in BLPOP/XREAD \
                             BLOCK is reconnected shortly before its token expires instead of interrupted. To \
                             interrupt instead, give the identity a custom data access policy that adds \
                             `+client|unblock`, e.g. `+@all -@dangerous +cluster|info +cluster|nodes \
                             +cluster|slots +client|unblock allkeys`"
                        );
                    }
                    return Ok(Unblock::Refused);
                }
                // The loop goes on: a server that left the cluster (fred keeps connection ids of removed nodes)
                // must not keep the others blocked.
                Err(e) => {
                    tracing::debug!(client = %client.id(), %server, error = %e, "CLIENT UNBLOCK failed on one server");
                }
            }
        }
        Ok(Unblock::Interrupted(unblocked))
    }

    /// The control client, connected: the existing one, or a new one built from `client`'s configuration (with its
    /// reconnect policy) when there is none or it is no longer connected.
    async fn control_for<C: ClientLike>(&self, client: &C) -> Result<Client, FredError> {
        let mut slot = self.control.lock().await;
        if let Some(control) = slot.as_ref().filter(|c| is_live(*c)) {
            return Ok(control.clone());
        }
        if let Some(dead) = slot.take() {
            close_in_background(dead);
        }
        let mut builder = Builder::from_config(client.client_config());
        builder.set_connection_config(client.connection_config().clone());
        builder.set_performance_config(client.perf_config());
        if let Some(policy) = client.client_reconnect_policy() {
            builder.set_policy(policy);
        }
        let control = builder.build()?;
        control.init().await?;
        *slot = Some(control.clone());
        Ok(control)
    }

    /// Re-authenticates the control client like any client (`AUTH`, then a fresh cluster backchannel). A control
    /// client that fails is closed; the next interruption builds a new one.
    async fn reauth_control(&self, username: &str, password: &str) {
        let Some(control) = self.control.lock().await.clone() else {
            return;
        };
        if !is_live(&control) {
            return;
        }
        let result = async {
            control
                .auth(Some(username.to_owned()), password.to_owned())
                .await?;
            if control.is_clustered() {
                control.sync_cluster().await?;
            }
            Ok::<_, FredError>(())
        }
        .await;
        if let Err(e) = result {
            tracing::debug!(error = %e, "re-authenticating the control client failed: closing it");
            let mut slot = self.control.lock().await;
            if slot.as_ref().is_some_and(|c| c.id() == control.id()) {
                slot.take();
            }
            close_in_background(control);
        }
    }
}

/// Closes a client without waiting for it.
fn close_in_background(client: Client) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let _ = client.quit().await;
        });
    }
}

/// How many `auth_timeout`s a reconnect may take.
pub(crate) const RECONNECT_TIMEOUT_FACTOR: u32 = 3;

/// Whether fred reports the server's `NOPERM` (a command the user's ACL rules refuse).
fn is_noperm(error: &FredError) -> bool {
    error.details().starts_with("NOPERM")
}

/// `CLIENT UNBLOCK <id> TIMEOUT` on the control client's own connection to `server`.
///
/// Sent as a custom command on purpose: fred's `client_unblock` goes through its backchannel, an extra
/// connection that nothing would re-authenticate and that the server would close at its token's expiry.
async fn unblock_on(control: &Client, server: &Server, id: i64) -> Result<i64, FredError> {
    let command = CustomCommand::new_static("CLIENT", ClusterHash::Random, false);
    let args: Vec<Value> = vec!["UNBLOCK".into(), id.into(), "TIMEOUT".into()];
    if control.is_clustered() {
        control
            .with_cluster_node(server.clone())
            .custom(command, args)
            .await
    } else {
        control.custom(command, args).await
    }
}

fn is_live<C: ClientLike>(client: &C) -> bool {
    client.state() == ClientState::Connected
}

/// Re-authenticates a RESP2 subscriber, which the server refuses `AUTH` while it is subscribed: unsubscribes from
/// everything it tracks, runs `AUTH` on every connection, and subscribes again (to what it tracked before, and to
/// anything subscribed meanwhile). Messages published between the unsubscribe and the subscribe (a few round
/// trips) are not delivered. No connection is closed, so this works on a cluster too, where fred's
/// `force_reconnection` keeps healthy node connections as they are.
async fn reauth_resp2_subscriber(
    subscriber: &SubscriberClient,
    username: &str,
    password: &str,
    options: &ReauthOptions,
) -> Result<(), FredError> {
    let channels = subscriber.tracked_channels();
    let patterns = subscriber.tracked_patterns();
    let shard_channels = subscriber.tracked_shard_channels();
    if channels.is_empty() && patterns.is_empty() && shard_channels.is_empty() {
        // Not subscribed (yet): a plain AUTH works, and nothing must be unsubscribed under the application's feet.
        return subscriber
            .auth(Some(username.to_owned()), password.to_owned())
            .await;
    }
    let work = async {
        let unsubscribed = subscriber.unsubscribe_all().await;
        let auth = match unsubscribed {
            Ok(()) => {
                subscriber
                    .auth(Some(username.to_owned()), password.to_owned())
                    .await
            }
            Err(e) => Err(e),
        };
        // Subscribe again whatever happened, so that no subscription is lost.
        let resubscribed = resubscribe(
            subscriber,
            channels
                .union(&subscriber.tracked_channels())
                .cloned()
                .map(Key::from)
                .collect(),
            patterns
                .union(&subscriber.tracked_patterns())
                .cloned()
                .map(Key::from)
                .collect(),
            shard_channels
                .union(&subscriber.tracked_shard_channels())
                .cloned()
                .map(Key::from)
                .collect(),
        )
        .await;
        if auth.is_ok() && subscriber.is_clustered() {
            // Like any clustered client: replace the idle CLUSTER SLOTS backchannel too.
            if let Err(e) = subscriber.sync_cluster().await {
                tracing::debug!(client = %subscriber.id(), error = %e, "cluster sync after re-auth failed");
            }
        }
        auth.and(resubscribed)
    };
    let limit = options
        .auth_timeout
        .saturating_mul(RECONNECT_TIMEOUT_FACTOR);
    tokio::time::timeout(limit, work).await.map_err(|_| {
        FredError::new(
            ErrorKind::Timeout,
            format!("re-authenticating a RESP2 subscriber timed out after {limit:?}"),
        )
    })?
}

/// Subscribes `subscriber` to these channels, patterns and shard channels (shard channels grouped by hash slot, as
/// `SSUBSCRIBE` needs).
async fn resubscribe(
    subscriber: &SubscriberClient,
    channels: Vec<Key>,
    patterns: Vec<Key>,
    shard_channels: Vec<Key>,
) -> Result<(), FredError> {
    if !channels.is_empty() {
        subscriber.subscribe(channels).await?;
    }
    if !patterns.is_empty() {
        subscriber.psubscribe(patterns).await?;
    }
    let mut by_slot: std::collections::BTreeMap<u16, Vec<Key>> = std::collections::BTreeMap::new();
    for channel in shard_channels {
        by_slot
            .entry(fred::util::redis_keyslot(channel.as_bytes()))
            .or_default()
            .push(channel);
    }
    for (_, group) in by_slot {
        subscriber.ssubscribe(group).await?;
    }
    Ok(())
}

/// Reconnects a subscriber and re-subscribes to everything it tracked.
async fn reconnect_subscriber(
    subscriber: &SubscriberClient,
    options: &ReauthOptions,
) -> Result<(), FredError> {
    let work = async {
        subscriber.force_reconnection().await?;
        subscriber.wait_for_connect().await?;
        // Not fred's `resubscribe_all`: fred 10.1 sends it `PSUBSCRIBE` (and `SUBSCRIBE`) even with nothing to
        // subscribe, and the server's error to that empty command is taken as the reply of the connection's next
        // command (an AUTH, or the application's).
        resubscribe(
            subscriber,
            subscriber
                .tracked_channels()
                .into_iter()
                .map(Key::from)
                .collect(),
            subscriber
                .tracked_patterns()
                .into_iter()
                .map(Key::from)
                .collect(),
            subscriber
                .tracked_shard_channels()
                .into_iter()
                .map(Key::from)
                .collect(),
        )
        .await
    };
    tokio::time::timeout(options.auth_timeout * 2, work)
        .await
        .map_err(|_| FredError::new(ErrorKind::Timeout, "subscriber reconnect timed out"))?
}
