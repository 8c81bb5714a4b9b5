//! [`Gateway`]: a RESP-aware TCP (or TLS) proxy in front of one redis-server that enforces Entra ID token expiry
//! the way Azure Managed Redis does.
//!
//! # What it does
//!
//! The gateway reads the client's requests (RESP multibulk or inline, pipelined, split anywhere) and forwards them
//! to its backend connection. Replies come back byte for byte; the gateway never answers on its own, so the order
//! of replies and every error text are the real server's.
//!
//! Requests that carry credentials are rewritten before forwarding:
//!
//! - `AUTH user token` (and `AUTH token`, user `default`) and `HELLO <proto> ... AUTH user token ...`: the gateway
//!   verifies the token's RS256 signature with its [`JwtVerifier`](crate::keys::JwtVerifier) (by default the emulator's key), `aud` (by
//!   default `https://redis.azure.com`), `exp` > now, `nbf` <= now (plus [`GatewayOptions::nbf_leeway`]) and that
//!   `user` equals the token's `oid`. A valid token is replaced by the backend's own credentials, so the backend
//!   answers `+OK` (or the `HELLO` reply, in the requested protocol). An invalid token is replaced by a user the
//!   backend does not know, so the backend answers `-WRONGPASS invalid username-password pair or user is
//!   disabled.`, counted at once in [`GatewayStats::auth_failed`], and the connection keeps its previous state.
//!   Tokens never reach the backend.
//! - The backend connection is not authenticated until the client authenticates, so commands before a successful
//!   AUTH get the backend's own `-NOAUTH Authentication required.` (and `HELLO 3` without AUTH its own `NOAUTH`
//!   text), and `RESET` really de-authenticates.
//!
//! At the deadline (the current token's `exp`) the gateway closes the connection (client and backend sides),
//! counted as "closed by expiry" with the user and the connection's age, unless a newer valid AUTH moved the
//! deadline first. The deadline is measured on tokio's clock: `deadline = Instant::now() + (exp -
//! SystemTime::now())`.
//!
//! # When a re-authentication takes effect
//!
//! Like redis-server, which runs a connection's commands one after the other: a valid `AUTH` (or `HELLO ...
//! AUTH`, or a `RESET`) changes the connection's user, deadline, counters ([`GatewayStats::auth_ok`],
//! [`GatewayStats::reauths`]) and protocol **when the server's reply to it arrives**, not when the gateway reads
//! the request, and only if that reply is a success (`+OK`, the `HELLO` map or array). So:
//!
//! - On a connection blocked in `BLPOP key 0` (or `BRPOP`, `BLMOVE`, `BZPOPMIN`, `XREAD ... BLOCK`, `WAIT`, ...)
//!   an `AUTH` written behind the blocked command does nothing until the blocking command returns and the server
//!   runs the `AUTH`: a client that only writes it is still closed at the old token's expiry. Interrupting the
//!   blocking command (`CLIENT UNBLOCK <id> TIMEOUT` from another connection) lets it run. If the new token has
//!   expired by the time its `AUTH` runs, the connection is closed at once.
//! - Inside `MULTI`, an `AUTH` is queued (`+QUEUED`) and takes effect when the `EXEC` reply arrives and is an
//!   array; after `DISCARD`, an `EXECABORT` error or a `WATCH` abort (a null) it never does. A transaction that is
//!   never executed leaves the deadline where it was.
//! - Pipelining is fine: the gateway keeps, per connection, a queue of what it expects back for the requests it
//!   forwarded (runs of ordinary replies, and the credential changes waiting for theirs), and counts the replies on
//!   the way back. Replies are relayed as they arrive, each piece scanned and written at once (bulk data is
//!   skipped by its length, never buffered or searched).
//!
//! Counting replies needs to know which frames are replies:
//!
//! - RESP3 pushes (`>`: pub/sub messages, client-tracking invalidations, and the `(P|S)SUBSCRIBE` /
//!   `(P|S)UNSUBSCRIBE` confirmations) are not replies. A subscription command outside `MULTI` is answered by
//!   its confirmations, one per argument (an unsubscribe from everything: until none of that type is left, or the
//!   one confirmation for none), or instead by one error (wrong arity, `CROSSSLOT`, `MOVED`). `PING` in RESP3
//!   subscriber mode replies normally. RESP3 attributes (`|`) are part of the reply they precede.
//! - RESP2 subscriber mode (chosen: followed, not abandoned): confirmations and messages are arrays. While the
//!   connection is subscribed, or a subscription command is waiting for its confirmations, an array whose first
//!   element is `subscribe`, `unsubscribe`, `psubscribe`, `punsubscribe`, `ssubscribe` or `sunsubscribe` is a
//!   confirmation and one whose first element is `message`, `pmessage` or `smessage` is a message; in that state
//!   every other reply the server can send (errors, `PING`'s `["pong", ...]`, `+OK` for `QUIT`, `+RESET`) looks
//!   different. The number of subscriptions comes from the counts in the confirmations. redis-server refuses
//!   `AUTH` and `HELLO` in RESP2 subscriber mode (`-ERR Can't execute 'auth': only (P|S)SUBSCRIBE /
//!   (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context`); the gateway predicts that from the
//!   client's commands, forwards refused credentials, counts the refusal, and the deadline does not move. A RESP2
//!   subscriber therefore cannot re-authenticate and is closed when its token expires, as on Azure; a RESP3
//!   subscriber can. After unsubscribing from everything, `AUTH` works again.
//! - `CLIENT REPLY OFF|SKIP|ON` (outside `MULTI`) is followed: commands whose replies are suppressed expect none;
//!   an `AUTH` among them takes effect when a reply to a later command arrives (proof that the server ran it), or
//!   never if none does. A transaction whose reply is suppressed drops its credential changes.
//!
//! Where the replies cannot be followed, the gateway stops following them for the rest of the connection, and no
//! later `AUTH`, `HELLO` or `RESET` takes effect (the connection is closed at its current token's expiry; a
//! refused AUTH is still refused): after `MONITOR` (its feed is simple strings, like replies), `SYNC` / `PSYNC`,
//! a transaction that subscribes or changes `CLIENT REPLY` (redis-server itself can send a malformed `EXEC` reply
//! then), a subscription command whose reply is suppressed, a request the gateway cannot frame, a reply it cannot
//! frame, or a reply it did not expect. This errs on the strict side: a credential change never takes effect
//! before the server has executed it.
//!
//! # Protocol states the request side predicts
//!
//! To decide what to forward (and what to expect back), the gateway also tracks, from the client's own commands,
//! the protocol (`HELLO 2|3`), `MULTI` ... `EXEC`/`DISCARD`, `RESET`, `CLIENT REPLY` and the subscriptions
//! (`(P|S)SUBSCRIBE`, `(P|S)UNSUBSCRIBE`), assuming a valid `AUTH` will succeed. A subscription the server
//! refused (for example an `SSUBSCRIBE` answered with `MOVED`) still counts there as one until unsubscribed, so a
//! RESP2 client in that state gets its `AUTH` refused.
//!
//! A request the gateway cannot frame (a RESP protocol error) is forwarded as is, with everything after it; the
//! backend answers with its protocol error and closes the connection, as redis-server does.

