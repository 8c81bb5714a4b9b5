//! Re-authentication fan-out: from a new token to every attached connection re-authenticated, through the
//! testkit's enforcing gateway on loopback, for 1, 8, 32 and 128 connections and a 3-master cluster; and RSS and
//! task count across many rotations.
//!
//! `cargo bench -p entraid-fred --bench fanout` runs both. Criterion reports the mean fan-out latency per size
//! (measured by the adapter itself: `ReauthStats::last_fanout_latency`); the percentiles over every sample and the
//! memory table are printed at the end. `FANOUT_ROTATIONS` sets the rotation count of the memory run
//! (default 10,000).
//!
//! Then, at scale (not criterion; `FANOUT_SCALE_ROTATIONS` rotations each, default 40): 1,000 single-connection
//! clients and 10 pools of 100, straight to redis-server (their principal a `nopass` ACL user there, so only
//! fred and the adapter are measured) and through the gateway (which verifies every `AUTH`'s RS256 token in this
//! process); and 100 clients of a 6-master cluster through the gateways. For each: the fan-out latency
//! percentiles, the process CPU time per rotation per connection (`/proc/self/stat`, 10 ms ticks, over every
//! rotation; it includes the in-process gateway where there is one), and RSS and live tokio tasks per attached
//! connection (measured before and after `attach`). The bench raises `RLIMIT_NOFILE` to its hard limit (the
//! redis-servers it starts inherit it, so their `maxclients` follows).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "benchmark"
)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use entraid_core::{BoxFuture, Error, IdentityProvider, IdentityProviderResponse};
use entraid_fred::EntraIdAuth;
use entraid_manager::{TokenManager, TokenManagerOptions};
use entraid_testkit::redis::RedisHarness;
use fred::prelude::*;
use fred::types::RespVersion;
use fred::types::config::{Config, ServerConfig};

/// Mints gateway-valid one-hour tokens (rotations are forced with `refresh_now`).
#[derive(Debug, Default)]
struct Minting {
    calls: AtomicU64,
}

impl IdentityProvider for Minting {
    fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
        Box::pin(async move {
            let n = self.calls.fetch_add(1, Ordering::Relaxed);
            let jwt =
                entraid_testkit::redis::token(&format!("bench-{n}"), Duration::from_secs(3600));
            Ok(IdentityProviderResponse::raw_token(jwt))
        })
    }
}

struct Setup {
    harness: RedisHarness,
    manager: TokenManager,
    auth: EntraIdAuth,
    clients: Vec<Client>,
    _attachments: Vec<entraid_fred::Attachment>,
}

async fn setup(connections: usize, cluster: bool) -> Setup {
    let harness = if cluster {
        RedisHarness::cluster().await
    } else {
        RedisHarness::standalone().await
    }
    .unwrap();
    let manager = TokenManager::start(Minting::default(), TokenManagerOptions::default()).unwrap();
    manager.ready().await.unwrap();
    let auth = EntraIdAuth::new(manager.clone());
    let addrs = harness.addrs();
    let server = if cluster {
        ServerConfig::new_clustered(
            addrs
                .iter()
                .map(|a| (a.ip().to_string(), a.port()))
                .collect(),
        )
    } else {
        ServerConfig::new_centralized(addrs[0].ip().to_string(), addrs[0].port())
    };
    let mut clients = Vec::new();
    let mut attachments = Vec::new();
    for _ in 0..connections {
        let mut config = Config {
            server: server.clone(),
            version: RespVersion::RESP3,
            ..Config::default()
        };
        auth.configure(&mut config);
        let client = Builder::from_config(config).build().unwrap();
        client.init().await.unwrap();
        attachments.push(auth.attach(&client));
        clients.push(client);
    }
    Setup {
        harness,
        manager,
        auth,
        clients,
        _attachments: attachments,
    }
}

