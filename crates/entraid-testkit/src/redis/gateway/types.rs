//! The gateway's public types: its options ([`GatewayOptions`], [`Backend`]) and what it reports ([`GatewayStats`],
//! [`ClosedConnection`], [`ConnectionInfo`], [`CloseReason`]).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use entraid_core::Secret;
use tokio::time::Instant;

use super::REDIS_AUDIENCE;
use crate::keys::{JwtVerifier, TestKey};
use crate::redis::policy::AccessPolicy;

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
    /// (every command allowed). Default: `None`; [`RedisHarness`](crate::redis::RedisHarness) always sets one
    /// ([`HarnessOptions::access_policy`](crate::redis::HarnessOptions::access_policy), Data Contributor by default).
    pub access_policy: Option<AccessPolicy>,
    /// A password that `AUTH <password>` (user `default`) may present instead of a token, forwarded as is: the
    /// cluster's own replication links. A replica connects to its primary at the address the primary announces
    /// (its gateway) and authenticates with `masterauth`, which is no Entra token. Such a connection has no
    /// deadline, no user and is not counted in [`GatewayStats::auth_ok`]. Default: `None` (only tokens);
    /// [`RedisCluster`](crate::redis::RedisCluster) sets it to its nodes' password. `Debug` hides it.
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
