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
//!   verifies the token's RS256 signature with its [`JwtVerifier`] (by default the emulator's key), `aud` (by
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

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use entraid_core::Secret;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::Error;
use super::client::RespClient;
use super::policy::{AccessPolicy, acl_user};
use super::resp::{Request, encode_command, parse_request};
use super::scan::{Frame, ReplyScanner};
use crate::keys::{JwtVerifier, TestKey};

/// The audience Azure Managed Redis and Azure Cache for Redis accept.
pub const REDIS_AUDIENCE: &str = "https://redis.azure.com";

/// The user the gateway puts in a refused `AUTH` so that the backend answers `WRONGPASS` itself.
const REFUSED_USER: &str = "entraid-gateway-refused";

/// How long a TLS handshake may take before the gateway drops the connection.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Gateway settings.
#[derive(Clone)]
pub struct GatewayOptions {
    /// Verifies token signatures. Default: trusts [`TestKey::entra`], the emulator's signing key.
    pub verifier: JwtVerifier,
    /// Accepted `aud` values (a token with an array `aud` needs one of them). Default: `["https://redis.azure.com"]`.
    pub audiences: Vec<String>,
    /// How far in the future `nbf` may be. Default: 5 s.
    pub nbf_leeway: Duration,
    /// Accept TLS with this server config instead of plain TCP. Default: none (plain TCP).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The data access policy each token's principal gets on redis-server, as real ACL rules (see
    /// [`AccessPolicy`]): a connection with a valid token is authenticated to redis-server as an ACL user named
    /// after its `oid`, created the first time that principal authenticates. `None`: as the backend's own user
    /// (every command allowed). Default: `None`; [`RedisHarness`](super::RedisHarness) always sets one
    /// ([`HarnessOptions::access_policy`](super::HarnessOptions::access_policy), Data Contributor by default).
    pub access_policy: Option<AccessPolicy>,
    /// A password that `AUTH <password>` (user `default`) may present instead of a token, forwarded as is: the
    /// cluster's own replication links. A replica connects to its primary at the address the primary announces
    /// (its gateway) and authenticates with `masterauth`, which is no Entra token. Such a connection has no
    /// deadline, no user and is not counted in [`GatewayStats::auth_ok`]. Default: `None` (only tokens);
    /// [`RedisCluster`](super::RedisCluster) sets it to its nodes' password. `Debug` hides it.
    pub replication_password: Option<Secret>,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            verifier: JwtVerifier::new([TestKey::entra()]),
            audiences: vec![REDIS_AUDIENCE.to_owned()],
            nbf_leeway: Duration::from_secs(5),
            tls: None,
            access_policy: None,
            replication_password: None,
        }
    }
}

impl fmt::Debug for GatewayOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayOptions")
            .field("audiences", &self.audiences)
            .field("nbf_leeway", &self.nbf_leeway)
            .field("tls", &self.tls.is_some())
            .field("access_policy", &self.access_policy)
            .field("replication_password", &self.replication_password)
            .finish_non_exhaustive()
    }
}

/// The redis-server behind a gateway and the credentials the gateway authenticates to it with. `Debug` hides the
/// password.
#[derive(Clone)]
pub struct Backend {
    /// The server's address.
    pub addr: SocketAddr,
    /// The ACL user (`default` for `requirepass`).
    pub username: String,
    /// The user's password.
    pub password: Secret,
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend")
            .field("addr", &self.addr)
            .field("username", &self.username)
            .field("password", &self.password)
            .finish()
    }
}

/// Why a gateway connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The token's `exp` passed without a newer valid AUTH: the gateway closed it.
    Expired,
    /// The client closed (or reset) its connection.
    Client,
    /// The backend closed its side (e.g. after `QUIT`, a protocol error or `CLIENT KILL`).
    Backend,
    /// The backend could not be reached.
    BackendUnavailable,
    /// The TLS handshake failed or timed out.
    TlsHandshake,
}

/// A connection that has ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedConnection {
    /// The connection's id (in accept order, from 1).
    pub id: u64,
    /// The last authenticated user (`oid`), if any.
    pub user: Option<String>,
    /// How long the connection was open.
    pub age: Duration,
    /// Valid AUTHs after the first that took effect (the server executed them).
    pub reauths: u64,
    /// Why it ended.
    pub reason: CloseReason,
    /// The last command the client sent, upper-cased, with its subcommand for container commands (`CLUSTER
    /// SLOTS`, `CLIENT ID`, ...); empty if it sent none. Says which part of a client a closed connection was.
    pub last_command: String,
    /// The last name the client gave the connection (`CLIENT SETNAME` or `HELLO ... SETNAME`), if any.
    pub client_name: Option<String>,
}

/// A live connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The connection's id (in accept order, from 1).
    pub id: u64,
    /// The client's address (none for in-memory streams).
    pub peer: Option<SocketAddr>,
    /// The authenticated user (`oid`), if any.
    pub user: Option<String>,
    /// When the gateway will close it (tokio clock), if authenticated.
    pub deadline: Option<Instant>,
    /// The current token's `exp` (unix seconds), if authenticated.
    pub expires_at: Option<i64>,
    /// Valid AUTHs after the first that took effect (the server executed them).
    pub reauths: u64,
    /// The protocol the client switched to (2 or 3), once the server's `HELLO` reply confirmed it.
    pub protocol: u8,
    /// How long it has been open.
    pub age: Duration,
}

/// A snapshot of a gateway's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GatewayStats {
    /// Connections accepted.
    pub connections_accepted: u64,
    /// Connections open now.
    pub open_now: u64,
    /// `AUTH` / `HELLO ... AUTH` commands whose token was accepted and that took effect: counted when the
    /// server's successful reply to them (inside `MULTI`: to `EXEC`) arrives.
    pub auth_ok: u64,
    /// `AUTH` / `HELLO ... AUTH` commands refused (bad token, or refused by the server's state), counted when the
    /// gateway reads them.
    pub auth_failed: u64,
    /// Accepted AUTHs that took effect on connections that were already authenticated (re-authentications), all
    /// connections.
    pub reauths: u64,
    /// Connections closed because their token expired.
    pub closed_by_expiry: u64,
    /// Every connection that has ended, in order of closing.
    pub closed: Vec<ClosedConnection>,
}

impl GatewayStats {
    /// The connections closed by expiry.
    pub fn expired(&self) -> impl Iterator<Item = &ClosedConnection> {
        self.closed
            .iter()
            .filter(|c| c.reason == CloseReason::Expired)
    }

    /// Adds another gateway's counters to these (for a cluster).
    pub fn merge(&mut self, other: &GatewayStats) {
        self.connections_accepted += other.connections_accepted;
        self.open_now += other.open_now;
        self.auth_ok += other.auth_ok;
        self.auth_failed += other.auth_failed;
        self.reauths += other.reauths;
        self.closed_by_expiry += other.closed_by_expiry;
        self.closed.extend(other.closed.iter().cloned());
    }
}

struct LiveConnection {
    peer: Option<SocketAddr>,
    started: Instant,
    user: Option<String>,
    deadline: Option<Instant>,
    expires_at: Option<i64>,
    reauths: u64,
    protocol: u8,
}

pub(crate) struct Shared {
    options: GatewayOptions,
    backend: Backend,
    next_id: AtomicU64,
    accepted: AtomicU64,
    auth_ok: AtomicU64,
    auth_failed: AtomicU64,
    reauths: AtomicU64,
    closed_by_expiry: AtomicU64,
    live: Mutex<HashMap<u64, LiveConnection>>,
    closed: Mutex<Vec<ClosedConnection>>,
    changes: watch::Sender<u64>,
    /// Fault injection: refuse every AUTH on an already authenticated connection (new connections still work).
    refuse_reauth: std::sync::atomic::AtomicBool,
    /// Fault injection: refuse re-AUTHs only on connections with this client name.
    refuse_reauth_named: Mutex<Option<String>>,
    /// The ACL users created on the backend so far (with an access policy).
    provisioned: Mutex<HashSet<String>>,
    /// The connection that creates them, as the backend's own user; opened when first needed.
    admin: tokio::sync::Mutex<Option<RespClient>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The data is plain counters and records: a panic elsewhere does not make it inconsistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn new(backend: Backend, options: GatewayOptions) -> Arc<Self> {
        Arc::new(Self {
            options,
            backend,
            next_id: AtomicU64::new(1),
            accepted: AtomicU64::new(0),
            auth_ok: AtomicU64::new(0),
            auth_failed: AtomicU64::new(0),
            reauths: AtomicU64::new(0),
            closed_by_expiry: AtomicU64::new(0),
            live: Mutex::new(HashMap::new()),
            closed: Mutex::new(Vec::new()),
            changes: watch::channel(0).0,
            refuse_reauth: std::sync::atomic::AtomicBool::new(false),
            refuse_reauth_named: Mutex::new(None),
            provisioned: Mutex::new(HashSet::new()),
            admin: tokio::sync::Mutex::new(None),
        })
    }

