//! [`RedisCluster`]: redis-server nodes in cluster mode (primaries, and optionally replicas), each behind its own
//! [`Gateway`] and announcing the gateway's port (`cluster-announce-port`), so `MOVED`, `ASK`, `CLUSTER SLOTS` and
//! `CLUSTER SHARDS` send clients to gateways without any reply being rewritten.
//!
//! Each node's cluster bus listens on its own free port (`cluster-port`), given explicitly to `CLUSTER MEET`, so the
//! bus port never depends on `port + 10000`. A replica replicates through its primary's gateway (the address the
//! primary announces), which lets the nodes' own password through for that ([`GatewayOptions::replication_password`]).
//!
//! Topology changes for tests, each waiting until the cluster has converged again ([`RedisCluster::wait_converged`]:
//! `cluster_state:ok` on every reachable node, all of them showing the same slot map, which covers every slot, and
//! every replica's link to its primary up), with a timeout: [`RedisCluster::fail_primary`] (kill or pause a primary
//! until one of its replicas takes over), [`RedisCluster::failover`] (`CLUSTER FAILOVER [FORCE|TAKEOVER]`),
//! [`RedisCluster::resume`] (a paused node rejoins), [`RedisCluster::add_primary`] and
//! [`RedisCluster::migrate_slots`] (`SETSLOT ... IMPORTING/MIGRATING`, `MIGRATE ... KEYS`, `SETSLOT ... NODE`),
//! [`RedisCluster::remove_node`] (`CLUSTER FORGET` everywhere, then kill).
//! Setup and changes talk to the nodes directly (as user `default`), never through a gateway.

use std::collections::HashMap;
use std::time::Duration;

use tokio::net::TcpListener;

mod changes;

use super::gateway::{Backend, Gateway, GatewayOptions};
use super::server::{RedisServer, RedisServerOptions};
use super::{Error, RespClient, RespValue};

/// The number of hash slots in a Redis cluster.
pub const SLOTS: u16 = 16384;

/// How often convergence is polled.
const POLL: Duration = Duration::from_millis(50);

/// How many keys one `MIGRATE` moves.
const MIGRATE_BATCH: usize = 100;

/// Options for [`RedisCluster::start`].
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// How many primaries (each owns an equal share of the slots). Default: 3.
    pub masters: usize,
    /// How many replicas each primary gets, each behind its own gateway. Default: 0.
    pub replicas_per_master: usize,
    /// `cluster-node-timeout`: how long a node may be unreachable before it is failed over. Default: 5 s; tests
    /// that fail nodes over use 1-2 s.
    pub node_timeout: Duration,
    /// Options for every node (`cluster` and `announce_port` are set by the cluster). Default: the defaults.
    pub server: RedisServerOptions,
    /// Options for every node's gateway (`replication_password` is set by the cluster). Default: the defaults.
    pub gateway: GatewayOptions,
    /// How long to wait for the cluster to form or converge after a change. Default: 30 s.
    pub ready_timeout: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            masters: 3,
            replicas_per_master: 0,
            node_timeout: Duration::from_secs(5),
            server: RedisServerOptions::default(),
            gateway: GatewayOptions::default(),
            ready_timeout: Duration::from_secs(30),
        }
    }
}

/// What a node is, as the cluster sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// A primary serving slots.
    Primary,
    /// A primary without slots (a node just added, or one that gave all its slots away).
    EmptyPrimary,
    /// A replica of the node with this index.
    Replica {
        /// The index of its primary.
        of: usize,
    },
    /// Killed, paused, or flagged failed by the cluster.
    Down,
}

/// How [`RedisCluster::fail_primary`] takes a primary away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// SIGKILL: the node is gone for good (its gateway stays, and finds no backend).
    Kill,
    /// SIGSTOP: the node hangs with its connections open (a frozen VM); [`RedisCluster::resume`] lets it go on.
    Pause,
}

/// The variants of `CLUSTER FAILOVER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailoverMode {
    /// A coordinated manual failover: the primary stops its clients until the replica has caught up.
    Coordinated,
    /// `FORCE`: without the primary's agreement (it may be down), with the other primaries' votes.
    Force,
    /// `TAKEOVER`: without any vote.
    Takeover,
}

