//! Topology changes of a [`RedisCluster`]: kill, pause and resume a node, fail a primary over to its replica,
//! `CLUSTER FAILOVER`, add a primary, remove a node, migrate slots; each waits until the cluster has converged.

use std::ops::RangeInclusive;

use super::{FailoverMode, Failure, MIGRATE_BATCH, POLL, RedisCluster, Role, args, expect_ok};
use crate::redis::{Error, RespValue};

impl RedisCluster {
    /// Kills node `i` (SIGKILL). Its gateway stays and closes every connection at once (no backend).
    pub fn kill(&mut self, i: usize) {
        self.servers[i].kill();
        self.killed[i] = true;
    }

    fn signal(&self, i: usize, signal: &str) -> Result<(), Error> {
        let pid = self.servers[i].pid();
        if pid == 0 {
            return Err(Error::Cluster(format!("node {i} has no known pid")));
        }
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(Error::Cluster(format!("kill {signal} {pid}: {status}")))
        }
    }

    /// Pauses node `i` (SIGSTOP): it keeps its connections open and answers nothing, on the bus or to clients.
    pub fn pause(&mut self, i: usize) -> Result<(), Error> {
        self.signal(i, "-STOP")?;
        self.paused[i] = true;
        Ok(())
    }

    /// Lets a paused node go on (SIGCONT) and waits until the cluster has converged with it (a primary that was
    /// failed over meanwhile rejoins as a replica of its replacement).
    pub async fn resume(&mut self, i: usize) -> Result<(), Error> {
        self.signal(i, "-CONT")?;
        self.paused[i] = false;
        self.within("the resumed node to rejoin", async {
            loop {
                if self.roles().await?[i] != Role::Down && self.converged().await? {
                    return Ok(());
                }
                tokio::time::sleep(POLL).await;
            }
        })
        .await
    }

    /// Takes primary `i` away (`how`) and waits until one of its replicas has taken its slots over and the
    /// cluster has converged without it; returns the new primary's index.
    pub async fn fail_primary(&mut self, i: usize, how: Failure) -> Result<usize, Error> {
        let replicas = self.replicas_of(i).await?;
        if replicas.is_empty() {
            return Err(Error::Cluster(format!(
                "node {i} has no replica to fail over to"
            )));
        }
        match how {
            Failure::Kill => self.kill(i),
            Failure::Pause => self.pause(i)?,
        }
        self.wait_promoted(&replicas).await
    }

    /// Runs `CLUSTER FAILOVER [FORCE|TAKEOVER]` on replica `replica` and waits until it is a primary and the
    /// cluster has converged.
    pub async fn failover(&self, replica: usize, mode: FailoverMode) -> Result<usize, Error> {
        let mut command = vec!["CLUSTER", "FAILOVER"];
        match mode {
            FailoverMode::Coordinated => {}
            FailoverMode::Force => command.push("FORCE"),
            FailoverMode::Takeover => command.push("TAKEOVER"),
        }
        let reply = self.admin(replica).await?.command(&command).await?;
        expect_ok("CLUSTER FAILOVER", reply)?;
        self.wait_promoted(&[replica]).await
    }

    async fn wait_promoted(&self, candidates: &[usize]) -> Result<usize, Error> {
        self.within("no replica took over", async {
            loop {
                let roles = self.roles().await?;
                if let Some(&promoted) = candidates.iter().find(|&&c| roles[c] == Role::Primary)
                    && self.converged().await?
                {
                    return Ok(promoted);
                }
                tokio::time::sleep(POLL).await;
            }
        })
        .await
    }

    /// Starts a new primary without slots (its own gateway), introduces it to the cluster and waits until every
    /// reachable node knows it; returns its index. Give it slots with [`RedisCluster::migrate_slots`].
    pub async fn add_primary(&mut self) -> Result<usize, Error> {
        let i = self.start_node().await?;
        self.meet(i).await?;
        // Killed and paused nodes stay in every node's table (flagged failed).
        self.within("the new node to be known", self.wait_known(self.known()))
            .await?;
        self.within("the new node to see the slot map", async {
            loop {
                if self.converged().await? {
                    return Ok(());
                }
                tokio::time::sleep(POLL).await;
            }
        })
        .await?;
        Ok(i)
    }

    /// Removes node `i`, which must serve no slots (move them away first with [`RedisCluster::migrate_slots`]):
    /// it is killed, then every other reachable node forgets it (`CLUSTER FORGET`); waits until the cluster has
    /// converged without it. Its gateway stays, and closes every connection at once.
    pub async fn remove_node(&mut self, i: usize) -> Result<(), Error> {
        if self.roles().await?[i] == Role::Primary {
            return Err(Error::Cluster(format!("node {i} still serves slots")));
        }
        let id = self.ids[i].clone();
        // Killed first, so that it cannot gossip itself back in.
        self.kill(i);
        for j in self.reachable_nodes().into_iter().filter(|&j| j != i) {
            let reply = self
                .admin(j)
                .await?
                .command(&args(&["CLUSTER", "FORGET", &id]))
                .await?;
            expect_ok("CLUSTER FORGET", reply)?;
        }
        self.removed += 1;
        self.within("the node to be forgotten", self.wait_known(self.known()))
            .await?;
        self.wait_converged().await
    }

    /// Moves `slots` from primary `from` to primary `to` the way `redis-cli --cluster reshard` does, one slot at a
    /// time: `SETSLOT IMPORTING` on `to`, `SETSLOT MIGRATING` on `from`, `MIGRATE ... KEYS` until the slot is
    /// empty, then `SETSLOT NODE to` on both and on every other primary. Clients meanwhile get `ASK` for keys
    /// already moved. A source left without slots may become a replica of the target (Redis does that). Waits until
    /// the cluster has converged; returns how many keys moved.
    pub async fn migrate_slots(
        &self,
        from: usize,
        to: usize,
        slots: RangeInclusive<u16>,
    ) -> Result<u64, Error> {
        let mut source = self.admin(from).await?;
        let mut target = self.admin(to).await?;
        let primaries = self.primaries().await?;
        let mut others = Vec::new();
        for &p in primaries.iter().filter(|&&p| p != from && p != to) {
            others.push(self.admin(p).await?);
        }
        let (from_id, to_id) = (self.ids[from].clone(), self.ids[to].clone());
        let target_port = self.servers[to].addr().port().to_string();
        let password = self.servers[to].password().expose_secret().to_owned();
        let mut moved = 0u64;
        for slot in slots {
            let slot = slot.to_string();
            let reply = target
                .command(&args(&["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id]))
                .await?;
            expect_ok("CLUSTER SETSLOT IMPORTING", reply)?;
            let reply = source
                .command(&args(&["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id]))
                .await?;
            expect_ok("CLUSTER SETSLOT MIGRATING", reply)?;
            loop {
                let keys = source
                    .command(&args(&[
                        "CLUSTER",
                        "GETKEYSINSLOT",
                        &slot,
                        &MIGRATE_BATCH.to_string(),
                    ]))
                    .await?;
                let keys: Vec<String> = keys
                    .as_items()
                    .unwrap_or_default()
                    .iter()
                    .filter_map(RespValue::as_text)
                    .collect();
                if keys.is_empty() {
                    break;
                }
                let mut migrate = args(&[
                    "MIGRATE",
                    "127.0.0.1",
                    &target_port,
                    "",
                    "0",
                    "5000",
                    "AUTH",
                    &password,
                    "KEYS",
                ]);
                moved += keys.len() as u64;
                migrate.extend(keys);
                let reply = source.command(&migrate).await?;
                expect_ok("MIGRATE", reply)?;
            }
            let node = args(&["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]);
            for client in std::iter::once(&mut target)
                .chain(std::iter::once(&mut source))
                .chain(others.iter_mut())
            {
                let reply = client.command(&node).await?;
                // A primary that gave its last slot away may already have turned into a replica of the new owner
                // (the target's bumped epoch reached it first); `redis-cli --cluster` passes over this too.
                if reply
                    .as_error()
                    .is_some_and(|e| e.starts_with("ERR Please use SETSLOT only with masters"))
                {
                    continue;
                }
                expect_ok("CLUSTER SETSLOT NODE", reply)?;
            }
        }
        self.wait_converged().await?;
        Ok(moved)
    }
}