/// Forces one rotation and waits until the adapter has pushed it everywhere; returns the adapter's latency (which
/// the adapter measures itself, from the new token to the last acknowledged `AUTH`).
///
/// Polled with a 1 ms sleep, not a `yield_now` spin: a spinning task would hold one of the runtime's two threads
/// and its CPU would be counted against the adapter.
async fn rotate(manager: &TokenManager, auth: &EntraIdAuth) -> Duration {
    let before = auth.stats().fanouts_completed;
    manager.refresh_now().await.unwrap();
    loop {
        let stats = auth.stats();
        if stats.fanouts_completed > before {
            return stats
                .last_fanout_latency
                .expect("a completed fan-out has a latency");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn fanout(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut summary = Vec::new();
    let mut group = c.benchmark_group("fanout");
    for (name, connections, cluster) in [
        ("1", 1, false),
        ("8", 8, false),
        ("32", 32, false),
        ("128", 128, false),
        ("cluster-3x1", 1, true),
    ] {
        let setup = runtime.block_on(setup(connections, cluster));
        let samples = Arc::new(Mutex::new(Vec::new()));
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter_custom(|iters| {
                let (setup, samples) = (&setup, samples.clone());
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let latency = rotate(&setup.manager, &setup.auth).await;
                        samples.lock().unwrap().push(latency);
                        total += latency;
                    }
                    total
                }
            });
        });
        let stats = setup.harness.stats();
        assert_eq!(stats.closed_by_expiry, 0);
        assert_eq!(stats.auth_failed, 0, "{stats:?}");
        let mut sorted = samples.lock().unwrap().clone();
        sorted.sort();
        summary.push((
            name,
            sorted.len(),
            percentile(&sorted, 0.5),
            percentile(&sorted, 0.99),
            sorted[sorted.len() - 1],
        ));
        runtime.block_on(async {
            for client in &setup.clients {
                client.quit().await.unwrap();
            }
        });
        drop(setup);
    }
    group.finish();
    println!("\nfan-out latency (new token -> every connection re-authenticated), all samples:");
    println!("| connections | samples | p50 | p99 | max |\n|---|---|---|---|---|");
    for (name, n, p50, p99, max) in summary {
        println!("| {name} | {n} | {p50:.2?} | {p99:.2?} | {max:.2?} |");
    }
}

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4
}

/// RSS and live tokio tasks across many rotations with 8 attached connections: both must stay flat.
fn memory() {
    let rotations: usize = std::env::var("FANOUT_ROTATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let setup = setup(8, false).await;
        let metrics = tokio::runtime::Handle::current().metrics();
        println!("\nRSS and tasks across {rotations} rotations (8 connections):");
        println!("| rotations | RSS (KiB) | live tokio tasks |\n|---|---|---|");
        let step = (rotations / 10).max(1);
        for i in 0..=rotations {
            if i % step == 0 {
                println!("| {i} | {} | {} |", rss_kib(), metrics.num_alive_tasks());
            }
            if i < rotations {
                rotate(&setup.manager, &setup.auth).await;
            }
        }
        let stats = setup.harness.stats();
        assert_eq!(stats.closed_by_expiry, 0);
        for client in &setup.clients {
            client.quit().await.unwrap();
        }
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = fanout
}

/// A one-hour token for a fixed `oid`, unique by `n`: it expires `n` seconds later than the first (the manager
/// takes a token with the expiry and principal of the one it holds for that same token, and publishes only new ones).
fn unique_token(oid: &str, n: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    entraid_testkit::keys::TestKey::entra().sign_jwt(&serde_json::json!({
        "aud": "https://redis.azure.com",
        "iss": "https://sts.windows.net/00000000-0000-0000-0000-000000000000/",
        "iat": now, "nbf": now, "exp": now + 3600 + n,
        "oid": oid, "sub": oid, "tid": "00000000-0000-0000-0000-000000000000",
        "uti": format!("scale-{n}"),
    }))
}

/// Tokens minted before the run, one per request, so no signing is timed or counted as CPU.
#[derive(Debug)]
struct Preminted {
    tokens: Vec<String>,
    next: AtomicU64,
}

impl IdentityProvider for Preminted {
    fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
        Box::pin(async move {
            let i = self.next.fetch_add(1, Ordering::Relaxed) as usize;
            let token = self
                .tokens
                .get(i)
                .cloned()
                .ok_or_else(|| Error::custom("no pre-minted token left", false))?;
            Ok(IdentityProviderResponse::raw_token(token))
        })
    }
}