    /// The backend credentials for a connection that presented a valid token for `oid`: the principal's ACL user
    /// under an access policy, else the backend's own user.
    fn principal_credentials(&self, oid: &str) -> [Bytes; 2] {
        let user = match &self.options.access_policy {
            Some(_) => acl_user(oid),
            None => self.backend.username.clone(),
        };
        [
            Bytes::from(user),
            Bytes::copy_from_slice(self.backend.password.expose_secret().as_bytes()),
        ]
    }

    /// Whether the principal `oid` still needs its ACL user created before a request authenticating as it may be
    /// forwarded.
    fn needs_provisioning(&self, oid: &str) -> bool {
        self.options.access_policy.is_some() && !lock(&self.provisioned).contains(&acl_user(oid))
    }

    /// Creates the ACL user of principal `oid` with the access policy's rules (once per principal). A failure is
    /// logged; the client then gets the server's own `WRONGPASS` for its AUTH.
    async fn provision(&self, oid: &str) {
        let Some(policy) = &self.options.access_policy else {
            return;
        };
        let user = acl_user(oid);
        let mut admin = self.admin.lock().await;
        if lock(&self.provisioned).contains(&user) {
            return;
        }
        let result = async {
            if admin.is_none() {
                let mut client = RespClient::connect(self.backend.addr).await?;
                let reply = client
                    .command(&[
                        "AUTH",
                        self.backend.username.as_str(),
                        self.backend.password.expose_secret(),
                    ])
                    .await?;
                if reply != super::RespValue::Simple("OK".into()) {
                    return Err(Error::UnexpectedReply {
                        command: "AUTH",
                        reply: format!("{reply:?}"),
                    });
                }
                *admin = Some(client);
            }
            let client = admin.as_mut().ok_or(Error::Closed)?;
            let password = format!(">{}", self.backend.password.expose_secret());
            let mut args: Vec<&str> = vec!["ACL", "SETUSER", &user, "reset", "on", &password];
            let rules = policy.acl_rules();
            args.extend(rules.iter().map(String::as_str));
            match client.command(&args).await? {
                super::RespValue::Simple(ok) if ok == "OK" => Ok(()),
                other => Err(Error::UnexpectedReply {
                    command: "ACL SETUSER",
                    reply: format!("{other:?}"),
                }),
            }
        }
        .await;
        match result {
            Ok(()) => {
                tracing::debug!(user = %user, policy = %policy, "gateway created the principal's ACL user");
                lock(&self.provisioned).insert(user);
            }
            Err(e) => {
                tracing::warn!(user = %user, error = %e, "gateway could not create the principal's ACL user");
                *admin = None;
            }
        }
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    pub(crate) fn stats(&self) -> GatewayStats {
        let open_now = lock(&self.live).len() as u64;
        GatewayStats {
            connections_accepted: self.accepted.load(Ordering::SeqCst),
            open_now,
            auth_ok: self.auth_ok.load(Ordering::SeqCst),
            auth_failed: self.auth_failed.load(Ordering::SeqCst),
            reauths: self.reauths.load(Ordering::SeqCst),
            closed_by_expiry: self.closed_by_expiry.load(Ordering::SeqCst),
            closed: lock(&self.closed).clone(),
        }
    }

    fn connections(&self) -> Vec<ConnectionInfo> {
        let now = Instant::now();
        let mut list: Vec<ConnectionInfo> = lock(&self.live)
            .iter()
            .map(|(id, c)| ConnectionInfo {
                id: *id,
                peer: c.peer,
                user: c.user.clone(),
                deadline: c.deadline,
                expires_at: c.expires_at,
                reauths: c.reauths,
                protocol: c.protocol,
                age: now.saturating_duration_since(c.started),
            })
            .collect();
        list.sort_by_key(|c| c.id);
        list
    }

    /// Registers a new connection and returns its id.
    pub(crate) fn register(&self, peer: Option<SocketAddr>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        self.accepted.fetch_add(1, Ordering::SeqCst);
        lock(&self.live).insert(
            id,
            LiveConnection {
                peer,
                started: Instant::now(),
                user: None,
                deadline: None,
                expires_at: None,
                reauths: 0,
                protocol: 2,
            },
        );
        self.changed();
        id
    }

    fn unregister(&self, id: u64, reason: CloseReason, last: LastSeen) {
        let Some(live) = lock(&self.live).remove(&id) else {
            return;
        };
        let record = ClosedConnection {
            id,
            user: live.user,
            age: Instant::now().saturating_duration_since(live.started),
            reauths: live.reauths,
            reason,
            last_command: last.command,
            client_name: last.client_name,
        };
        if reason == CloseReason::Expired {
            self.closed_by_expiry.fetch_add(1, Ordering::SeqCst);
            tracing::info!(id, user = ?record.user, age = ?record.age, reauths = record.reauths,
                last_command = %record.last_command, "gateway closed a connection: token expired");
        } else {
            tracing::debug!(id, ?reason, "gateway connection closed");
        }
        lock(&self.closed).push(record);
        self.changed();
    }

    fn update(&self, id: u64, f: impl FnOnce(&mut LiveConnection)) {
        if let Some(live) = lock(&self.live).get_mut(&id) {
            f(live);
        }
        self.changed();
    }
}

/// Marks a connection closed when dropped (also when its task is aborted).
struct Registration {
    shared: Arc<Shared>,
    id: u64,
    reason: CloseReason,
    last: LastSeen,
}

/// What a connection last said about itself, for [`ClosedConnection`].
#[derive(Debug, Default)]
struct LastSeen {
    command: String,
    client_name: Option<String>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared
            .unregister(self.id, self.reason, std::mem::take(&mut self.last));
    }
}

/// Why the gateway refused a token (for logs; the client sees the server's `WRONGPASS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    NotUtf8,
    Signature,
    Audience,
    NoExpiry,
    Expired,
    NotYetValid,
    NoOid,
    UserMismatch,
    /// A valid token, but redis-server refuses AUTH in RESP2 subscriber mode.
    SubscriberContext,
    /// A re-AUTH on an authenticated connection, refused by the test's script ([`Gateway::set_refuse_reauth`]).
    Scripted,
}

struct ValidToken {
    oid: String,
    exp: i64,
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

impl Shared {
    fn check_token(&self, user: &[u8], token: &[u8]) -> Result<ValidToken, Refusal> {
        let user = std::str::from_utf8(user).map_err(|_| Refusal::NotUtf8)?;
        let token = std::str::from_utf8(token).map_err(|_| Refusal::NotUtf8)?;
        let verified = self
            .options
            .verifier
            .verify(token)
            .map_err(|_| Refusal::Signature)?;
        let claims = verified.claims;
        let audience_ok = match claims.get("aud") {
            Some(serde_json::Value::String(aud)) => self.options.audiences.contains(aud),
            Some(serde_json::Value::Array(auds)) => auds
                .iter()
                .filter_map(serde_json::Value::as_str)
                .any(|a| self.options.audiences.iter().any(|x| x == a)),
            _ => false,
        };
        if !audience_ok {
            return Err(Refusal::Audience);
        }
        let now = unix_now();
        let now_secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        let exp = claims.exp().ok_or(Refusal::NoExpiry)?;
        if exp <= now_secs {
            return Err(Refusal::Expired);
        }
        if let Some(nbf) = claims.nbf() {
            let leeway = i64::try_from(self.options.nbf_leeway.as_secs()).unwrap_or(i64::MAX);
            if nbf > now_secs.saturating_add(leeway) {
                return Err(Refusal::NotYetValid);
            }
        }
        let oid = claims.oid().ok_or(Refusal::NoOid)?;
        if oid != user {
            return Err(Refusal::UserMismatch);
        }
        Ok(ValidToken {
            oid: oid.to_owned(),
            exp,
        })
    }
}

/// The tokio instant at which a token expiring at `exp` (unix seconds) expires.
fn deadline_for(exp: i64) -> Instant {
    let exp = Duration::from_secs(u64::try_from(exp).unwrap_or(0));
    Instant::now() + exp.saturating_sub(unix_now())
}

/// A change to a connection's credentials state, made when the server has executed the command that asks for it.
#[derive(Default)]
struct Effect {
    /// `RESET`: not authenticated any more, RESP2, no subscriptions.
    reset: bool,
    /// An accepted `AUTH` / `HELLO ... AUTH`: the token's user and expiry.
    auth: Option<ValidToken>,
    /// `HELLO 2|3`: the new protocol.
    protocol: Option<u8>,
}

/// The type of a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SubType {
    Channel,
    Pattern,
    Shard,
}

/// A subscription command, or the confirmation the server sends for each of its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SubKind {
    ty: SubType,
    subscribe: bool,
}

