//! The Redis harness: real `redis-server` processes behind a gateway that enforces Entra ID tokens the way Azure
//! Managed Redis does.
//!
//! - [`RedisServer`]: one `redis-server` (6 or newer) on a free 127.0.0.1 port, password-protected, no
//!   persistence, in its own temporary directory; killed and reaped on drop, its log printed when a test panics.
//! - [`Gateway`]: a RESP2/RESP3-aware proxy in front of a node. `AUTH` and `HELLO ... AUTH` carry Entra tokens,
//!   which the gateway verifies (signature, `aud`, `exp`, `nbf`, user = `oid`); the connection is closed when its
//!   token expires unless it re-authenticated, and a re-AUTH counts only once redis-server has executed it (not
//!   while it waits behind a blocked command or in an open `MULTI`). Everything else passes through verbatim. See
//!   the module docs of [`gateway`] for the exact rules.
//! - [`AccessPolicy`]: Azure's data access policies (Data Owner, Data Contributor, Data Reader, custom) applied to
//!   each token's principal as real ACL rules on redis-server, so redis-server itself answers `NOPERM` as Azure
//!   does. The harness applies **Data Contributor** unless told otherwise: `CLIENT UNBLOCK`, `INFO` and every
//!   other `@dangerous` command are refused.
//! - [`RedisCluster`]: primaries (and optionally replicas) in cluster mode, each behind its own gateway and
//!   announcing its gateway's port, with helpers to kill or pause a primary, fail over, add a primary and migrate
//!   slots, each waiting until the cluster has converged.
//! - [`RedisHarness`]: the convenient entry point: standalone, standalone with TLS, or cluster.
//! - [`RespClient`]: a raw RESP client for tests and benchmarks.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), entraid_testkit::redis::Error> {
//! use std::time::Duration;
//! use entraid_testkit::redis::{RedisHarness, RespValue, token};
//!
//! let harness = RedisHarness::standalone().await?;
//! let token = token("user-1", Duration::from_secs(3600)); // signed by the emulator's key
//! let mut client = harness.connect().await?;
//! assert_eq!(client.command(&["AUTH", "user-1", &token]).await?, RespValue::Simple("OK".into()));
//! assert_eq!(harness.stats().auth_ok, 1);
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

mod client;
mod cluster;
pub mod gateway;
mod minting;
mod policy;
mod reply;
mod resp;
mod scan;
mod server;

pub use client::{RespClient, RespStream};
pub use cluster::{
    ClusterOptions, FailoverMode, Failure, RedisCluster, Role, SLOTS, SlotRange, parse_slots,
    slot_range,
};
pub use gateway::{
    Backend, CloseReason, ClosedConnection, ConnectionInfo, Gateway, GatewayOptions, GatewayStats,
    REDIS_AUDIENCE,
};
pub use minting::MintingProvider;
pub use policy::AccessPolicy;
pub use reply::RespValue;
pub use resp::{ProtocolError, encode_command};
pub use server::{RedisServer, RedisServerOptions, free_port};

use crate::tls::TestCa;