/// One slot range of `CLUSTER SLOTS`: first and last slot, the primary's announced port, its replicas' (sorted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRange {
    /// The first slot.
    pub start: u16,
    /// The last slot.
    pub end: u16,
    /// The primary's announced port (its gateway's).
    pub primary: u16,
    /// The replicas' announced ports, sorted.
    pub replicas: Vec<u16>,
}

/// A running cluster: one gateway per node. Dropping it stops the gateways, then kills every node.
#[derive(Debug)]
pub struct RedisCluster {
    // Field order is drop order: gateways stop before their servers are killed.
    gateways: Vec<Gateway>,
    servers: Vec<RedisServer>,
    /// Each node's cluster id, in node order.
    ids: Vec<String>,
    /// Killed (SIGKILL) nodes.
    killed: Vec<bool>,
    /// Paused (SIGSTOP) nodes.
    paused: Vec<bool>,
    /// Nodes the others forgot ([`RedisCluster::remove_node`]).
    removed: usize,
    server_options: RedisServerOptions,
    gateway_options: GatewayOptions,
    ready_timeout: Duration,
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

fn int(value: Option<&RespValue>) -> Option<i64> {
    match value {
        Some(RespValue::Integer(n)) => Some(*n),
        _ => None,
    }
}

fn port_of(node: &RespValue) -> Option<u16> {
    int(node.as_items()?.get(1)).and_then(|p| u16::try_from(p).ok())
}

/// Reads a `CLUSTER SLOTS` reply as sorted [`SlotRange`]s.
pub fn parse_slots(reply: &RespValue) -> Option<Vec<SlotRange>> {
    let mut ranges = Vec::new();
    for range in reply.as_items()? {
        let items = range.as_items()?;
        let start = u16::try_from(int(items.first())?).ok()?;
        let end = u16::try_from(int(items.get(1))?).ok()?;
        let primary = port_of(items.get(2)?)?;
        let mut replicas = items
            .get(3..)
            .unwrap_or_default()
            .iter()
            .map(port_of)
            .collect::<Option<Vec<u16>>>()?;
        replicas.sort_unstable();
        ranges.push(SlotRange {
            start,
            end,
            primary,
            replicas,
        });
    }
    ranges.sort_by_key(|r| r.start);
    Some(ranges)
}

fn args(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| (*s).to_owned()).collect()
}

impl RedisCluster {
    /// Starts the primaries and replicas and their gateways, joins them (`CLUSTER MEET`), assigns the slots to the
    /// primaries (`CLUSTER ADDSLOTSRANGE`), attaches the replicas (`CLUSTER REPLICATE`, primary `i % masters`)
    /// and waits until the cluster has converged ([`RedisCluster::wait_converged`]).
    pub async fn start(options: ClusterOptions) -> Result<Self, Error> {
        if options.masters == 0 {
            return Err(Error::Cluster("a cluster needs at least one master".into()));
        }
        let mut server_options = options.server.clone();
        server_options.cluster = true;
        server_options.extra_config.push(format!(
            "cluster-node-timeout {}",
            options.node_timeout.as_millis().max(100)
        ));
        // A replica is listed in CLUSTER SLOTS once its offset moved: its primary pings it every second.
        server_options
            .extra_config
            .push("repl-ping-replica-period 1".into());
        let mut cluster = Self {
            gateways: Vec::new(),
            servers: Vec::new(),
            ids: Vec::new(),
            killed: Vec::new(),
            paused: Vec::new(),
            removed: 0,
            server_options,
            gateway_options: options.gateway.clone(),
            ready_timeout: options.ready_timeout,
        };
        let total = options.masters * (1 + options.replicas_per_master);
        for _ in 0..total {
            cluster.start_node().await?;
        }
        for i in 1..total {
            cluster.meet(i).await?;
        }
        for i in 0..options.masters {
            let (start, end) = slot_range(i, options.masters);
            let reply = cluster.servers[i]
                .connect()
                .await?
                .command(&args(&[
                    "CLUSTER",
                    "ADDSLOTSRANGE",
                    &start.to_string(),
                    &end.to_string(),
                ]))
                .await?;
            expect_ok("CLUSTER ADDSLOTSRANGE", reply)?;
        }
        cluster
            .within("the nodes to meet", cluster.wait_known(total))
            .await?;
        for i in options.masters..total {
            let primary = cluster.ids[i % options.masters].clone();
            let reply = cluster.servers[i]
                .connect()
                .await?
                .command(&args(&["CLUSTER", "REPLICATE", &primary]))
                .await?;
            expect_ok("CLUSTER REPLICATE", reply)?;
        }
        cluster.wait_converged().await?;
        Ok(cluster)
    }