impl SubKind {
    const ALL: [(&'static str, SubType, bool); 6] = [
        ("subscribe", SubType::Channel, true),
        ("unsubscribe", SubType::Channel, false),
        ("psubscribe", SubType::Pattern, true),
        ("punsubscribe", SubType::Pattern, false),
        ("ssubscribe", SubType::Shard, true),
        ("sunsubscribe", SubType::Shard, false),
    ];

    /// The command `name` (any case), if it is a (P|S)(UN)SUBSCRIBE.
    fn of_command(name: &[u8]) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(n, ..)| is(name, n))
            .map(|&(_, ty, subscribe)| Self { ty, subscribe })
    }

    /// The confirmation whose first element is `first` (lower case, as the server writes it).
    fn of_confirmation(first: &[u8]) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(n, ..)| n.as_bytes() == first)
            .map(|&(_, ty, subscribe)| Self { ty, subscribe })
    }
}

/// Whether a RESP2 pub/sub array with this first element is a published message (not a reply, not a confirmation).
fn is_message(first: &[u8]) -> bool {
    matches!(first, b"message" | b"pmessage" | b"smessage")
}

/// What the gateway expects the server to send for the requests it forwarded, in request order.
enum Expect {
    /// This many ordinary replies.
    Replies(u64),
    /// One reply; then apply `effect` if the reply is not an error (or whatever it is, when `always`).
    Effect { effect: Effect, always: bool },
    /// `EXEC`: one reply; then apply the effects queued in the transaction if it is an array (not an `EXECABORT`
    /// error, not the null of a transaction a `WATCH` aborted).
    Exec(Vec<Effect>),
    /// A (P|S)(UN)SUBSCRIBE outside `MULTI`: confirmations of this kind (pushes in RESP3, arrays in RESP2), one
    /// per argument (`Some(n)`), or, for an unsubscribe from everything (`None`), until none of that type is left;
    /// or instead one error reply (wrong arity, `CROSSSLOT`, `MOVED`, ...).
    Subscription { kind: SubKind, left: Option<u64> },
    /// A command whose reply the server suppresses (`CLIENT REPLY OFF|SKIP`): apply `effect` when a later reply
    /// arrives, which shows the server has executed it.
    Silent(Effect),
    /// The replies cannot be followed from here on (`MONITOR`, `SYNC`, a request the gateway could not frame, ...):
    /// stop counting; no later credential change takes effect.
    Stop,
}

/// The reply side of a connection: counts the server's replies and applies each credential change when the
/// reply to its command arrives. Shared (behind a mutex) with the request side, which queues what it expects.
struct Tracker {
    shared: Arc<Shared>,
    id: u64,
    deadline: watch::Sender<Option<Instant>>,
    queue: VecDeque<Expect>,
    scanner: ReplyScanner,
    stopped: bool,
    /// As the server sees it: changed by the replies, not the requests.
    authenticated: bool,
    protocol: u8,
    /// Subscriptions of each type, from the counts in the server's confirmations.
    channels: u64,
    patterns: u64,
    shard_channels: u64,
}

impl Tracker {
    fn new(shared: Arc<Shared>, id: u64, deadline: watch::Sender<Option<Instant>>) -> Self {
        Self {
            shared,
            id,
            deadline,
            queue: VecDeque::new(),
            scanner: ReplyScanner::default(),
            stopped: false,
            authenticated: false,
            protocol: 2,
            channels: 0,
            patterns: 0,
            shard_channels: 0,
        }
    }

    /// Queues what the server will send for the next request.
    fn expect(&mut self, expect: Expect) {
        if self.stopped {
            return;
        }
        if let Expect::Replies(n) = expect
            && let Some(Expect::Replies(m)) = self.queue.back_mut()
        {
            *m += n;
            return;
        }
        self.queue.push_back(expect);
        self.settle();
    }

    fn stop(&mut self, why: &'static str) {
        if !self.stopped {
            tracing::debug!(
                id = self.id,
                why,
                "gateway stopped following replies: credential changes no longer take effect on this connection"
            );
        }
        self.stopped = true;
        self.queue.clear();
    }

    /// Counts the replies in bytes the server sent (before they are relayed to the client).
    fn on_bytes(&mut self, data: &[u8]) {
        if self.stopped {
            return;
        }
        let mut scanner = std::mem::take(&mut self.scanner);
        let scanned = scanner.feed(data, &mut |frame| self.on_frame(frame));
        self.scanner = scanner;
        if scanned.is_err() {
            self.stop("a reply could not be framed");
        }
    }

    fn subscribed(&self) -> bool {
        self.channels + self.patterns + self.shard_channels > 0
    }

    /// Whether the next reply-producing entry is a subscription.
    fn awaiting_subscription(&self) -> bool {
        self.queue
            .iter()
            .find(|e| !matches!(e, Expect::Silent(_)))
            .is_some_and(|e| matches!(e, Expect::Subscription { .. }))
    }

    fn on_frame(&mut self, frame: &Frame) {
        if self.stopped {
            return;
        }
        if frame.is_push() {
            // RESP3: messages, invalidations and subscription confirmations are pushes, never replies.
            if let Some(kind) = frame.first().and_then(SubKind::of_confirmation) {
                self.on_confirmation(kind, frame.third);
            }
            return;
        }
        if self.protocol == 2
            && frame.is_array()
            && (self.subscribed() || self.awaiting_subscription())
            && let Some(first) = frame.first()
        {
            // RESP2 pub/sub: messages and confirmations are arrays. In this state the only other replies are
            // errors, `+OK` (QUIT), `+RESET` and PING's `["pong", ...]`, so they cannot be mistaken.
            if is_message(first) {
                return;
            }
            if let Some(kind) = SubKind::of_confirmation(first) {
                self.on_confirmation(kind, frame.third);
                return;
            }
        }
        self.on_reply(frame);
    }

    fn on_confirmation(&mut self, kind: SubKind, count: Option<i64>) {
        let count = count.and_then(|c| u64::try_from(c).ok()).unwrap_or(0);
        // The count is the client's total of channels plus patterns (shard channels apart).
        let left = match kind.ty {
            SubType::Channel => {
                self.channels = count.saturating_sub(self.patterns);
                self.channels
            }
            SubType::Pattern => {
                self.patterns = count.saturating_sub(self.channels);
                self.patterns
            }
            SubType::Shard => {
                self.shard_channels = count;
                self.shard_channels
            }
        };
        self.apply_silent();
        if let Some(Expect::Subscription {
            kind: expected,
            left: remaining,
        }) = self.queue.front_mut()
            && *expected == kind
        {
            let done = match remaining {
                Some(n) => {
                    *n = n.saturating_sub(1);
                    *n == 0
                }
                None => left == 0,
            };
            if done {
                self.queue.pop_front();
                self.settle();
            }
        }
        // Otherwise not one the gateway waits for (e.g. the `sunsubscribe` a cluster node sends when a slot moves
        // away): it changed the counts and is not a reply.
    }

    fn on_reply(&mut self, frame: &Frame) {
        self.apply_silent();
        if self.stopped {
            return;
        }
        match self.queue.front_mut() {
            Some(Expect::Replies(n)) => {
                *n -= 1;
                if *n > 0 {
                    return;
                }
            }
            Some(Expect::Effect { .. } | Expect::Exec(_)) => {}
            Some(Expect::Subscription { .. }) if frame.is_error() => {}
            Some(Expect::Subscription { .. }) => {
                return self.stop("a reply where subscription confirmations were expected");
            }
            Some(Expect::Silent(_) | Expect::Stop) | None => {
                return self.stop("a reply the gateway did not expect");
            }
        }
        match self.queue.pop_front() {
            Some(Expect::Effect { effect, always }) if always || !frame.is_error() => {
                self.apply(effect);
            }
            Some(Expect::Exec(effects)) if frame.is_array() => {
                for effect in effects {
                    self.apply(effect);
                }
            }
            _ => {}
        }
        self.settle();
    }

    /// Applies the effects of commands whose replies were suppressed: a later reply has arrived.
    fn apply_silent(&mut self) {
        while let Some(Expect::Silent(_)) = self.queue.front() {
            if let Some(Expect::Silent(effect)) = self.queue.pop_front() {
                self.apply(effect);
            }
        }
        self.settle();
    }

    /// Stops when the next entry says so.
    fn settle(&mut self) {
        if matches!(self.queue.front(), Some(Expect::Stop)) {
            self.stop("the connection left the request-reply protocol");
        }
    }