/// Why the harness could not do something.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The `redis-server` program was not found.
    #[error(
        "`{}` not found: the Redis harness needs redis-server 6 or newer; install it (e.g. `apt-get install -y redis-server`) or set ENTRAID_REDIS_SERVER to its path",
        program.display()
    )]
    RedisServerMissing {
        /// The program that was looked for.
        program: PathBuf,
    },
    /// `redis-server --version` reported a version older than 6 (or nothing recognisable).
    #[error(
        "redis-server {version} cannot be used: version 6 or newer is needed (`apt-get install -y redis-server`)"
    )]
    RedisServerTooOld {
        /// What `--version` reported.
        version: String,
    },
    /// redis-server exited while starting.
    #[error("redis-server exited during start-up ({status}); last log lines:\n{log_tail}")]
    Exited {
        /// The exit status.
        status: String,
        /// The end of its log.
        log_tail: String,
    },
    /// redis-server did not answer `PING` in time.
    #[error("redis-server on {addr} did not answer PING in time; last log lines:\n{log_tail}")]
    StartTimeout {
        /// Where it should have listened.
        addr: SocketAddr,
        /// The end of its log.
        log_tail: String,
    },
    /// A setup command got an unexpected reply.
    #[error("unexpected reply to {command}: {reply}")]
    UnexpectedReply {
        /// The command.
        command: &'static str,
        /// The reply, debug-formatted.
        reply: String,
    },
    /// The peer closed the connection.
    #[error("the connection was closed")]
    Closed,
    /// The peer sent bytes that are not RESP.
    #[error("RESP protocol error: {0}")]
    Protocol(String),
    /// A TLS handshake or configuration failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The cluster could not be formed.
    #[error("cluster: {0}")]
    Cluster(String),
    /// Something did not happen in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// An I/O error.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// A token the gateway accepts: RS256-signed by the emulator's key ([`crate::keys::TestKey::entra`]), `aud`
/// `https://redis.azure.com`, `oid` = `sub` = `oid`, `iat` = `nbf` = now, `exp` = now + `valid_for` (whole seconds,
/// wall clock). Minted at the moment of the call.
pub fn token(oid: &str, valid_for: Duration) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    crate::keys::TestKey::entra().sign_jwt(&serde_json::json!({
        "aud": REDIS_AUDIENCE,
        "iss": "https://sts.windows.net/00000000-0000-0000-0000-000000000000/",
        "iat": now,
        "nbf": now,
        "exp": now + valid_for.as_secs(),
        "oid": oid,
        "sub": oid,
        "tid": "00000000-0000-0000-0000-000000000000",
        "idtyp": "app",
    }))
}

/// The server name the TLS gateway's certificate is issued for (an IP SAN); connect with it.
pub const TLS_SERVER_NAME: &str = "127.0.0.1";

/// The topology [`RedisHarness::start`] builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Topology {
    /// One server behind one gateway (the default).
    #[default]
    Standalone,
    /// A cluster of this many masters, each behind its own gateway.
    Cluster {
        /// The number of masters.
        masters: usize,
    },
}

/// Options for [`RedisHarness::start`].
#[derive(Debug, Clone, Default)]
pub struct HarnessOptions {
    /// Standalone or cluster. Default: standalone.
    pub topology: Topology,
    /// Serve clients over TLS with a certificate from this CA (for `127.0.0.1` and `localhost`). Default: none.
    /// In a cluster every node's gateway serves TLS, and the nodes announce the gateways' (TLS) ports.
    pub tls: Option<TestCa>,
    /// Options for every redis-server. Default: the defaults.
    pub server: RedisServerOptions,
    /// Options for every gateway (its `tls` is set from [`HarnessOptions::tls`], its `access_policy` from
    /// [`HarnessOptions::access_policy`]). Default: the defaults.
    pub gateway: GatewayOptions,
    /// The data access policy every token's principal gets, as real ACL rules on every redis-server (see
    /// [`AccessPolicy`]). Default: [`AccessPolicy::DataContributor`], Azure's usual one for applications, which
    /// refuses `CLIENT UNBLOCK`, `INFO` and every other `@dangerous` command with `NOPERM`.
    pub access_policy: AccessPolicy,
    /// In a cluster: how many replicas each primary gets (each behind its own gateway). Default: 0.
    pub replicas_per_master: usize,
    /// In a cluster: `cluster-node-timeout`. Default: none (the cluster's default, 5 s).
    pub cluster_node_timeout: Option<Duration>,
}