/// User + system CPU time of this process so far (`/proc/self/stat`, in clock ticks of 10 ms).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces): utime is the 12th, stime the 13th.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the soft limit now in force.
fn raise_nofile() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let raised = rustix::process::Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    if setrlimit(Resource::Nofile, raised).is_err() {
        return limit.current.unwrap_or(0);
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

#[derive(Clone, Copy, Debug)]
enum Shape {
    /// `n` single-connection clients.
    Clients(usize),
    /// `pools` pools of `size` connections.
    Pools { pools: usize, size: usize },
}

impl Shape {
    fn connections(self) -> usize {
        match self {
            Shape::Clients(n) => n,
            Shape::Pools { pools, size } => pools * size,
        }
    }
}

/// Where the clients connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// Straight to one redis-server.
    Direct,
    /// Through the testkit's gateway to one redis-server.
    Gateway,
    /// Through the gateways of a cluster of this many masters.
    Cluster(usize),
}

struct ScaleResult {
    name: String,
    connections: usize,
    samples: Vec<Duration>,
    cpu_per_rotation_per_connection: Duration,
    rss_per_connection_kib: f64,
    tasks_per_attachment: f64,
    attachments: usize,
    baseline: Vec<Duration>,
}

async fn scale_case(name: &str, route: Route, shape: Shape, rotations: usize) -> ScaleResult {
    const OID: &str = "scale-principal";
    let mut server_holder = None;
    let mut harness_holder: Option<RedisHarness> = None;
    let server = match route {
        Route::Direct => {
            let server = entraid_testkit::redis::RedisServer::start().await.unwrap();
            let mut admin = server.connect().await.unwrap();
            admin
                .command(&["ACL", "SETUSER", OID, "on", "nopass", "~*", "&*", "+@all"])
                .await
                .unwrap();
            let config =
                ServerConfig::new_centralized(server.addr().ip().to_string(), server.addr().port());
            server_holder = Some(server);
            config
        }
        Route::Gateway | Route::Cluster(_) => {
            let topology = match route {
                Route::Cluster(masters) => entraid_testkit::redis::Topology::Cluster { masters },
                _ => entraid_testkit::redis::Topology::Standalone,
            };
            let harness = RedisHarness::start(entraid_testkit::redis::HarnessOptions {
                topology,
                ..Default::default()
            })
            .await
            .unwrap();
            let addrs = harness.addrs();
            let config = if matches!(route, Route::Cluster(_)) {
                ServerConfig::new_clustered(
                    addrs
                        .iter()
                        .map(|a| (a.ip().to_string(), a.port()))
                        .collect(),
                )
            } else {
                ServerConfig::new_centralized(addrs[0].ip().to_string(), addrs[0].port())
            };
            harness_holder = Some(harness);
            config
        }
    };
    let tokens = (0..rotations as u64 + 8)
        .map(|n| unique_token(OID, n))
        .collect();
    let manager = TokenManager::start(
        Preminted {
            tokens,
            next: AtomicU64::new(0),
        },
        TokenManagerOptions::default(),
    )
    .unwrap();
    manager.ready().await.unwrap();
    let auth = EntraIdAuth::new(manager.clone());
    let config = || {
        let mut config = Config {
            server: server.clone(),
            version: RespVersion::RESP3,
            ..Config::default()
        };
        auth.configure(&mut config);
        config
    };
    let mut clients = Vec::new();
    let mut pools = Vec::new();
    match shape {
        Shape::Clients(n) => {
            for _ in 0..n {
                let client = Builder::from_config(config()).build().unwrap();
                client.init().await.unwrap();
                clients.push(client);
            }
        }
        Shape::Pools { pools: count, size } => {
            for _ in 0..count {
                let pool = Builder::from_config(config()).build_pool(size).unwrap();
                pool.init().await.unwrap();
                pools.push(pool);
            }
        }
    }
    let metrics = tokio::runtime::Handle::current().metrics();
    // Settle, then measure what attaching adds.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (rss_before, tasks_before) = (rss_kib(), metrics.num_alive_tasks());
    let mut attachments: Vec<entraid_fred::Attachment> =
        clients.iter().map(|c| auth.attach(c)).collect();
    attachments.extend(pools.iter().map(|p| auth.attach(p)));
    // Each attached client applies the newest token at once; then one rotation, not timed.
    rotate(&manager, &auth).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (rss_after, tasks_after) = (rss_kib(), metrics.num_alive_tasks());
    let cpu_before = cpu_time();
    let mut samples = Vec::with_capacity(rotations);
    for _ in 0..rotations {
        samples.push(rotate(&manager, &auth).await);
    }
    let cpu = cpu_time().saturating_sub(cpu_before);
    let connections = shape.connections();
    // Baseline: fred alone sending `AUTH` (the newest token) on every single-connection client at once, no adapter.
    let mut baseline = Vec::new();
    if !clients.is_empty() {
        let token = manager
            .current()
            .map(|t| t.access_token().expose_secret().to_owned());
        if let Some(token) = token {
            for _ in 0..rotations.min(20) {
                let started = std::time::Instant::now();
                let mut set = tokio::task::JoinSet::new();
                for client in &clients {
                    let (client, token) = (client.clone(), token.clone());
                    set.spawn(async move { client.auth(Some(OID.to_owned()), token).await });
                }
                while let Some(result) = set.join_next().await {
                    result.unwrap().unwrap();
                }
                baseline.push(started.elapsed());
            }
            baseline.sort();
        }
    }
    if let Some(harness) = &harness_holder {
        let stats = harness.stats();
        assert_eq!(stats.closed_by_expiry, 0);
        assert_eq!(stats.auth_failed, 0, "{stats:?}");
    }
    for client in &clients {
        client.quit().await.unwrap();
    }
    for pool in &pools {
        pool.quit().await.unwrap();
    }
    drop(attachments);
    drop(server_holder);
    samples.sort();
    ScaleResult {
        name: name.to_owned(),
        connections,
        samples,
        cpu_per_rotation_per_connection: cpu / (rotations * connections) as u32,
        rss_per_connection_kib: (rss_after as f64 - rss_before as f64) / connections as f64,
        tasks_per_attachment: (tasks_after as f64 - tasks_before as f64)
            / (clients.len() + pools.len()) as f64,
        attachments: clients.len() + pools.len(),
        baseline,
    }
}