    fn apply(&mut self, effect: Effect) {
        if effect.reset {
            self.authenticated = false;
            self.protocol = 2;
            self.channels = 0;
            self.patterns = 0;
            self.shard_channels = 0;
            self.deadline.send_replace(None);
            self.shared.update(self.id, |live| {
                live.user = None;
                live.deadline = None;
                live.expires_at = None;
                live.protocol = 2;
            });
        }
        if let Some(token) = effect.auth {
            // A token that expired while its AUTH waited (behind a blocked command) closes the connection now.
            let deadline = deadline_for(token.exp);
            let reauth = self.authenticated;
            self.authenticated = true;
            self.shared.auth_ok.fetch_add(1, Ordering::SeqCst);
            if reauth {
                self.shared.reauths.fetch_add(1, Ordering::SeqCst);
            }
            tracing::debug!(id = self.id, user = %token.oid, exp = token.exp, reauth, "gateway AUTH took effect");
            self.deadline.send_replace(Some(deadline));
            self.shared.update(self.id, |live| {
                live.user = Some(token.oid);
                live.deadline = Some(deadline);
                live.expires_at = Some(token.exp);
                if reauth {
                    live.reauths += 1;
                }
            });
        }
        if let Some(protocol) = effect.protocol {
            self.protocol = protocol;
            self.shared.update(self.id, |live| live.protocol = protocol);
        }
    }
}

/// Which reply suppression a command ignores.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Exempt {
    /// None: no reply under `CLIENT REPLY OFF` or `SKIP`.
    No,
    /// `RESET`: replies even under `CLIENT REPLY OFF` (it turns replies back on), not when skipped.
    Off,
    /// `CLIENT REPLY ON`: always replies.
    All,
}

/// How the request side routes one request: what the server will send for it.
struct Routed {
    expect: Option<Expect>,
    exempt: Exempt,
    /// Stop following replies after this request's reply.
    then_stop: bool,
}

impl Routed {
    fn replies() -> Self {
        Self::expect(Expect::Replies(1))
    }

    fn expect(expect: Expect) -> Self {
        Self {
            expect: Some(expect),
            exempt: Exempt::No,
            then_stop: false,
        }
    }

    fn no_reply() -> Self {
        Self {
            expect: None,
            exempt: Exempt::No,
            then_stop: false,
        }
    }
}

/// Per-connection protocol state as the request side predicts it from the client's commands (the server's own
/// view, which decides when credentials change, is the [`Tracker`]'s).
struct Session {
    shared: Arc<Shared>,
    id: u64,
    authenticated: bool,
    protocol: u8,
    in_multi: bool,
    /// Credential changes queued in the open transaction.
    multi_effects: Vec<Effect>,
    /// The open transaction changes the reply mode or subscribes: its replies cannot be followed after `EXEC`.
    multi_unfollowable: bool,
    /// `CLIENT REPLY OFF`.
    reply_off: bool,
    /// `CLIENT REPLY SKIP` was the previous request: this one's reply is skipped.
    skip_this: bool,
    channels: HashSet<Bytes>,
    patterns: HashSet<Bytes>,
    shard_channels: HashSet<Bytes>,
    /// `Expect::Stop` was queued: nothing more is expected.
    stopped: bool,
    /// Principals whose ACL user must exist before the requests handled since the last write are forwarded.
    to_provision: Vec<String>,
    /// See [`ClosedConnection::last_command`] and [`ClosedConnection::client_name`].
    last: LastSeen,
}

fn is(arg: &[u8], name: &str) -> bool {
    arg.eq_ignore_ascii_case(name.as_bytes())
}

/// Whether redis-server accepts this client name (no spaces, newlines or other special characters).
fn valid_client_name(name: &[u8]) -> bool {
    name.iter().all(|b| (b'!'..=b'~').contains(b))
}

impl Session {
    fn new(shared: Arc<Shared>, id: u64) -> Self {
        Self {
            shared,
            id,
            authenticated: false,
            protocol: 2,
            in_multi: false,
            multi_effects: Vec::new(),
            multi_unfollowable: false,
            reply_off: false,
            skip_this: false,
            channels: HashSet::new(),
            patterns: HashSet::new(),
            shard_channels: HashSet::new(),
            stopped: false,
            to_provision: Vec::new(),
            last: LastSeen::default(),
        }
    }

    /// Remembers the command's name (and a container command's subcommand) for [`ClosedConnection::last_command`].
    fn note_command(&mut self, args: &[Bytes]) {
        const CONTAINERS: [&str; 10] = [
            "CLUSTER", "CLIENT", "CONFIG", "ACL", "COMMAND", "XINFO", "OBJECT", "MEMORY",
            "FUNCTION", "SCRIPT",
        ];
        let command = &mut self.last.command;
        command.clear();
        let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
        let container = CONTAINERS.contains(&name.as_str());
        command.push_str(&name);
        if container && let Some(sub) = args.get(1) {
            command.push(' ');
            command.push_str(&String::from_utf8_lossy(sub).to_ascii_uppercase());
        }
        // A connection's name (never a credential): `CLIENT SETNAME name`, `HELLO ... SETNAME name`.
        let set_name = match (name.as_str(), args.get(1), args.get(2)) {
            ("CLIENT", Some(sub), Some(client_name)) if is(sub, "SETNAME") => Some(client_name),
            ("HELLO", _, _) => {
                // Options after the protocol version: `AUTH user pass` and `SETNAME name`, in any order.
                let (mut j, mut found) = (2, None);
                while j < args.len() {
                    if is(&args[j], "AUTH") {
                        j += 3;
                    } else if is(&args[j], "SETNAME") {
                        found = args.get(j + 1);
                        j += 2;
                    } else {
                        break;
                    }
                }
                found
            }
            _ => None,
        };
        if let Some(client_name) = set_name {
            self.last.client_name = Some(String::from_utf8_lossy(client_name).into_owned());
        }
    }

    fn resp2_subscribed(&self) -> bool {
        self.protocol == 2
            && !(self.channels.is_empty()
                && self.patterns.is_empty()
                && self.shard_channels.is_empty())
    }

    /// The token check, unless the test scripted re-AUTHs to be refused.
    fn verdict(&self, user: &[u8], token: &[u8]) -> Result<ValidToken, Refusal> {
        let named = self.authenticated
            && self.last.client_name.is_some()
            && *lock(&self.shared.refuse_reauth_named) == self.last.client_name;
        if named || (self.authenticated && self.shared.refuse_reauth.load(Ordering::SeqCst)) {
            return Err(Refusal::Scripted);
        }
        self.shared.check_token(user, token)
    }

    fn refuse_auth(&self, why: Refusal) {
        self.shared.auth_failed.fetch_add(1, Ordering::SeqCst);
        tracing::debug!(id = self.id, reason = ?why, "gateway AUTH refused");
        self.shared.changed();
    }

    /// The credentials to forward for a valid token of `oid`; notes the principal for provisioning first.
    fn backend_credentials(&mut self, oid: &str) -> [Bytes; 2] {
        if self.shared.needs_provisioning(oid) && !self.to_provision.iter().any(|p| p == oid) {
            self.to_provision.push(oid.to_owned());
        }
        self.shared.principal_credentials(oid)
    }

    fn refused_credentials() -> [Bytes; 2] {
        [
            Bytes::from_static(REFUSED_USER.as_bytes()),
            Bytes::from_static(b"-"),
        ]
    }

    /// Handles one request: appends what to send to the backend to `out` and what the server will send back for
    /// it to `expects`.
    fn handle(
        &mut self,
        request: Request,
        raw: &[u8],
        out: &mut BytesMut,
        expects: &mut Vec<Expect>,
    ) {
        let skipped = std::mem::take(&mut self.skip_this);
        let reply_off = self.reply_off;
        let routed = self.route(request, raw, out);
        let suppressed = match routed.exempt {
            Exempt::No => skipped || reply_off,
            Exempt::Off => skipped,
            Exempt::All => false,
        };
        let expect = match routed.expect {
            Some(expect) if suppressed => match expect {
                Expect::Effect { effect, .. } | Expect::Silent(effect) => {
                    Some(Expect::Silent(effect))
                }
                // Whether a transaction ran cannot be told without its reply: its effects are dropped.
                Expect::Replies(_) | Expect::Exec(_) => None,
                // Confirmations are sent even then, an error is not: unsupported.
                Expect::Subscription { .. } | Expect::Stop => Some(Expect::Stop),
            },
            other => other,
        };
        if !self.stopped {
            let stop = matches!(expect, Some(Expect::Stop)) || routed.then_stop;
            expects.extend(expect.filter(|e| !matches!(e, Expect::Stop)));
            if stop {
                expects.push(Expect::Stop);
                self.stopped = true;
            }
        }
    }

