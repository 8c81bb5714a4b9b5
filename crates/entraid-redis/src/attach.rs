//! [`EntraIdAuth::attach`]: the adapter's own re-authentication of a connection, with retries.
//!
//! redis-rs's re-auth task sends one `AUTH` per new token and stops for good after the first failure (a refused
//! or timed-out `AUTH`), leaving the connection to be closed when its token expires. An attachment sends `AUTH`
//! on the connection itself for every new token and retries a failed one (exponential backoff) until it succeeds,
//! a newer token arrives, or the token expires. On a `ConnectionManager` the `AUTH` goes to whichever connection
//! it holds, so a reconnected one is covered too; on a cluster connection it goes to every node.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use entraid_core::Token;
use entraid_manager::{Subscription, TokenEvent};
use sealed::Sealed;
use tokio::task::JoinHandle;

use crate::EntraIdAuth;
use crate::stats::Counters;

mod sealed {
    use futures_util::future::BoxFuture;
    use redis::{Cmd, RedisResult};

    /// How one kind of handle sends the `AUTH` (not public API).
    pub trait Sealed {
        /// Sends `auth` where it re-authenticates every connection behind the handle.
        fn send_auth<'a>(&'a mut self, auth: &'a Cmd) -> BoxFuture<'a, RedisResult<()>>;
    }

    impl Sealed for redis::aio::MultiplexedConnection {
        fn send_auth<'a>(&'a mut self, auth: &'a Cmd) -> BoxFuture<'a, RedisResult<()>> {
            Box::pin(auth.query_async::<()>(self))
        }
    }

    #[cfg(feature = "connection-manager")]
    impl Sealed for redis::aio::ConnectionManager {
        fn send_auth<'a>(&'a mut self, auth: &'a Cmd) -> BoxFuture<'a, RedisResult<()>> {
            Box::pin(auth.query_async::<()>(self))
        }
    }

    #[cfg(feature = "cluster-async")]
    impl Sealed for redis::cluster_async::ClusterConnection {
        /// Every node (primaries and replicas the client is connected to), all of which must succeed.
        fn send_auth<'a>(&'a mut self, auth: &'a Cmd) -> BoxFuture<'a, RedisResult<()>> {
            use redis::cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo};
            Box::pin(async move {
                let routing = RoutingInfo::MultiNode((
                    MultipleNodeRoutingInfo::AllNodes,
                    Some(ResponsePolicy::AllSucceeded),
                ));
                self.route_command(auth.clone(), routing)
                    .await?
                    .extract_error()
                    .map(drop)
            })
        }
    }
}

/// A connection handle [`EntraIdAuth::attach`] can re-authenticate: redis-rs's `MultiplexedConnection`, and with
/// the `connection-manager` feature `ConnectionManager`, with the `cluster-async` feature the async
/// `ClusterConnection` (the `AUTH` goes to every node, and fails unless all succeed).
pub trait Attachable: Clone + Send + Sync + 'static + Sealed {}

impl Attachable for redis::aio::MultiplexedConnection {}
#[cfg(feature = "connection-manager")]
impl Attachable for redis::aio::ConnectionManager {}
#[cfg(feature = "cluster-async")]
impl Attachable for redis::cluster_async::ClusterConnection {}

/// How an attachment re-authenticates. Every field has a documented default (`AttachOptions::default()`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AttachOptions {
    /// How long one `AUTH` may take before it counts as failed (and is retried). Default: 5 s.
    pub auth_timeout: Duration,
    /// The first delay before retrying a failed `AUTH`; it doubles up to `retry_max_delay`. Default: 100 ms.
    pub retry_initial_delay: Duration,
    /// The longest delay between attempts. Default: 2 s.
    pub retry_max_delay: Duration,
}

impl Default for AttachOptions {
    fn default() -> Self {
        Self {
            auth_timeout: Duration::from_secs(5),
            retry_initial_delay: Duration::from_millis(100),
            retry_max_delay: Duration::from_secs(2),
        }
    }
}

/// A running attachment: the connection is re-authenticated for as long as this lives (or, after
/// [`Attachment::forever`], for as long as the token manager runs).
#[derive(Debug)]
#[must_use = "dropping an Attachment stops it; call `.forever()` to keep it for the manager's lifetime"]
pub struct Attachment {
    task: Option<JoinHandle<()>>,
}

impl Attachment {
    /// Keeps the attachment running until the token manager stops.
    pub fn forever(mut self) {
        self.task.take();
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl EntraIdAuth {
    /// Re-authenticates `connection` (a clone of the application's handle) with every new token, retrying failed
    /// `AUTH`s, with [`AttachOptions::default`]. Must be called inside a tokio runtime.
    ///
    /// This is in addition to redis-rs's own re-auth task (each rotation then sends two `AUTH`s on the
    /// connection); it is what keeps the connection alive after that task has stopped.
    ///
    /// The attachment holds its clone of the handle, which keeps the connection open: drop the [`Attachment`]
    /// when the application is done with the connection. After [`Attachment::forever`] the connection stays
    /// open for as long as the token manager runs.
    pub fn attach<C: Attachable>(&self, connection: C) -> Attachment {
        self.attach_with(connection, AttachOptions::default())
    }

    /// [`EntraIdAuth::attach`] with `options`.
    pub fn attach_with<C: Attachable>(&self, connection: C, options: AttachOptions) -> Attachment {
        let subscription = self.manager().subscribe();
        let counters = Arc::clone(self.counters());
        Attachment {
            task: Some(tokio::spawn(run(
                connection,
                subscription,
                counters,
                options,
            ))),
        }
    }
}

/// The next token from the manager, or `None` once it has stopped.
async fn next_token(subscription: &mut Subscription) -> Option<Arc<Token>> {
    loop {
        if let TokenEvent::Token(token) = subscription.recv().await? {
            return Some(token);
        }
    }
}

async fn run<C: Attachable>(
    mut connection: C,
    mut subscription: Subscription,
    counters: Arc<Counters>,
    options: AttachOptions,
) {
    let mut pending: Option<Arc<Token>> = None;
    loop {
        let token = match pending.take() {
            Some(token) => token,
            None => match next_token(&mut subscription).await {
                Some(token) => token,
                None => return,
            },
        };
        let mut auth = redis::cmd("AUTH");
        auth.arg(token.username())
            .arg(token.access_token().expose_secret());
        let mut delay = options.retry_initial_delay;
        loop {
            match tokio::time::timeout(options.auth_timeout, connection.send_auth(&auth)).await {
                Ok(Ok(())) => {
                    Counters::bump(&counters.attached_reauths_ok);
                    break;
                }
                // redis-rs's errors carry the server's message (`WRONGPASS ...`), never the command's arguments.
                Ok(Err(error)) => {
                    Counters::bump(&counters.attached_reauths_failed);
                    tracing::warn!(%error, retry_in = ?delay, "re-authentication with a new Entra ID token failed");
                }
                Err(_) => {
                    Counters::bump(&counters.attached_reauths_failed);
                    tracing::warn!(timeout = ?options.auth_timeout, retry_in = ?delay, "re-authentication with a new Entra ID token timed out");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                next = next_token(&mut subscription) => {
                    match next {
                        Some(newer) => pending = Some(newer),
                        None => return,
                    }
                    break;
                }
            }
            if token.is_expired(SystemTime::now()) {
                tracing::warn!("gave up re-authenticating with an expired Entra ID token");
                break;
            }
            delay = (delay * 2).min(options.retry_max_delay);
        }
    }
}
