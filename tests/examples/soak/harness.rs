//! The soak's stand-ins for Azure in a process of their own: the Entra ID emulator (a system-assigned managed
//! identity with 3 s tokens on its IMDS endpoint), a 3-master cluster and a standalone redis-server, each behind
//! the enforcing gateway under Data Contributor. The soak measures its own RSS and tasks: with the testkit in a
//! separate process, the gateway's per-connection records and the emulator's request log (which grow by design)
//! are not counted against the library.
//!
//! Protocol, one line each way over the child's stdin/stdout: the child prints `ready <json>` once (IMDS endpoint,
//! oid, addresses); each `stats` line it reads is answered with `stats <json>` (tokens issued, connections opened
//! and closed by expiry, the standalone queue's length, the child's RSS; after `stats expired`, also a line for
//! each connection closed by expiry). End of input ends the child.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use entraid_testkit::emulator::{Emulator, ManagedIdentity};
use entraid_testkit::redis::{AccessPolicy, RedisHarness, RespValue};
use serde_json::{Value, json};

use crate::{BoxError, rss_bytes};

/// What the harness process serves.
pub(crate) struct Ready {
    pub(crate) imds_endpoint: String,
    pub(crate) oid: String,
    pub(crate) cluster: Vec<SocketAddr>,
    pub(crate) standalone: SocketAddr,
}

/// One `stats` answer.
#[derive(Default, Clone, Copy)]
pub(crate) struct Stats {
    pub(crate) tokens: u64,
    pub(crate) opened: u64,
    pub(crate) closed_by_expiry: u64,
    /// The standalone queue's length, read straight from redis-server (-1 when it could not be read).
    pub(crate) left: i64,
    pub(crate) rss: u64,
}

/// The connections the gateways closed at their token's expiry, one line each (client name, last command, age,
/// re-AUTHs), for the summary.
pub(crate) type Expired = Vec<String>;

/// The harness process, seen from the soak.
pub(crate) struct HarnessProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    pub(crate) ready: Ready,
}

fn addr(value: &Value) -> Result<SocketAddr, BoxError> {
    Ok(value.as_str().ok_or("address")?.parse()?)
}

impl HarnessProcess {
    /// Starts this program again with `--serve-harness` and waits for its `ready` line.
    pub(crate) fn start() -> Result<Self, BoxError> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--serve-harness")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let ready: Value = serde_json::from_str(
            line.strip_prefix("ready ")
                .ok_or_else(|| format!("harness process: {line:?}"))?,
        )?;
        let ready = Ready {
            imds_endpoint: ready["imds"].as_str().ok_or("imds")?.to_owned(),
            oid: ready["oid"].as_str().ok_or("oid")?.to_owned(),
            cluster: ready["cluster"]
                .as_array()
                .ok_or("cluster")?
                .iter()
                .map(addr)
                .collect::<Result<_, _>>()?,
            standalone: addr(&ready["standalone"])?,
        };
        Ok(Self {
            child,
            stdin,
            stdout,
            ready,
        })
    }

    /// The child's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Asks for the counters (a round trip over two pipes to a process that answers at once).
    pub(crate) fn stats(&mut self) -> Result<Stats, BoxError> {
        Ok(self.ask(b"stats\n")?.0)
    }

    /// The counters and the connections closed by expiry.
    pub(crate) fn stats_and_expired(&mut self) -> Result<(Stats, Expired), BoxError> {
        self.ask(b"stats expired\n")
    }

    fn ask(&mut self, request: &[u8]) -> Result<(Stats, Expired), BoxError> {
        tokio::task::block_in_place(|| {
            let stdin = self.stdin.as_mut().ok_or("harness process closed")?;
            stdin.write_all(request)?;
            stdin.flush()?;
            let mut line = String::new();
            self.stdout.read_line(&mut line)?;
            let v: Value = serde_json::from_str(
                line.strip_prefix("stats ")
                    .ok_or_else(|| format!("harness process: {line:?}"))?,
            )?;
            let n = |k: &str| v[k].as_u64().unwrap_or(0);
            let stats = Stats {
                tokens: n("tokens"),
                opened: n("opened"),
                closed_by_expiry: n("closed_by_expiry"),
                left: v["left"].as_i64().unwrap_or(-1),
                rss: n("rss"),
            };
            let expired = v["expired"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|e| e.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            Ok((stats, expired))
        })
    }
}

impl Drop for HarnessProcess {
    fn drop(&mut self) {
        // End of input ends the child; its redis-servers die with it (the testkit's supervisor).
        drop(self.stdin.take());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The standalone queue's length, read straight from redis-server (-1 when it cannot be read).
async fn queue_len(harness: &RedisHarness) -> i64 {
    let Some(server) = harness.servers().first() else {
        return -1;
    };
    let Ok(mut client) = server.connect().await else {
        return -1;
    };
    match client.command(&["LLEN", "soak:queue"]).await {
        Ok(RespValue::Integer(n)) => n,
        _ => -1,
    }
}

/// The child: starts everything, prints `ready`, answers `stats` until its input ends.
pub(crate) async fn serve(lifetime: Duration, page_size: u64) -> Result<(), BoxError> {
    let emulator = Emulator::start().await?;
    let identity = emulator
        .add_managed_identity(ManagedIdentity::system_assigned().token_lifetime(lifetime))?;
    let cluster = RedisHarness::cluster_with(AccessPolicy::DataContributor).await?;
    let standalone = RedisHarness::standalone_with(AccessPolicy::DataContributor).await?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "ready {}",
        json!({
            "imds": emulator.imds_endpoint(),
            "oid": identity.oid,
            "cluster": cluster.addrs().iter().map(ToString::to_string).collect::<Vec<_>>(),
            "standalone": standalone.addr().to_string(),
        })
    )?;
    out.flush()?;
    drop(out);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(4);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = rx.recv().await {
        let line = line.trim();
        if !line.starts_with("stats") {
            continue;
        }
        let (c, s) = (cluster.stats(), standalone.stats());
        let expired: Vec<String> = if line == "stats expired" {
            c.expired()
                .chain(s.expired())
                .map(|e| {
                    format!(
                        "client {:?}, last command {:?}, age {:.1} s, re-AUTHs {}",
                        e.client_name.as_deref().unwrap_or("-"),
                        e.last_command,
                        e.age.as_secs_f64(),
                        e.reauths
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        let stats = json!({
            "expired": expired,
            "tokens": emulator.tokens_issued(&identity.oid),
            "opened": c.connections_accepted + s.connections_accepted,
            "closed_by_expiry": c.closed_by_expiry + s.closed_by_expiry,
            "left": queue_len(&standalone).await,
            "rss": rss_bytes(page_size),
        });
        let mut out = std::io::stdout().lock();
        writeln!(out, "stats {stats}")?;
        out.flush()?;
    }
    Ok(())
}
