//! What can be attached for push re-authentication ([`Attachable`]), and how each kind is re-authenticated.
//!
//! - A [`Client`] (centralized or clustered): `AUTH oid token`. On a cluster fred sends it to every primary node
//!   (`AUTH`, not `HELLO`: fred 10.1's clustered `hello()` drops its AUTH arguments), then the client's cluster
//!   backchannel (an idle connection fred keeps for `CLUSTER SLOTS`) is replaced by a fresh one through
//!   `sync_cluster`, so it is not left to expire.
//! - A connection blocked in `BLPOP`/`BRPOP`/`XREAD BLOCK` cannot run the `AUTH` until the blocking command
//!   returns. When the `AUTH` has waited `unblock_after`, the blocking command is interrupted with
//!   `CLIENT UNBLOCK <id> TIMEOUT`, sent from a small *control client* (one per deployment, shared by its attached
//!   clients: see [`crate::control`]). The application sees its blocking call return as if its timeout had
//!   elapsed (nil); the `AUTH` then runs.
//! - A client that fred is reconnecting is waited for (up to `auth_timeout`) rather than skipped: a cluster client
//!   keeps its healthy node connections through a reconnect, on the token they hold.
//! - A [`SubscriberClient`]: on RESP3, `AUTH` works while subscribed. On RESP2 the server refuses `AUTH` in
//!   subscribe mode, so the subscriber is reconnected (with the current token) and re-subscribed.
//! - A [`Pool`]: each of its clients, concurrently.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fred::clients::{Client, Pool, SubscriberClient};
use fred::error::{Error as FredError, ErrorKind};
use fred::interfaces::{
    AuthInterface, ClientInterface, ClientLike, ClusterInterface, EventInterface, PubsubInterface,
};
use fred::types::config::Server;
use fred::types::{ClientState, ClusterHash, CustomCommand, Key, RespVersion, Value};
use tokio::time::Instant;

use crate::control::{ControlClients, ControlSlot};
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

/// An attached target, with the control client it shares with the other clients of its deployment.
pub(crate) struct Target {
    attachable: Attachable,
    /// Interrupts its blocking commands (see [`crate::control`]).
    control: Arc<ControlSlot>,
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

impl Target {
    pub(crate) fn new(attachable: Attachable, controls: &ControlClients) -> Arc<Self> {
        let control = match &attachable {
            Attachable::Client(c) => controls.slot_for(c),
            Attachable::Subscriber(c) => controls.slot_for(c),
            Attachable::Pool(p) => controls.slot_for(p.next()),
        };
        Arc::new(Self {
            attachable,
            control,
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

    /// Re-authenticates every connection of the target (and its deployment's control client) with (`username`,
    /// `password`), the token of `generation`. `deadline` is when the connections' current token must be replaced
    /// at the latest (see [`ReauthOptions::reconnect_margin`]).
    pub(crate) async fn reauth(
        self: &Arc<Self>,
        generation: u64,
        username: &str,
        password: &str,
        deadline: Option<Instant>,
        options: &ReauthOptions,
        counters: &Arc<Counters>,
    ) -> Result<Outcome, FredError> {
        self.control.reauth(generation, username, password).await;
        match &self.attachable {
            Attachable::Client(client) => {
                self.auth_client(client, username, password, deadline, options, counters)
                    .await
            }
            Attachable::Subscriber(subscriber) => {
                if !connected_within(subscriber, options.auth_timeout).await {
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
        if !connected_within(client, options.auth_timeout).await {
            // Not connected: when it connects again, fred asks the credential provider for the current token for
            // its new connections, and its reconnect event makes the worker apply the newest token to them all.
            return Ok(Outcome::SKIPPED);
        }
        // On a cluster the idle `CLUSTER SLOTS` backchannel is replaced with one authenticated by the current
        // token (`sync_cluster`). Queued right behind the `AUTH` (fred's router runs its commands in order), not
        // after the worker has seen the `AUTH`'s reply: that wake-up is what a starved fan-out is short of.
        let sync = async {
            if client.is_clustered()
                && let Err(e) = client.sync_cluster().await
            {
                tracing::debug!(client = %client.id(), error = %e, "cluster sync after re-auth failed");
            }
        };
        let auth = client.auth(Some(username.to_owned()), password.to_owned());
        let (result, ()) = tokio::join!(
            biased;
            self.auth_or_unblock(client, auth, deadline, options, counters),
            sync
        );
        result
    }

    /// Waits for `auth` (an `AUTH` on `client`), interrupting a blocking command that holds the connection, or,
    /// where the access policy refuses `CLIENT UNBLOCK`, waiting for the blocking command to end by itself until
    /// `deadline` and reconnecting the client then.
    async fn auth_or_unblock<C>(
        &self,
        client: &C,
        auth: impl Future<Output = Result<(), FredError>>,
        deadline: Option<Instant>,
        options: &ReauthOptions,
        counters: &Counters,
    ) -> Result<Outcome, FredError>
    where
        C: ClientInterface + ClientLike,
    {
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
                let unblocked = if self.control.refused() {
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
        Ok(Outcome::REAUTHED)
    }

    /// Sends `CLIENT UNBLOCK <id> TIMEOUT` for each of `client`'s connections from the control client.
    async fn unblock<C: ClientInterface>(&self, client: &C) -> Result<Unblock, FredError> {
        let control = self.control.get(client).await?;
        let mut unblocked = 0u64;
        for (server, id) in client.connection_ids() {
            match unblock_on(&control, &server, id).await {
                Ok(n) => unblocked += u64::try_from(n).unwrap_or(0),
                Err(e) if is_noperm(&e) => {
                    // Never needed again: closed rather than kept re-authenticated.
                    if self.control.refuse().await {
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

/// Whether `client` is connected, or connects within `limit`: a client that fred is reconnecting (`Connecting`)
/// may keep its healthy connections (a cluster keeps the nodes that did not fail) on the token they hold, so the
/// newest token must be applied once it is back, not skipped.
async fn connected_within<C: ClientLike>(client: &C, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    loop {
        match client.state() {
            ClientState::Connected => return true,
            ClientState::Connecting if Instant::now() < until => {
                // Woken by fred's connect notification, or checked again shortly (the state can change between
                // the read above and the subscription inside `wait_for_connect`).
                let slice = until.min(Instant::now() + CONNECT_POLL);
                let _ = tokio::time::timeout_at(slice, client.wait_for_connect()).await;
            }
            _ => return false,
        }
    }
}

/// How often [`connected_within`] looks at a reconnecting client's state.
const CONNECT_POLL: Duration = Duration::from_millis(25);

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
