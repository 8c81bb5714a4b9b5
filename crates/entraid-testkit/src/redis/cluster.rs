//! [`RedisCluster`]: redis-server masters in cluster mode, each behind its own [`Gateway`] and announcing the
//! gateway's port (`cluster-announce-port`), so `MOVED`, `ASK`, `CLUSTER SLOTS` and `CLUSTER SHARDS` send clients
//! to gateways without any reply being rewritten.
//!
//! Each node's cluster bus listens on its own free port (`cluster-port`), given explicitly to `CLUSTER MEET`, so the
//! bus port never depends on `port + 10000`.

use std::time::Duration;

use tokio::net::TcpListener;

use super::gateway::{Backend, Gateway, GatewayOptions};
use super::server::{RedisServer, RedisServerOptions};
use super::{Error, RespValue};

/// The number of hash slots in a Redis cluster.
pub const SLOTS: u16 = 16384;

/// Options for [`RedisCluster::start`].
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// How many masters (each owns an equal share of the slots). Default: 3.
    pub masters: usize,
    /// Options for every node (`cluster` and `announce_port` are set by the cluster). Default: the defaults.
    pub server: RedisServerOptions,
    /// Options for every node's gateway. Default: the defaults.
    pub gateway: GatewayOptions,
    /// How long to wait for `cluster_state:ok` on every node. Default: 30 s.
    pub ready_timeout: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            masters: 3,
            server: RedisServerOptions::default(),
            gateway: GatewayOptions::default(),
            ready_timeout: Duration::from_secs(30),
        }
    }
}

/// A running cluster: one gateway per master. Dropping it stops the gateways, then kills every node.
#[derive(Debug)]
pub struct RedisCluster {
    /// The gateways, in node order (the order of slot ranges).
    pub gateways: Vec<Gateway>,
    /// The nodes, in the same order.
    pub servers: Vec<RedisServer>,
}

fn expect_ok(command: &'static str, reply: RespValue) -> Result<(), Error> {
    match reply {
        RespValue::Simple(s) if s == "OK" => Ok(()),
        other => Err(Error::UnexpectedReply {
            command,
            reply: format!("{other:?}"),
        }),
    }
}

/// The slot range of node `i` of `n`: equal shares, the last one takes the remainder.
pub fn slot_range(i: usize, n: usize) -> (u16, u16) {
    let n = n.max(1);
    let share = usize::from(SLOTS) / n;
    let start = share * i;
    let end = if i + 1 == n {
        usize::from(SLOTS) - 1
    } else {
        share * (i + 1) - 1
    };
    (
        u16::try_from(start).unwrap_or(SLOTS - 1),
        u16::try_from(end).unwrap_or(SLOTS - 1),
    )
}

impl RedisCluster {
    /// Starts the masters and their gateways, joins them (`CLUSTER MEET`), assigns the slots
    /// (`CLUSTER ADDSLOTSRANGE`) and waits until every node reports `cluster_state:ok` and knows every other node.
    pub async fn start(options: ClusterOptions) -> Result<Self, Error> {
        if options.masters == 0 {
            return Err(Error::Cluster("a cluster needs at least one master".into()));
        }
        let mut cluster = Self {
            gateways: Vec::new(),
            servers: Vec::new(),
        };
        let mut server_options = options.server.clone();
        server_options.cluster = true;
        for _ in 0..options.masters {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let gateway_port = listener.local_addr()?.port();
            server_options.announce_port = Some(gateway_port);
            let server = RedisServer::start_with(server_options.clone()).await?;
            // Every node shares the first node's password.
            server_options.password = Some(server.password().clone());
            let gateway = Gateway::from_listener(
                listener,
                Backend {
                    addr: server.addr(),
                    username: "default".into(),
                    password: server.password().clone(),
                },
                options.gateway.clone(),
            )?;
            cluster.gateways.push(gateway);
            cluster.servers.push(server);
        }
        let mut first = cluster.servers[0].connect().await?;
        for (server, gateway) in cluster.servers.iter().zip(&cluster.gateways).skip(1) {
            let bus = server
                .bus_port()
                .ok_or_else(|| Error::Cluster("a cluster node has no bus port".into()))?;
            let reply = first
                .command(&[
                    "CLUSTER".to_owned(),
                    "MEET".to_owned(),
                    "127.0.0.1".to_owned(),
                    gateway.addr().port().to_string(),
                    bus.to_string(),
                ])
                .await?;
            expect_ok("CLUSTER MEET", reply)?;
        }
        let n = cluster.servers.len();
        for (i, server) in cluster.servers.iter().enumerate() {
            let (start, end) = slot_range(i, n);
            let reply = server
                .connect()
                .await?
                .command(&[
                    "CLUSTER".to_owned(),
                    "ADDSLOTSRANGE".to_owned(),
                    start.to_string(),
                    end.to_string(),
                ])
                .await?;
            expect_ok("CLUSTER ADDSLOTSRANGE", reply)?;
        }
        tokio::time::timeout(options.ready_timeout, cluster.wait_ready())
            .await
            .map_err(|_| {
                let logs: Vec<String> = cluster.servers.iter().map(|s| s.log_tail(10)).collect();
                Error::Cluster(format!(
                    "cluster not ready in {:?}; node logs:\n{}",
                    options.ready_timeout,
                    logs.join("\n---\n")
                ))
            })??;
        Ok(cluster)
    }

    async fn wait_ready(&self) -> Result<(), Error> {
        let n = self.servers.len();
        for server in &self.servers {
            let mut client = server.connect().await?;
            loop {
                let info = client.command(&["CLUSTER", "INFO"]).await?;
                let info = info.as_text().unwrap_or_default();
                let slots = client.command(&["CLUSTER", "SLOTS"]).await?;
                let ranges = slots.as_items().map_or(0, <[RespValue]>::len);
                if info.contains("cluster_state:ok")
                    && info.contains(&format!("cluster_known_nodes:{n}\r"))
                    && ranges == n
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }
}