fn scale() {
    let rotations: usize = std::env::var("FANOUT_SCALE_ROTATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let nofile = raise_nofile();
    println!("\nfan-out at scale ({rotations} rotations each; RLIMIT_NOFILE {nofile}):");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut results = Vec::new();
    for (name, route, shape) in [
        ("1,000 clients, direct", Route::Direct, Shape::Clients(1000)),
        (
            "10 pools x 100, direct",
            Route::Direct,
            Shape::Pools {
                pools: 10,
                size: 100,
            },
        ),
        (
            "1,000 clients, gateway",
            Route::Gateway,
            Shape::Clients(1000),
        ),
        (
            "10 pools x 100, gateway",
            Route::Gateway,
            Shape::Pools {
                pools: 10,
                size: 100,
            },
        ),
        (
            "cluster 6 masters, 100 clients, gateways",
            Route::Cluster(6),
            Shape::Clients(100),
        ),
    ] {
        // `FANOUT_CASE=direct` (any part of a case's name) runs only the matching cases.
        if std::env::var("FANOUT_CASE").is_ok_and(|only| !name.contains(only.as_str())) {
            continue;
        }
        results.push(runtime.block_on(scale_case(name, route, shape, rotations)));
    }
    println!(
        "| case | connections (attachments) | p50 | p99 | max | CPU per rotation per connection | RSS per connection | tasks per attachment |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut baselines = Vec::new();
    for r in results {
        if !r.baseline.is_empty() {
            baselines.push(format!(
                "| {} | fred alone: AUTH on every client at once ({} rounds) | {:.2?} | {:.2?} | {:.2?} |",
                r.name,
                r.baseline.len(),
                percentile(&r.baseline, 0.5),
                percentile(&r.baseline, 0.99),
                r.baseline[r.baseline.len() - 1],
            ));
        }
        println!(
            "| {} | {} ({}) | {:.2?} | {:.2?} | {:.2?} | {:.1?} | {:.2} KiB | {:.2} |",
            r.name,
            r.connections,
            r.attachments,
            percentile(&r.samples, 0.5),
            percentile(&r.samples, 0.99),
            r.samples[r.samples.len() - 1],
            r.cpu_per_rotation_per_connection,
            r.rss_per_connection_kib,
            r.tasks_per_attachment,
        );
    }
    println!("\n| case | baseline | p50 | p99 | max |\n|---|---|---|---|---|");
    for row in baselines {
        println!("{row}");
    }
}

fn main() {
    let only_scale = std::env::var_os("FANOUT_ONLY_SCALE").is_some();
    if !only_scale {
        benches();
        Criterion::default().configure_from_args().final_summary();
        memory();
    }
    scale();
}
