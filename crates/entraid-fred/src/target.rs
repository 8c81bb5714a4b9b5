//! What can be attached for push re-authentication ([`Attachable`]), and how each kind is re-authenticated.
//!
//! - A [`Client`] (centralized or clustered): `AUTH oid token`. On a cluster fred sends it to every primary node
//!   (`AUTH`, not `HELLO`: fred 10.1's clustered `hello()` drops its AUTH arguments). A connection blocked in
//!   `BLPOP`/`BRPOP`/`XREAD BLOCK` cannot run the `AUTH` until the blocking command returns, so when the `AUTH`
//!   has waited `unblock_after` the blocking command is interrupted with `CLIENT UNBLOCK <id> TIMEOUT` through
//!   fred's backchannel: the application sees its blocking call return as a timeout (nil), and the `AUTH` runs.
//! - A [`SubscriberClient`]: on RESP3, `AUTH` works while subscribed. On RESP2 the server refuses `AUTH` in
//!   subscribe mode, so the subscriber is reconnected (with the current token) and re-subscribed.
//! - A [`Pool`]: each of its clients, as above.

use std::time::Duration;

use fred::clients::{Client, Pool, SubscriberClient};
use fred::error::{Error as FredError, ErrorKind};
use fred::interfaces::{AuthInterface, ClientInterface, ClientLike};
use fred::types::{ClientState, ClientUnblockFlag, RespVersion};

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

/// The outcome of re-authenticating one attached client.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// Clients that ran `AUTH`.
    pub(crate) reauthed: u64,
    /// Clients reconnected instead.
    pub(crate) reconnected: u64,
    /// Clients skipped because they are not connected (a reconnect fetches the current token anyway).
    pub(crate) skipped: u64,
}

impl Attachable {
    /// Describes the target for logs and errors.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Client(c) => format!("client {}", c.id()),
            Self::Subscriber(c) => format!("subscriber {}", c.id()),
            Self::Pool(p) => format!("pool of {}", p.size()),
        }
    }

    /// Re-authenticates every connection of the target with (`username`, `password`).
    pub(crate) async fn reauth(
        &self,
        username: &str,
        password: &str,
        options: &ReauthOptions,
        counters: &Counters,
    ) -> Result<Outcome, FredError> {
        match self {
            Self::Client(client) => {
                auth_client(client, username, password, options, counters).await
            }
            Self::Subscriber(subscriber) => {
                if !is_live(subscriber) {
                    return Ok(Outcome {
                        skipped: 1,
                        ..Outcome::default()
                    });
                }
                if subscriber.protocol_version() == RespVersion::RESP3 {
                    auth_client(subscriber, username, password, options, counters).await
                } else {
                    reconnect_subscriber(subscriber, options).await?;
                    Ok(Outcome {
                        reconnected: 1,
                        ..Outcome::default()
                    })
                }
            }
            Self::Pool(pool) => {
                let mut set = tokio::task::JoinSet::new();
                for client in pool.clients() {
                    let (client, username, password, options) = (
                        client.clone(),
                        username.to_owned(),
                        password.to_owned(),
                        options.clone(),
                    );
                    set.spawn(async move {
                        let counters = Counters::default();
                        let outcome =
                            auth_client(&client, &username, &password, &options, &counters).await;
                        (outcome, counters)
                    });
                }
                let mut total = Outcome::default();
                let mut first_error = None;
                while let Some(joined) = set.join_next().await {
                    let (outcome, local) = joined.map_err(|e| {
                        FredError::new(ErrorKind::Unknown, format!("re-auth task: {e}"))
                    })?;
                    counters.unblocks.fetch_add(
                        local.unblocks.load(std::sync::atomic::Ordering::Relaxed),
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    match outcome {
                        Ok(o) => {
                            total.reauthed += o.reauthed;
                            total.skipped += o.skipped;
                        }
                        Err(e) => first_error = first_error.or(Some(e)),
                    }
                }
                match first_error {
                    Some(e) => Err(e),
                    None => Ok(total),
                }
            }
        }
    }

    /// Reconnects every client of the target; their new connections AUTH with the current token.
    pub(crate) async fn reconnect(&self, options: &ReauthOptions) -> Result<(), FredError> {
        match self {
            Self::Client(client) => client.force_reconnection().await,
            Self::Subscriber(subscriber) => reconnect_subscriber(subscriber, options).await,
            Self::Pool(pool) => pool.force_reconnection().await,
        }
    }
}

fn is_live<C: ClientLike>(client: &C) -> bool {
    client.state() == ClientState::Connected
}

/// `AUTH` on one client, interrupting a blocking command that holds the connection.
async fn auth_client<C: AuthInterface + ClientInterface>(
    client: &C,
    username: &str,
    password: &str,
    options: &ReauthOptions,
    counters: &Counters,
) -> Result<Outcome, FredError> {
    if !is_live(client) {
        // Not connected: when it connects again, fred asks the credential provider for the current token.
        return Ok(Outcome {
            skipped: 1,
            ..Outcome::default()
        });
    }
    let auth = client.auth(Some(username.to_owned()), password.to_owned());
    tokio::pin!(auth);
    if let Ok(result) = tokio::time::timeout(options.unblock_after, &mut auth).await {
        return result.map(|()| Outcome {
            reauthed: 1,
            ..Outcome::default()
        });
    }
    // The AUTH is queued behind something: most likely a blocking command. Interrupt it as a timeout.
    // `unblock_self` fails at once, without a round trip, when fred tracks no blocked connection.
    if client
        .unblock_self(Some(ClientUnblockFlag::Timeout))
        .await
        .is_ok()
    {
        Counters::add(&counters.unblocks);
        tracing::debug!(client = %client.id(), "interrupted a blocking command so AUTH could run");
    }
    let remaining = options
        .auth_timeout
        .saturating_sub(options.unblock_after)
        .max(Duration::from_millis(1));
    match tokio::time::timeout(remaining, auth).await {
        Ok(result) => result.map(|()| Outcome {
            reauthed: 1,
            ..Outcome::default()
        }),
        Err(_) => Err(FredError::new(
            ErrorKind::Timeout,
            format!("AUTH timed out after {:?}", options.auth_timeout),
        )),
    }
}

/// Reconnects a subscriber and re-subscribes to everything it tracked.
async fn reconnect_subscriber(
    subscriber: &SubscriberClient,
    options: &ReauthOptions,
) -> Result<(), FredError> {
    let work = async {
        subscriber.force_reconnection().await?;
        subscriber.wait_for_connect().await?;
        subscriber.resubscribe_all().await
    };
    tokio::time::timeout(options.auth_timeout * 2, work)
        .await
        .map_err(|_| FredError::new(ErrorKind::Timeout, "subscriber reconnect timed out"))?
}