    fn route(&mut self, request: Request, raw: &[u8], out: &mut BytesMut) -> Routed {
        let args = request.args;
        let Some(name) = args.first() else {
            // An empty line or `*0`: the server ignores it.
            out.extend_from_slice(raw);
            return Routed::no_reply();
        };
        self.note_command(&args);
        if is(name, "AUTH") {
            return Routed::expect(self.handle_auth(args, out));
        }
        if is(name, "HELLO") {
            return Routed::expect(self.handle_hello(args, raw, out));
        }
        out.extend_from_slice(raw);
        if is(name, "RESET") {
            self.authenticated = false;
            self.protocol = 2;
            self.in_multi = false;
            self.multi_effects.clear();
            self.multi_unfollowable = false;
            self.reply_off = false;
            self.channels.clear();
            self.patterns.clear();
            self.shard_channels.clear();
            return Routed {
                exempt: Exempt::Off,
                ..Routed::expect(Expect::Effect {
                    effect: Effect {
                        reset: true,
                        ..Effect::default()
                    },
                    always: true,
                })
            };
        }
        if !self.authenticated {
            // NOAUTH.
            return Routed::replies();
        }
        if self.in_multi {
            return self.route_queued(name, &args);
        }
        if let Some(kind) = SubKind::of_command(name) {
            return self.route_subscription(kind, &args);
        }
        if self.resp2_subscribed() {
            // Only (P|S)(UN)SUBSCRIBE, PING, QUIT and RESET are allowed; the rest get an error.
            return Routed::replies();
        }
        if is(name, "MULTI") {
            self.in_multi = true;
        } else if is(name, "CLIENT") && args.len() == 3 && is(&args[1], "REPLY") {
            if is(&args[2], "ON") {
                self.reply_off = false;
                return Routed {
                    exempt: Exempt::All,
                    ..Routed::replies()
                };
            } else if is(&args[2], "OFF") {
                self.reply_off = true;
                return Routed::no_reply();
            } else if is(&args[2], "SKIP") {
                if !self.reply_off {
                    self.skip_this = true;
                }
                return Routed::no_reply();
            }
        } else if is(name, "MONITOR") {
            // Its `+OK`, then the server's command feed: simple strings like any reply.
            return Routed {
                then_stop: true,
                ..Routed::replies()
            };
        } else if is(name, "SYNC") || is(name, "PSYNC") {
            // A replication stream follows.
            return Routed::expect(Expect::Stop);
        }
        Routed::replies()
    }

    /// A command inside `MULTI`.
    fn route_queued(&mut self, name: &[u8], args: &[Bytes]) -> Routed {
        if is(name, "EXEC") {
            self.in_multi = false;
            let effects = std::mem::take(&mut self.multi_effects);
            for effect in &effects {
                if let Some(protocol) = effect.protocol {
                    self.protocol = protocol;
                }
            }
            return Routed {
                then_stop: std::mem::take(&mut self.multi_unfollowable),
                ..Routed::expect(Expect::Exec(effects))
            };
        }
        if is(name, "DISCARD") {
            self.in_multi = false;
            self.multi_effects.clear();
            self.multi_unfollowable = false;
        } else if SubKind::of_command(name).is_some()
            || (is(name, "CLIENT") && args.get(1).is_some_and(|a| is(a, "REPLY")))
        {
            // Queued; at EXEC it would subscribe (with its confirmations inside the EXEC reply) or change the
            // reply mode mid-transaction, which the gateway does not follow.
            self.multi_unfollowable = true;
        }
        // `+QUEUED` or an error.
        Routed::replies()
    }

    /// A (P|S)(UN)SUBSCRIBE outside `MULTI`.
    fn route_subscription(&mut self, kind: SubKind, args: &[Bytes]) -> Routed {
        let set = match kind.ty {
            SubType::Channel => &mut self.channels,
            SubType::Pattern => &mut self.patterns,
            SubType::Shard => &mut self.shard_channels,
        };
        let targets = &args[1..];
        if kind.subscribe {
            if targets.is_empty() {
                // Wrong number of arguments.
                return Routed::replies();
            }
            set.extend(targets.iter().cloned());
        } else if targets.is_empty() {
            set.clear();
        } else {
            for target in targets {
                set.remove(target);
            }
        }
        Routed::expect(Expect::Subscription {
            kind,
            left: (!targets.is_empty()).then_some(targets.len() as u64),
        })
    }

    fn handle_auth(&mut self, args: Vec<Bytes>, out: &mut BytesMut) -> Expect {
        let (user, token) = match args.len() {
            2 => (&b"default"[..], &args[1]),
            3 => (&args[1][..], &args[2]),
            n => {
                // Wrong arity: the backend answers its own error; the arguments (maybe a token) are not sent.
                let mut placeholder = vec![args[0].clone()];
                placeholder.extend((1..n).map(|_| Bytes::from_static(b"-")));
                encode_command(&placeholder, out);
                return Expect::Replies(1);
            }
        };
        if args.len() == 2
            && !self.authenticated
            && !self.in_multi
            && self
                .shared
                .options
                .replication_password
                .as_ref()
                .is_some_and(|p| p.expose_secret().as_bytes() == &args[1][..])
        {
            // A replica's replication link (see `GatewayOptions::replication_password`): forwarded as is.
            tracing::debug!(
                id = self.id,
                "gateway: a replication link authenticated with the nodes' password"
            );
            self.authenticated = true;
            encode_command(&args, out);
            return Expect::Replies(1);
        }
        let (expect, [u, p]) = self.authenticate(user, token, None, false);
        encode_command(&[args[0].clone(), u, p], out);
        expect
    }

    /// Decides a credential change (`AUTH`, `HELLO ... AUTH`): for a valid token outside RESP2 subscriber mode, the
    /// principal's backend credentials and the effect (user, deadline, `protocol`) to apply when the server's reply
    /// arrives (whatever it is, when `always`); otherwise the refusal is counted and the backend gets credentials
    /// it refuses.
    fn authenticate(
        &mut self,
        user: &[u8],
        token: &[u8],
        protocol: Option<u8>,
        always: bool,
    ) -> (Expect, [Bytes; 2]) {
        let verdict = match self.verdict(user, token) {
            Ok(_) if self.resp2_subscribed() => Err(Refusal::SubscriberContext),
            other => other,
        };
        match verdict {
            Ok(valid) => {
                if !self.in_multi
                    && let Some(p) = protocol
                {
                    self.protocol = p;
                }
                let credentials = self.backend_credentials(&valid.oid);
                let effect = Effect {
                    auth: Some(valid),
                    protocol,
                    reset: false,
                };
                let expect = self.queue_or_expect(effect, always);
                self.authenticated = true;
                (expect, credentials)
            }
            Err(why) => {
                self.refuse_auth(why);
                (Expect::Replies(1), Self::refused_credentials())
            }
        }
    }

    /// Inside `MULTI` the effect waits for `EXEC` (the command itself gets `+QUEUED`); otherwise it waits for the
    /// command's own reply.
    fn queue_or_expect(&mut self, effect: Effect, always: bool) -> Expect {
        if self.in_multi {
            self.multi_effects.push(effect);
            Expect::Replies(1)
        } else {
            Expect::Effect { effect, always }
        }
    }

    fn handle_hello(&mut self, mut args: Vec<Bytes>, raw: &[u8], out: &mut BytesMut) -> Expect {
        // Parse as redis-server's helloCommand does.
        let protover = match args.get(1) {
            None => None,
            Some(v) => match std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<u8>().ok())
            {
                Some(p) if (2..=3).contains(&p) => Some(p),
                _ => {
                    // NOPROTO or a syntax error from the backend; credentials are not sent.
                    Self::blank_hello_credentials(&mut args);
                    encode_command(&args, out);
                    return Expect::Replies(1);
                }
            },
        };
        let mut auth_at = Vec::new();
        let mut name_ok = true;
        let mut syntax_ok = true;
        let mut j = 2;
        while j < args.len() {
            let more = args.len() - 1 - j;
            if is(&args[j], "AUTH") && more >= 2 {
                auth_at.push(j + 1);
                j += 3;
            } else if is(&args[j], "SETNAME") && more >= 1 {
                name_ok = valid_client_name(&args[j + 1]);
                j += 2;
            } else {
                syntax_ok = false;
                break;
            }
        }
        let Some(&last_auth) = auth_at.last() else {
            out.extend_from_slice(raw);
            if self.authenticated
                && syntax_ok
                && name_ok
                && !self.resp2_subscribed()
                && let Some(p) = protover
            {
                if !self.in_multi {
                    self.protocol = p;
                }
                let effect = Effect {
                    protocol: Some(p),
                    ..Effect::default()
                };
                return self.queue_or_expect(effect, false);
            }
            return Expect::Replies(1);
        };
        if !syntax_ok {
            Self::blank_hello_credentials(&mut args);
            encode_command(&args, out);
            return Expect::Replies(1);
        }
        // With a refused name the server has authenticated the connection, then answers the name's error and keeps
        // the protocol: the AUTH takes effect whatever the reply.
        let protocol = if name_ok { protover } else { None };
        let (user, token) = (args[last_auth].clone(), args[last_auth + 1].clone());
        let (expect, [u, p]) = self.authenticate(&user, &token, protocol, !name_ok);
        for at in auth_at {
            args[at] = u.clone();
            args[at + 1] = p.clone();
        }
        encode_command(&args, out);
        expect
    }

    /// Replaces the arguments after any `AUTH` option of a malformed `HELLO` (the backend refuses it anyway).
    fn blank_hello_credentials(args: &mut [Bytes]) {
        let [u, p] = Self::refused_credentials();
        let mut j = 2;
        while j < args.len() {
            if is(&args[j], "AUTH") && j + 2 < args.len() {
                args[j + 1] = u.clone();
                args[j + 2] = p.clone();
                j += 3;
            } else {
                j += 1;
            }
        }
    }
}