    /// Starts one more node (cluster mode, its own gateway, no slots) and returns its index.
    async fn start_node(&mut self) -> Result<usize, Error> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let gateway_port = listener.local_addr()?.port();
        let mut server_options = self.server_options.clone();
        server_options.announce_port = Some(gateway_port);
        let server = RedisServer::start_with(server_options).await?;
        // Every node shares the first node's password (also `masterauth`, for replication).
        self.server_options.password = Some(server.password().clone());
        let mut gateway_options = self.gateway_options.clone();
        gateway_options.replication_password = Some(server.password().clone());
        let gateway = Gateway::from_listener(
            listener,
            Backend {
                addr: server.addr(),
                username: "default".into(),
                password: server.password().clone(),
            },
            gateway_options,
        )?;
        let id = server
            .connect()
            .await?
            .command(&["CLUSTER", "MYID"])
            .await?
            .as_text()
            .ok_or_else(|| Error::Cluster("CLUSTER MYID gave no id".into()))?;
        self.gateways.push(gateway);
        self.servers.push(server);
        self.ids.push(id);
        self.killed.push(false);
        self.paused.push(false);
        Ok(self.servers.len() - 1)
    }

    /// Introduces node `i` to the first reachable other node (`CLUSTER MEET`, at its gateway's port and its bus port).
    async fn meet(&self, i: usize) -> Result<(), Error> {
        let bus = self.servers[i]
            .bus_port()
            .ok_or_else(|| Error::Cluster("a cluster node has no bus port".into()))?;
        let other = (0..self.servers.len())
            .find(|&j| j != i && self.reachable(j))
            .ok_or_else(|| Error::Cluster("no reachable node to meet".into()))?;
        let reply = self.servers[other]
            .connect()
            .await?
            .command(&args(&[
                "CLUSTER",
                "MEET",
                "127.0.0.1",
                &self.gateways[i].addr().port().to_string(),
                &bus.to_string(),
            ]))
            .await?;
        expect_ok("CLUSTER MEET", reply)
    }

    async fn within<T>(
        &self,
        what: &str,
        future: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(self.ready_timeout, future).await {
            Ok(result) => result,
            Err(_) => {
                let logs: Vec<String> = self
                    .servers
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !self.killed[*i])
                    .map(|(i, s)| format!("node {i}:\n{}", s.log_tail(10)))
                    .collect();
                Err(Error::Timeout(format!(
                    "cluster: {what} in {:?}; node logs:\n{}",
                    self.ready_timeout,
                    logs.join("\n---\n")
                )))
            }
        }
    }

    /// How many nodes the cluster knows: killed and paused ones stay in every node's table (flagged failed).
    fn known(&self) -> usize {
        self.servers.len() - self.removed
    }

    /// Waits until every reachable node knows `n` nodes.
    async fn wait_known(&self, n: usize) -> Result<(), Error> {
        for i in self.reachable_nodes() {
            let mut client = self.servers[i].connect().await?;
            loop {
                let info = client.command(&["CLUSTER", "INFO"]).await?;
                if info
                    .as_text()
                    .unwrap_or_default()
                    .contains(&format!("cluster_known_nodes:{n}\r"))
                {
                    break;
                }
                tokio::time::sleep(POLL).await;
            }
        }
        Ok(())
    }

    /// The gateways, in node order (a killed node's gateway stays, and closes each connection at once).
    pub fn gateways(&self) -> &[Gateway] {
        &self.gateways
    }

    /// The nodes, in the same order.
    pub fn servers(&self) -> &[RedisServer] {
        &self.servers
    }

    /// Node `i`'s cluster id.
    pub fn node_id(&self, i: usize) -> &str {
        &self.ids[i]
    }

    /// Whether node `i` is running and not paused.
    pub fn reachable(&self, i: usize) -> bool {
        !self.killed[i] && !self.paused[i]
    }

    fn reachable_nodes(&self) -> Vec<usize> {
        (0..self.servers.len())
            .filter(|&i| self.reachable(i))
            .collect()
    }

    /// A direct, authenticated connection to node `i` (not through its gateway).
    pub async fn admin(&self, i: usize) -> Result<RespClient, Error> {
        self.servers[i].connect().await
    }

    /// Every node's role as the first reachable node sees it (`CLUSTER NODES`); killed and paused nodes are
    /// [`Role::Down`].
    pub async fn roles(&self) -> Result<Vec<Role>, Error> {
        let first = *self
            .reachable_nodes()
            .first()
            .ok_or_else(|| Error::Cluster("no reachable node".into()))?;
        let nodes = self
            .admin(first)
            .await?
            .command(&["CLUSTER", "NODES"])
            .await?;
        let text = nodes.as_text().unwrap_or_default();
        let index: HashMap<&str, usize> = self
            .ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect();
        let mut roles = vec![Role::Down; self.servers.len()];
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(id), Some(flags), Some(primary)) =
                (fields.first(), fields.get(2), fields.get(3))
            else {
                continue;
            };
            let Some(&i) = index.get(id) else { continue };
            if !self.reachable(i) || flags.split(',').any(|f| f == "fail" || f == "fail?") {
                continue;
            }
            roles[i] = if flags.contains("master") {
                if fields.len() > 8 {
                    Role::Primary
                } else {
                    Role::EmptyPrimary
                }
            } else {
                match index.get(primary) {
                    Some(&of) => Role::Replica { of },
                    None => Role::Down,
                }
            };
        }
        Ok(roles)
    }

    /// The nodes serving slots now, in node order.
    pub async fn primaries(&self) -> Result<Vec<usize>, Error> {
        Ok(self
            .roles()
            .await?
            .iter()
            .enumerate()
            .filter(|(_, r)| **r == Role::Primary)
            .map(|(i, _)| i)
            .collect())
    }

    /// The reachable replicas of node `i`.
    pub async fn replicas_of(&self, i: usize) -> Result<Vec<usize>, Error> {
        Ok(self
            .roles()
            .await?
            .iter()
            .enumerate()
            .filter(|(_, r)| **r == Role::Replica { of: i })
            .map(|(j, _)| j)
            .collect())
    }

    /// The slot map node `i` shows (`CLUSTER SLOTS`).
    pub async fn slot_map(&self, i: usize) -> Result<Vec<SlotRange>, Error> {
        let reply = self.admin(i).await?.command(&["CLUSTER", "SLOTS"]).await?;
        parse_slots(&reply).ok_or_else(|| Error::UnexpectedReply {
            command: "CLUSTER SLOTS",
            reply: format!("{reply:?}"),
        })
    }

    /// Whether the cluster has converged: every reachable node says `cluster_state:ok` and shows the same slot
    /// map, which covers every slot and lists every reachable replica, and every reachable replica's link to its
    /// primary is up.
    async fn converged(&self) -> Result<bool, Error> {
        let mut map: Option<Vec<SlotRange>> = None;
        let mut replicas = 0;
        for i in self.reachable_nodes() {
            let mut client = self.admin(i).await?;
            let info = client.command(&["CLUSTER", "INFO"]).await?;
            if !info
                .as_text()
                .unwrap_or_default()
                .contains("cluster_state:ok")
            {
                return Ok(false);
            }
            let replication = client.command(&["INFO", "replication"]).await?;
            let replication = replication.as_text().unwrap_or_default();
            if replication.contains("role:slave") {
                if !replication.contains("master_link_status:up") {
                    return Ok(false);
                }
                replicas += 1;
            }
            let slots = client.command(&["CLUSTER", "SLOTS"]).await?;
            let Some(ranges) = parse_slots(&slots) else {
                return Ok(false);
            };
            let covered: u32 = ranges
                .iter()
                .map(|r| u32::from(r.end) - u32::from(r.start) + 1)
                .sum();
            if covered != u32::from(SLOTS) {
                return Ok(false);
            }
            match &map {
                Some(seen) if *seen != ranges => return Ok(false),
                Some(_) => {}
                None => map = Some(ranges),
            }
        }
        // A replica shows in CLUSTER SLOTS once it has a replication offset (after its primary's first ping).
        Ok(map.is_some_and(|m| m.iter().map(|r| r.replicas.len()).sum::<usize>() == replicas))
    }

    /// Waits until the cluster has converged (see the module docs), or fails with [`Error::Timeout`] after the
    /// cluster's `ready_timeout`.
    pub async fn wait_converged(&self) -> Result<(), Error> {
        self.within("not converged", async {
            while !self.converged().await? {
                tokio::time::sleep(POLL).await;
            }
            Ok(())
        })
        .await
    }
}