/// Redis behind enforcing gateways: the entry point for tests, the demo and benchmarks.
///
/// Dropping it stops the gateways and kills every redis-server it started.
#[derive(Debug)]
pub struct RedisHarness {
    // Field order is drop order: gateways stop before their servers are killed.
    gateways: Vec<Gateway>,
    servers: Vec<RedisServer>,
    /// The cluster's nodes, for a cluster (then `gateways` and `servers` are empty).
    cluster: Option<RedisCluster>,
    tls_client: Option<Arc<rustls::ClientConfig>>,
}

fn tls_server_config(ca: &TestCa) -> Result<Arc<rustls::ServerConfig>, Error> {
    let issued = ca
        .issue_server_cert(&[TLS_SERVER_NAME, "localhost"])
        .map_err(|e| Error::Tls(e.to_string()))?;
    let config = rustls::ServerConfig::builder_with_provider(crate::tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(issued.chain, issued.key)
        .map_err(|e| Error::Tls(e.to_string()))?;
    Ok(Arc::new(config))
}

impl RedisHarness {
    /// One redis-server behind one plain-TCP gateway.
    pub async fn standalone() -> Result<Self, Error> {
        Self::start(HarnessOptions::default()).await
    }

    /// One redis-server behind one TLS gateway whose certificate `ca` issued (for `127.0.0.1` and `localhost`).
    pub async fn standalone_tls(ca: &TestCa) -> Result<Self, Error> {
        Self::start(HarnessOptions {
            tls: Some(ca.clone()),
            ..HarnessOptions::default()
        })
        .await
    }

    /// One redis-server behind one plain-TCP gateway, every principal under `policy`.
    pub async fn standalone_with(policy: AccessPolicy) -> Result<Self, Error> {
        Self::start(HarnessOptions {
            access_policy: policy,
            ..HarnessOptions::default()
        })
        .await
    }

    /// A cluster of 3 masters, each behind its own gateway, every principal under `policy`.
    pub async fn cluster_with(policy: AccessPolicy) -> Result<Self, Error> {
        Self::start(HarnessOptions {
            topology: Topology::Cluster { masters: 3 },
            access_policy: policy,
            ..HarnessOptions::default()
        })
        .await
    }

    /// A cluster of 3 masters, each behind its own gateway.
    pub async fn cluster() -> Result<Self, Error> {
        Self::start(HarnessOptions {
            topology: Topology::Cluster { masters: 3 },
            ..HarnessOptions::default()
        })
        .await
    }

    /// Starts what `options` describe.
    pub async fn start(options: HarnessOptions) -> Result<Self, Error> {
        let mut gateway_options = options.gateway;
        gateway_options.access_policy = Some(options.access_policy.clone());
        let tls_client = match &options.tls {
            Some(ca) => {
                gateway_options.tls = Some(tls_server_config(ca)?);
                Some(ca.rustls_client_config())
            }
            None => None,
        };
        match options.topology {
            Topology::Standalone => {
                let server = RedisServer::start_with(options.server).await?;
                let gateway = Gateway::start(
                    Backend {
                        addr: server.addr(),
                        username: "default".into(),
                        password: server.password().clone(),
                    },
                    gateway_options,
                )
                .await?;
                Ok(Self {
                    gateways: vec![gateway],
                    servers: vec![server],
                    cluster: None,
                    tls_client,
                })
            }
            Topology::Cluster { masters } => {
                let defaults = ClusterOptions::default();
                let cluster = RedisCluster::start(ClusterOptions {
                    masters,
                    replicas_per_master: options.replicas_per_master,
                    node_timeout: options
                        .cluster_node_timeout
                        .unwrap_or(defaults.node_timeout),
                    server: options.server,
                    gateway: gateway_options,
                    ..defaults
                })
                .await?;
                Ok(Self {
                    gateways: Vec::new(),
                    servers: Vec::new(),
                    cluster: Some(cluster),
                    tls_client,
                })
            }
        }
    }

    /// The first gateway's address (the one to give a standalone client, or a cluster client's seed).
    pub fn addr(&self) -> SocketAddr {
        self.gateways()[0].addr()
    }

    /// The cluster's nodes (roles, failover, scale-out), for a cluster.
    pub fn cluster_nodes(&self) -> Option<&RedisCluster> {
        self.cluster.as_ref()
    }

    /// The cluster's nodes, to change the topology (kill, pause, fail over, add a primary, migrate slots).
    pub fn cluster_nodes_mut(&mut self) -> Option<&mut RedisCluster> {
        self.cluster.as_mut()
    }

    /// Every gateway's address, in node order.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.gateways().iter().map(Gateway::addr).collect()
    }

    /// Every redis-server's own address (no gateway, password required), for benchmarks and setup.
    pub fn direct_addrs(&self) -> Vec<SocketAddr> {
        self.servers().iter().map(RedisServer::addr).collect()
    }

    /// A `redis://` (or `rediss://` with TLS) URL of the first gateway, without credentials.
    pub fn url(&self) -> String {
        let scheme = if self.is_tls() { "rediss" } else { "redis" };
        format!("{scheme}://{}", self.addr())
    }

    /// Whether the gateways speak TLS.
    pub fn is_tls(&self) -> bool {
        self.tls_client.is_some()
    }

    /// A rustls client config trusting the gateway's certificate, when TLS is on.
    pub fn tls_client_config(&self) -> Option<Arc<rustls::ClientConfig>> {
        self.tls_client.clone()
    }

    /// The gateways, in node order (a cluster's, including nodes added since it started).
    pub fn gateways(&self) -> &[Gateway] {
        self.cluster
            .as_ref()
            .map_or(&self.gateways, |c| c.gateways())
    }

    /// The redis-servers, in node order.
    pub fn servers(&self) -> &[RedisServer] {
        self.cluster.as_ref().map_or(&self.servers, |c| c.servers())
    }

    /// Every gateway's counters, added up.
    pub fn stats(&self) -> GatewayStats {
        let mut total = GatewayStats::default();
        for gateway in self.gateways() {
            total.merge(&gateway.stats());
        }
        total
    }

    /// Fault injection on every gateway: see [`Gateway::set_refuse_reauth_named`].
    pub fn set_refuse_reauth_named(&self, name: Option<String>) {
        for gateway in self.gateways() {
            gateway.set_refuse_reauth_named(name.clone());
        }
    }

    /// Fault injection on every gateway: see [`Gateway::set_refuse_reauth`].
    pub fn set_refuse_reauth(&self, refuse: bool) {
        for gateway in self.gateways() {
            gateway.set_refuse_reauth(refuse);
        }
    }

    /// Every gateway's live connections.
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        self.gateways()
            .iter()
            .flat_map(Gateway::connections)
            .collect()
    }

    /// A raw client to the first gateway (over TLS when the harness uses it), not authenticated.
    pub async fn connect(&self) -> Result<RespClient, Error> {
        self.connect_to(self.addr()).await
    }

    /// A raw client to the gateway at `addr` (over TLS when the harness uses it), not authenticated.
    pub async fn connect_to(&self, addr: SocketAddr) -> Result<RespClient, Error> {
        match &self.tls_client {
            Some(config) => RespClient::connect_tls(addr, config.clone(), TLS_SERVER_NAME).await,
            None => RespClient::connect(addr).await,
        }
    }

    /// Waits until the added-up stats satisfy `condition` (polled every 10 ms), or fails after `timeout`.
    pub async fn wait_for_stats(
        &self,
        timeout: Duration,
        condition: impl Fn(&GatewayStats) -> bool,
    ) -> Result<GatewayStats, Error> {
        let wait = async {
            loop {
                let stats = self.stats();
                if condition(&stats) {
                    return stats;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(timeout, wait).await.map_err(|_| {
            Error::Timeout(format!(
                "harness stats condition not met in {timeout:?}: {:?}",
                self.stats()
            ))
        })
    }
}