/// Copies client requests to the backend, rewriting credentials, and queues in `tracker` what the server will
/// send back for them (before they are sent). Returns when the client closes.
async fn pump_requests<R, W>(
    session: &mut Session,
    tracker: &Mutex<Tracker>,
    client: &mut R,
    backend: &mut W,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut out = BytesMut::with_capacity(16 * 1024);
    let mut expects = Vec::new();
    let mut passthrough = false;
    loop {
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(16 * 1024);
        }
        if client.read_buf(&mut buf).await? == 0 {
            backend.shutdown().await?;
            return Ok(());
        }
        if passthrough {
            backend.write_all(&buf).await?;
            buf.clear();
            continue;
        }
        let mut view = buf.split().freeze();
        loop {
            match parse_request(&view) {
                Ok(Some((request, used))) => {
                    let raw = view.split_to(used);
                    session.handle(request, &raw, &mut out, &mut expects);
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(id = session.id, error = %e, "client request not framed: forwarding the rest as is");
                    out.extend_from_slice(&view);
                    view.clear();
                    passthrough = true;
                    expects.push(Expect::Stop);
                    break;
                }
            }
        }
        if !view.is_empty() {
            buf = match view.try_into_mut() {
                Ok(unique) => unique,
                Err(shared) => BytesMut::from(&shared[..]),
            };
        }
        if !expects.is_empty() {
            let mut tracker = lock(tracker);
            for expect in expects.drain(..) {
                tracker.expect(expect);
            }
        }
        // An AUTH as a principal seen for the first time: its ACL user must exist before the AUTH reaches the server.
        for oid in std::mem::take(&mut session.to_provision) {
            session.shared.provision(&oid).await;
        }
        if !out.is_empty() {
            backend.write_all(&out).await?;
            backend.flush().await?;
            out.clear();
        }
    }
}

/// Relays the backend's bytes to the client unchanged, counting replies as they pass (each piece is scanned, then
/// written at once: nothing waits for the rest of a reply). Returns when the backend closes.
async fn pump_replies<R, W>(
    tracker: &Mutex<Tracker>,
    backend: &mut R,
    client: &mut W,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0; 32 * 1024];
    loop {
        let n = backend.read(&mut buf).await?;
        if n == 0 {
            client.flush().await?;
            return Ok(());
        }
        // Credential changes apply before the client sees the reply that confirms them.
        lock(tracker).on_bytes(&buf[..n]);
        client.write_all(&buf[..n]).await?;
        client.flush().await?;
    }
}