mod io;
mod registry;
mod replies;
mod session;
mod types;
mod verify;

pub use types::{
    Backend, CloseReason, ClosedConnection, ConnectionInfo, GatewayOptions, GatewayStats,
};

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::redis::Error;
use io::accept_loop;
use registry::{Shared, lock};

/// The audience Azure Managed Redis and Azure Cache for Redis accept.
pub const REDIS_AUDIENCE: &str = "https://redis.azure.com";

/// A running gateway. Dropping it stops accepting and closes every connection it serves.
pub struct Gateway {
    addr: SocketAddr,
    shared: Arc<Shared>,
    tls: bool,
    task: JoinHandle<()>,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway")
            .field("addr", &self.addr)
            .field("backend", &self.shared.backend)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Starts a gateway on `127.0.0.1`, a free port, in front of `backend`.
    pub async fn start(backend: Backend, options: GatewayOptions) -> Result<Self, Error> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Self::from_listener(listener, backend, options)
    }

    /// Starts a gateway on an already bound listener (to know its port before the backend starts, as a cluster
    /// node announcing its gateway's port needs). Must be called within a tokio runtime.
    pub fn from_listener(
        listener: TcpListener,
        backend: Backend,
        options: GatewayOptions,
    ) -> Result<Self, Error> {
        let addr = listener.local_addr()?;
        let tls = options.tls.clone().map(tokio_rustls::TlsAcceptor::from);
        let shared = Shared::new(backend, options);
        let task = tokio::spawn(accept_loop(listener, shared.clone(), tls.clone()));
        Ok(Self {
            addr,
            shared,
            tls: tls.is_some(),
            task,
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The backend's address.
    pub fn backend_addr(&self) -> SocketAddr {
        self.shared.backend.addr
    }

    /// Whether clients must speak TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> GatewayStats {
        self.shared.stats()
    }

    /// Fault injection: while set, every `AUTH` / `HELLO ... AUTH` on an already authenticated connection is refused
    /// (`WRONGPASS`, counted in `auth_failed`), while new connections still authenticate. Models a server that
    /// will not re-authenticate a live connection, which only a reconnect survives.
    pub fn set_refuse_reauth(&self, refuse: bool) {
        self.shared.refuse_reauth.store(refuse, Ordering::SeqCst);
    }

    /// Fault injection: like [`Gateway::set_refuse_reauth`], but only on connections whose client name
    /// (`CLIENT SETNAME`, `HELLO ... SETNAME`) is `name`; `None` stops it.
    pub fn set_refuse_reauth_named(&self, name: Option<String>) {
        *lock(&self.shared.refuse_reauth_named) = name;
    }

    /// The live connections, by id: user, deadline, re-AUTHs, protocol, age.
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        self.shared.connections()
    }

    /// Waits until `condition` holds for the stats (checked at once and after every change), or fails with
    /// [`Error::Timeout`] after `timeout` (tokio clock).
    pub async fn wait_for(
        &self,
        timeout: Duration,
        condition: impl Fn(&GatewayStats) -> bool,
    ) -> Result<GatewayStats, Error> {
        let mut changes = self.shared.changes.subscribe();
        let wait = async {
            loop {
                changes.borrow_and_update();
                let stats = self.stats();
                if condition(&stats) {
                    return stats;
                }
                if changes.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.map_err(|_| {
            Error::Timeout(format!(
                "gateway stats condition not met in {timeout:?}: {:?}",
                self.stats()
            ))
        })
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests;
