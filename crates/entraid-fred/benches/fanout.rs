//! Re-authentication fan-out: from a new token to every attached connection re-authenticated, through the
//! testkit's enforcing gateway on loopback, for 1, 8, 32 and 128 connections and a 3-master cluster; and RSS and
//! task count across many rotations.
//!
//! `cargo bench -p entraid-fred --bench fanout` runs both. Criterion reports the mean fan-out latency per size
//! (measured by the adapter itself: `ReauthStats::last_fanout_latency`); the percentiles over every sample and the
//! memory table are printed at the end. `FANOUT_ROTATIONS` sets the rotation count of the memory run
//! (default 10,000).

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

/// Forces one rotation and waits until the adapter has pushed it everywhere; returns the adapter's latency.
async fn rotate(setup: &Setup) -> Duration {
    let before = setup.auth.stats().fanouts_completed;
    setup.manager.refresh_now().await.unwrap();
    loop {
        let stats = setup.auth.stats();
        if stats.fanouts_completed > before {
            return stats
                .last_fanout_latency
                .expect("a completed fan-out has a latency");
        }
        tokio::task::yield_now().await;
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
                        let latency = rotate(setup).await;
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
                rotate(&setup).await;
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

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    memory();
}