/// Resolves when the deadline in `rx` passes; a new value re-arms it.
async fn wait_for_deadline(mut rx: watch::Receiver<Option<Instant>>) {
    loop {
        let current = *rx.borrow_and_update();
        match current {
            Some(deadline) => {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => return,
                    changed = rx.changed() => if changed.is_err() {
                        tokio::time::sleep_until(deadline).await;
                        return;
                    },
                }
            }
            None => {
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

/// Serves one client connection over `client`, talking to the backend over `backend`.
pub(crate) async fn serve_connection<C, B>(shared: Arc<Shared>, id: u64, client: C, backend: B)
where
    C: AsyncRead + AsyncWrite + Unpin + Send,
    B: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut registration = Registration {
        shared: shared.clone(),
        id,
        reason: CloseReason::Client,
        last: LastSeen::default(),
    };
    let (deadline_tx, deadline_rx) = watch::channel(None);
    let tracker = Mutex::new(Tracker::new(shared.clone(), id, deadline_tx));
    let mut session = Session::new(shared, id);
    let (mut client_rd, mut client_wr) = tokio::io::split(client);
    let (mut backend_rd, mut backend_wr) = tokio::io::split(backend);
    let reason = {
        let up = pump_requests(&mut session, &tracker, &mut client_rd, &mut backend_wr);
        let down = pump_replies(&tracker, &mut backend_rd, &mut client_wr);
        let expiry = wait_for_deadline(deadline_rx);
        tokio::pin!(up, down, expiry);
        let mut client_done = false;
        loop {
            tokio::select! {
                r = &mut up, if !client_done => {
                    client_done = true;
                    if r.is_err() {
                        break CloseReason::Client;
                    }
                    // The client half-closed: the backend was told and closes; keep relaying until it does.
                }
                r = &mut down => {
                    break match r {
                        Ok(()) if !client_done => CloseReason::Backend,
                        _ => CloseReason::Client,
                    };
                }
                () = &mut expiry => break CloseReason::Expired,
            }
        }
    };
    registration.reason = reason;
    registration.last = std::mem::take(&mut session.last);
    if reason == CloseReason::Expired {
        // Best effort: a FIN (and a TLS close_notify) to the client; the backend side is simply dropped.
        let _ = tokio::time::timeout(Duration::from_secs(1), client_wr.shutdown()).await;
    }
}

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

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    // Connection tasks live in this set: aborting the accept loop drops it, which aborts them all.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "gateway accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let shared = shared.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            let id = shared.register(Some(peer));
            let backend = match TcpStream::connect(shared.backend.addr).await {
                Ok(backend) => backend,
                Err(e) => {
                    tracing::warn!(id, error = %e, "gateway could not reach its backend");
                    shared.unregister(id, CloseReason::BackendUnavailable, LastSeen::default());
                    return;
                }
            };
            let _ = backend.set_nodelay(true);
            match tls {
                None => serve_connection(shared, id, tcp, backend).await,
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => serve_connection(shared, id, stream, backend).await,
                        Ok(Err(e)) => {
                            tracing::debug!(id, error = %e, "gateway TLS handshake failed");
                            shared.unregister(id, CloseReason::TlsHandshake, LastSeen::default());
                        }
                        Err(_) => {
                            shared.unregister(id, CloseReason::TlsHandshake, LastSeen::default())
                        }
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::{RespClient, RespValue, token};

    const HOUR: Duration = Duration::from_secs(3600);

    /// A stand-in for redis-server that knows AUTH (backend credentials only), blocks forever on `BLPOP` and
    /// answers `+PONG` to the rest.
    async fn fake_backend(stream: tokio::io::DuplexStream) {
        let (mut rd, mut wr) = tokio::io::split(stream);
        let mut buf = BytesMut::new();
        loop {
            if rd.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                return;
            }
            loop {
                let view = buf.clone().freeze();
                let Ok(Some((request, used))) = parse_request(&view) else {
                    break;
                };
                let _ = buf.split_to(used);
                if is(&request.args[0], "BLPOP") {
                    // Blocked for good: like redis-server, nothing behind it is executed.
                    std::future::pending::<()>().await;
                }
                let reply: &[u8] = if is(&request.args[0], "AUTH") {
                    if request.args[1] == "default" && request.args[2] == "backend-pw" {
                        b"+OK\r\n"
                    } else {
                        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
                    }
                } else {
                    b"+PONG\r\n"
                };
                if wr.write_all(reply).await.is_err() {
                    return;
                }
            }
        }
    }

    fn gateway() -> Arc<Shared> {
        Shared::new(
            Backend {
                addr: SocketAddr::from(([127, 0, 0, 1], 1)),
                username: "default".into(),
                password: Secret::new("backend-pw"),
            },
            GatewayOptions::default(),
        )
    }

    fn connect(shared: &Arc<Shared>) -> RespClient {
        let (client, gateway_side) = tokio::io::duplex(64 * 1024);
        let (gateway_backend, backend) = tokio::io::duplex(64 * 1024);
        let id = shared.register(None);
        tokio::spawn(serve_connection(
            shared.clone(),
            id,
            gateway_side,
            gateway_backend,
        ));
        tokio::spawn(fake_backend(backend));
        RespClient::from_stream(client)
    }

    fn pong() -> RespValue {
        RespValue::Simple("PONG".into())
    }

    #[tokio::test(start_paused = true)]
    async fn the_connection_closes_when_the_token_expires() {
        let shared = gateway();
        let mut client = connect(&shared);
        let start = Instant::now();
        let reply = client
            .command(&["AUTH", "o", &token("o", HOUR)])
            .await
            .unwrap();
        assert_eq!(reply, RespValue::Simple("OK".into()));
        tokio::time::sleep(HOUR - Duration::from_secs(5)).await;
        assert_eq!(client.command(&["PING"]).await.unwrap(), pong());
        // Nothing else to do: paused time runs to the deadline and the gateway closes the connection.
        client.read_until_closed().await.unwrap();
        let closed_after = start.elapsed();
        assert!(
            closed_after > HOUR - Duration::from_secs(3) && closed_after <= HOUR,
            "{closed_after:?}"
        );
        let stats = shared.stats();
        assert_eq!(stats.closed_by_expiry, 1);
        let expired = stats.expired().next().unwrap();
        assert_eq!(expired.user.as_deref(), Some("o"));
        assert!(
            expired.age > HOUR - Duration::from_secs(3),
            "{:?}",
            expired.age
        );
        assert_eq!(stats.open_now, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_valid_reauth_moves_the_deadline() {
        let shared = gateway();
        let mut client = connect(&shared);
        let start = Instant::now();
        client
            .command(&["AUTH", "o", &token("o", HOUR)])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(3000)).await;
        // The wall clock has not moved: this token's exp is 2 h of tokio time from now.
        let reply = client
            .command(&["AUTH", "o", &token("o", 2 * HOUR)])
            .await
            .unwrap();
        assert_eq!(reply, RespValue::Simple("OK".into()));
        // A refused re-AUTH does not move it back.
        let reply = client.command(&["AUTH", "o", "garbage"]).await.unwrap();
        assert!(reply.as_error().unwrap().starts_with("WRONGPASS"));
        tokio::time::sleep(HOUR).await;
        assert_eq!(client.command(&["PING"]).await.unwrap(), pong());
        let live = shared.connections();
        assert_eq!(live[0].reauths, 1);
        client.read_until_closed().await.unwrap();
        let closed_after = start.elapsed();
        let expected = Duration::from_secs(3000) + 2 * HOUR;
        assert!(
            closed_after > expected - Duration::from_secs(3) && closed_after <= expected,
            "{closed_after:?}"
        );
        let stats = shared.stats();
        assert_eq!((stats.auth_ok, stats.auth_failed, stats.reauths), (2, 1, 1));
        assert_eq!(stats.expired().next().unwrap().reauths, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn unauthenticated_and_reset_connections_have_no_deadline() {
        let shared = gateway();
        let mut client = connect(&shared);
        tokio::time::sleep(24 * HOUR).await;
        assert_eq!(client.command(&["PING"]).await.unwrap(), pong());
        client
            .command(&["AUTH", "o", &token("o", HOUR)])
            .await
            .unwrap();
        client.command(&["RESET"]).await.unwrap();
        tokio::time::sleep(2 * HOUR).await;
        assert_eq!(client.command(&["PING"]).await.unwrap(), pong());
        assert_eq!(shared.stats().closed_by_expiry, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_auth_behind_a_blocked_command_does_not_move_the_deadline() {
        let shared = gateway();
        let mut client = connect(&shared);
        let start = Instant::now();
        let reply = client
            .command(&["AUTH", "o", &token("o", HOUR)])
            .await
            .unwrap();
        assert_eq!(reply, RespValue::Simple("OK".into()));
        client.send(&["BLPOP", "q", "0"]).await.unwrap();
        client
            .send(&["AUTH", "o", &token("o", 5 * HOUR)])
            .await
            .unwrap();
        // The gateway read the AUTH (its token was verified) but the server never ran it.
        assert_eq!(client.read_until_closed().await.unwrap(), 0);
        let closed_after = start.elapsed();
        assert!(
            closed_after > HOUR - Duration::from_secs(3) && closed_after <= HOUR,
            "{closed_after:?}"
        );
        let stats = shared.stats();
        assert_eq!(
            (stats.auth_ok, stats.reauths, stats.closed_by_expiry),
            (1, 0, 1)
        );
    }

    /// A session and its tracker, driven without sockets: requests in, reply bytes in.
    struct Harness {
        shared: Arc<Shared>,
        session: Session,
        tracker: Tracker,
    }

    impl Harness {
        fn new() -> Self {
            let shared = gateway();
            let id = shared.register(None);
            Self {
                session: Session::new(shared.clone(), id),
                tracker: Tracker::new(shared.clone(), id, watch::channel(None).0),
                shared,
            }
        }

        fn send(&mut self, commands: &[&[&str]]) {
            let mut wire = BytesMut::new();
            for command in commands {
                encode_command(command, &mut wire);
            }
            self.send_raw(&wire);
        }

        fn send_raw(&mut self, wire: &[u8]) {
            let mut view = Bytes::copy_from_slice(wire);
            let mut out = BytesMut::new();
            let mut expects = Vec::new();
            while let Some((request, used)) = parse_request(&view).unwrap() {
                let raw = view.split_to(used);
                self.session.handle(request, &raw, &mut out, &mut expects);
            }
            assert!(view.is_empty());
            for expect in expects {
                self.tracker.expect(expect);
            }
        }

        /// Feeds reply bytes in pieces of `piece` bytes.
        fn reply_in_pieces(&mut self, wire: &[u8], piece: usize) {
            for chunk in wire.chunks(piece) {
                self.tracker.on_bytes(chunk);
            }
        }

        fn reply(&mut self, wire: &[u8]) {
            self.reply_in_pieces(wire, wire.len().max(1));
        }

        /// (`auth_ok`, `reauths`) so far.
        fn auths(&self) -> (u64, u64) {
            let stats = self.shared.stats();
            (stats.auth_ok, stats.reauths)
        }

        fn expires_at(&self) -> Option<i64> {
            self.shared.connections()[0].expires_at
        }
    }

    fn exp_of(valid_for: Duration) -> i64 {
        i64::try_from((unix_now() + valid_for).as_secs()).unwrap()
    }

    #[test]
    fn auth_takes_effect_at_its_reply_in_a_pipeline_split_anywhere() {
        let (t1, t2) = (token("o", HOUR), token("o", 2 * HOUR));
        let replies = b"+PONG\r\n+OK\r\n$1\r\nx\r\n+OK\r\n*2\r\n$4\r\nkeys\r\n:7\r\n";
        for piece in [1, 2, 5, replies.len()] {
            let mut h = Harness::new();
            h.send(&[
                &["PING"],
                &["AUTH", "o", &t1],
                &["GET", "k"],
                &["AUTH", "o", &t2],
                &["HGETALL", "h"],
            ]);
            assert_eq!(h.auths(), (0, 0));
            h.reply_in_pieces(&replies[..7], piece);
            assert_eq!((h.auths(), h.expires_at()), ((0, 0), None));
            h.reply_in_pieces(&replies[7..12], piece);
            assert_eq!(h.auths(), (1, 0));
            assert!(h.tracker.authenticated);
            h.reply_in_pieces(&replies[12..19], piece);
            assert_eq!(h.auths(), (1, 0));
            h.reply_in_pieces(&replies[19..], piece);
            assert_eq!(h.auths(), (2, 1), "piece {piece}");
            assert!(!h.tracker.stopped);
            assert!(h.tracker.queue.is_empty());
        }
    }

    #[test]
    fn a_refused_or_failed_auth_changes_nothing() {
        let mut h = Harness::new();
        h.send(&[&["AUTH", "o", "garbage"], &["AUTH", "o", &token("o", HOUR)]]);
        assert_eq!(h.shared.stats().auth_failed, 1);
        // The backend refused even the gateway's own credentials: no effect.
        h.reply(
            b"-WRONGPASS invalid username-password pair or user is disabled.\r\n-WRONGPASS x\r\n",
        );
        assert_eq!((h.auths(), h.expires_at()), ((0, 0), None));
        assert!(!h.tracker.stopped);
    }

    #[test]
    fn auth_in_multi_takes_effect_at_a_successful_exec() {
        let t = token("o", 2 * HOUR);
        let mut h = Harness::new();
        h.send(&[&["AUTH", "o", &token("o", HOUR)]]);
        h.reply(b"+OK\r\n");
        let first = h.expires_at();
        h.send(&[&["MULTI"], &["AUTH", "o", &t], &["INCR", "c"]]);
        h.reply(b"+OK\r\n+QUEUED\r\n+QUEUED\r\n");
        assert_eq!((h.auths(), h.expires_at()), ((1, 0), first));
        h.send(&[&["EXEC"]]);
        h.reply(b"*2\r\n+OK\r\n:1\r\n");
        assert_eq!(h.auths(), (2, 1));
        assert_eq!(h.expires_at(), Some(exp_of(2 * HOUR)));
        // Aborted by WATCH (a null, either protocol), by EXECABORT, or discarded: nothing.
        for (end, reply) in [
            ("EXEC", &b"*-1\r\n"[..]),
            ("EXEC", b"_\r\n"),
            (
                "EXEC",
                b"-EXECABORT Transaction discarded because of previous errors.\r\n",
            ),
            ("DISCARD", b"+OK\r\n"),
        ] {
            h.send(&[&["MULTI"], &["AUTH", "o", &t], &[end]]);
            h.reply(b"+OK\r\n+QUEUED\r\n");
            h.reply(reply);
            assert_eq!(h.auths(), (2, 1), "{reply:?}");
        }
        assert!(!h.tracker.stopped);
    }

    #[test]
    fn resp3_pushes_and_attributes_are_not_counted_as_replies() {
        let mut h = Harness::new();
        h.send(&[&["HELLO", "3", "AUTH", "o", &token("o", HOUR)]]);
        h.reply(b"%1\r\n$5\r\nproto\r\n:3\r\n");
        assert_eq!((h.auths(), h.tracker.protocol), ((1, 0), 3));
        h.send(&[
            &["SUBSCRIBE", "a", "b"],
            &["PING"],
            &["AUTH", "o", &token("o", 2 * HOUR)],
        ]);
        // Confirmations, messages (one that looks like `+OK` inside), an attribute before PING's reply.
        h.reply(
            b">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n>3\r\n$7\r\nmessage\r\n$1\r\na\r\n+OK\r\n\
              >3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n|1\r\n+k\r\n+v\r\n+PONG\r\n\
              >3\r\n$7\r\nmessage\r\n$1\r\nb\r\n$2\r\nOK\r\n",
        );
        assert_eq!(h.auths(), (1, 0));
        h.reply(b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n+OK\r\n");
        assert_eq!(h.auths(), (2, 1));
        // Unsubscribe from everything: one confirmation per channel; then a PING and a RESET.
        h.send(&[&["UNSUBSCRIBE"], &["PING"], &["RESET"]]);
        h.reply(b">3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n>3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:0\r\n+PONG\r\n");
        assert!(h.tracker.authenticated);
        h.reply(b"+RESET\r\n");
        assert!(!h.tracker.authenticated);
        assert_eq!((h.tracker.protocol, h.expires_at()), (2, None));
        assert!(h.tracker.queue.is_empty() && !h.tracker.stopped);
    }

    #[test]
    fn resp2_subscriber_frames_are_told_from_replies() {
        let mut h = Harness::new();
        h.send(&[&["AUTH", "o", &token("o", HOUR)]]);
        h.reply(b"+OK\r\n");
        h.send(&[
            &["SUBSCRIBE", "a"],
            &["PSUBSCRIBE", "p*"],
            &["PING"],
            &["AUTH", "o", &token("o", 2 * HOUR)],
        ]);
        // AUTH is refused in RESP2 subscriber mode, counted at once.
        assert_eq!(h.shared.stats().auth_failed, 1);
        h.reply(b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$3\r\nsub\r\n");
        h.reply(b"*3\r\n$10\r\npsubscribe\r\n$2\r\np*\r\n:2\r\n*4\r\n$8\r\npmessage\r\n$2\r\np*\r\n$2\r\npx\r\n$1\r\nm\r\n");
        assert_eq!((h.tracker.channels, h.tracker.patterns), (1, 1));
        h.reply(b"*2\r\n$4\r\npong\r\n$0\r\n\r\n-ERR Can't execute 'auth'\r\n");
        // The channel goes; the pattern stays (its count is the total).
        h.send(&[&["UNSUBSCRIBE"], &["PUNSUBSCRIBE", "p*"]]);
        h.reply(b"*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$4\r\nlate\r\n");
        assert_eq!((h.tracker.channels, h.tracker.patterns), (0, 1));
        h.reply(b"*3\r\n$12\r\npunsubscribe\r\n$2\r\np*\r\n:0\r\n");
        assert!(!h.tracker.subscribed());
        assert!(h.tracker.queue.is_empty());
        // Not subscribed: an array that starts with "message" is an ordinary reply again.
        let t = token("o", 3 * HOUR);
        h.send(&[&["LRANGE", "l", "0", "-1"], &["AUTH", "o", &t]]);
        h.reply(b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nb\r\n");
        assert_eq!(h.auths(), (1, 0));
        h.reply(b"+OK\r\n");
        assert_eq!(h.auths(), (2, 1));
        assert_eq!(h.expires_at(), Some(exp_of(3 * HOUR)));
    }

    #[test]
    fn a_subscription_error_answers_the_subscription() {
        // RESP3 (in RESP2 the request side would refuse the AUTH: it counts the refused SSUBSCRIBE's channels).
        let mut h = Harness::new();
        h.send(&[&["HELLO", "3", "AUTH", "o", &token("o", HOUR)]]);
        h.reply(b"%1\r\n$5\r\nproto\r\n:3\r\n");
        h.send(&[
            &["SSUBSCRIBE", "a", "b"],
            &["SUBSCRIBE"],
            &["UNSUBSCRIBE"],
            &["PING"],
            &["AUTH", "o", &token("o", 2 * HOUR)],
        ]);
        h.reply(b"-CROSSSLOT Keys in request don't hash to the same slot\r\n");
        h.reply(b"-ERR wrong number of arguments for 'subscribe' command\r\n");
        // Unsubscribing from nothing: one confirmation with a null channel.
        h.reply(b">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n+PONG\r\n");
        assert_eq!(h.auths(), (1, 0));
        h.reply(b"+OK\r\n");
        assert_eq!(h.auths(), (2, 1));
        assert!(h.tracker.queue.is_empty() && !h.tracker.stopped);
    }

    #[test]
    fn suppressed_replies_apply_their_auth_at_the_next_reply() {
        let mut h = Harness::new();
        h.send(&[&["AUTH", "o", &token("o", HOUR)]]);
        h.reply(b"+OK\r\n");
        h.send(&[
            &["CLIENT", "REPLY", "SKIP"],
            &["AUTH", "o", &token("o", 2 * HOUR)],
            &["PING"],
        ]);
        assert_eq!(h.auths(), (1, 0));
        h.reply(b"+PONG\r\n");
        assert_eq!(h.auths(), (2, 1));
        h.send(&[
            &["CLIENT", "REPLY", "OFF"],
            &["AUTH", "o", &token("o", 3 * HOUR)],
            &["GET", "k"],
        ]);
        // Nothing comes back while replies are off: the AUTH has not shown it ran.
        assert_eq!(h.auths(), (2, 1));
        h.send(&[&["CLIENT", "REPLY", "ON"]]);
        h.reply(b"+OK\r\n");
        assert_eq!(h.auths(), (3, 2));
        assert_eq!(h.expires_at(), Some(exp_of(3 * HOUR)));
        // An empty request uses up a SKIP, as in redis-server.
        h.send(&[&["CLIENT", "REPLY", "SKIP"]]);
        h.send_raw(b"\r\n");
        h.send(&[&["AUTH", "o", &token("o", 4 * HOUR)]]);
        h.reply(b"+OK\r\n");
        assert_eq!(h.auths(), (4, 3));
        assert!(h.tracker.queue.is_empty() && !h.tracker.stopped);
    }

    #[test]
    fn unfollowable_replies_stop_all_later_credential_changes() {
        let t = token("o", 2 * HOUR);
        // MONITOR: its `+OK`, then a feed of simple strings.
        let mut h = Harness::new();
        h.send(&[
            &["AUTH", "o", &token("o", HOUR)],
            &["MONITOR"],
            &["AUTH", "o", &t],
        ]);
        h.reply(b"+OK\r\n+OK\r\n+1700000000.000000 [0 127.0.0.1:1] \"PING\"\r\n+OK\r\n");
        assert!(h.tracker.stopped);
        assert_eq!(h.auths(), (1, 0));
        // A transaction that subscribes.
        let mut h = Harness::new();
        h.send(&[&["AUTH", "o", &token("o", HOUR)]]);
        h.reply(b"+OK\r\n");
        h.send(&[
            &["MULTI"],
            &["SUBSCRIBE", "a"],
            &["EXEC"],
            &["AUTH", "o", &t],
        ]);
        h.reply(b"+OK\r\n+QUEUED\r\n*1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n");
        assert!(h.tracker.stopped);
        h.reply(b"+OK\r\n");
        assert_eq!(h.auths(), (1, 0));
        // A reply nobody asked for, and one that is not RESP.
        for bad in [&b"+OK\r\n+OK\r\n"[..], b"+OK\r\n?\r\n"] {
            let mut h = Harness::new();
            h.send(&[&["AUTH", "o", &token("o", HOUR)]]);
            h.reply(bad);
            assert!(h.tracker.stopped, "{bad:?}");
            h.send(&[&["AUTH", "o", &t]]);
            h.reply(b"+OK\r\n");
            assert_eq!(h.auths(), (1, 0));
            assert!(h.tracker.queue.is_empty());
        }
    }

    #[test]
    fn the_deadline_follows_exp_on_the_tokio_clock() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let exp = i64::try_from(unix_now().as_secs()).unwrap() + 100;
            let left = deadline_for(exp).duration_since(Instant::now());
            assert!(left > Duration::from_secs(98) && left <= Duration::from_secs(100));
            assert_eq!(deadline_for(0), Instant::now());
        });
    }

    #[test]
    fn options_and_backend_debug_hide_secrets() {
        let backend = Backend {
            addr: SocketAddr::from(([127, 0, 0, 1], 6379)),
            username: "default".into(),
            password: Secret::new("very-secret-pw"),
        };
        assert!(!format!("{backend:?}").contains("very-secret-pw"));
        let shown = format!("{:?}", GatewayOptions::default());
        assert!(shown.contains("https://redis.azure.com"), "{shown}");
    }
}
