//! Cost per command: fred throughput and latency with entraid-fred attached, against the same fred client with a
//! static password, on the same redis-server, in one run; between rotations and across rotations.
//!
//! `cargo bench -p entraid-fred --bench per_command` (or `cargo xtask bench per-command`). Both clients connect
//! straight to one redis-server (no gateway: the gateway's hop would dwarf what is measured). The Entra client
//! authenticates as a principal that is a real ACL user on that server (`nopass`, so redis-server accepts any
//! token as its password, the way Azure accepts a valid one), through entraid-fred's credential provider, and is
//! attached, so every new token is pushed to it with `AUTH`; the static client is `AUTH default <password>`.
//! Tokens are minted before the run (one-hour RS256 JWTs), so no signing happens while commands are timed.
//!
//! Each window runs `PER_COMMAND_TASKS` tasks (default 32) sending `INCR` back to back on one client for
//! `PER_COMMAND_SECS` seconds (default 2); the two clients alternate, `PER_COMMAND_ROUNDS` rounds (default 4) per
//! phase, the order swapped every round. Phase `between rotations`: no rotation. Phase `across rotations`: during
//! the Entra client's windows a rotation is forced every 200 ms (`refresh_now`; the adapter re-authenticates the
//! connection while commands flow); the static client's windows have none. Printed: throughput, its ratio, and
//! latency percentiles over every command of the phase.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "benchmark"
)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use entraid_core::{BoxFuture, Error, IdentityProvider, IdentityProviderResponse};
use entraid_fred::EntraIdAuth;
use entraid_manager::{TokenManager, TokenManagerOptions};
use entraid_testkit::redis::RedisServer;
use fred::prelude::*;
use fred::types::RespVersion;
use fred::types::config::{Config, ServerConfig};

const PRINCIPAL: &str = "bench-principal";

/// Hands out tokens minted before the run, a new one per request.
#[derive(Debug)]
struct Preminted {
    tokens: Vec<String>,
    next: AtomicUsize,
}

impl IdentityProvider for Preminted {
    fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
        Box::pin(async move {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let token = self
                .tokens
                .get(i)
                .cloned()
                .ok_or_else(|| Error::custom("no pre-minted token left", false))?;
            Ok(IdentityProviderResponse::raw_token(token))
        })
    }
}

/// A one-hour token the gateway would accept, for `oid`, made unique by `n` (its expiry is `n` seconds
/// later: the manager takes a token with the expiry and principal of the one it holds for the same token).
fn token(oid: &str, n: usize) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    entraid_testkit::keys::TestKey::entra().sign_jwt(&serde_json::json!({
        "aud": "https://redis.azure.com",
        "iss": "https://sts.windows.net/00000000-0000-0000-0000-000000000000/",
        "iat": now, "nbf": now, "exp": now + 3600 + n as u64,
        "oid": oid, "sub": oid, "tid": "00000000-0000-0000-0000-000000000000",
        "uti": format!("bench-{n}"),
    }))
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Latencies of every command of one window (nanoseconds) and how many completed.
struct Window {
    latencies: Vec<u64>,
    elapsed: Duration,
}

async fn window(client: &Client, tasks: usize, length: Duration) -> Window {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + length;
    let mut handles = Vec::new();
    for t in 0..tasks {
        let client = client.clone();
        handles.push(tokio::spawn(async move {
            let key = format!("per-command-{t}");
            let mut latencies = Vec::with_capacity(64 * 1024);
            while tokio::time::Instant::now() < deadline {
                let sent = Instant::now();
                let _: i64 = client.incr(&key).await.unwrap();
                latencies.push(sent.elapsed().as_nanos() as u64);
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for handle in handles {
        latencies.extend(handle.await.unwrap());
    }
    Window {
        latencies,
        elapsed: started.elapsed(),
    }
}

#[derive(Default)]
struct Totals {
    latencies: Vec<u64>,
    commands: u64,
    seconds: f64,
}

impl Totals {
    fn add(&mut self, w: Window) {
        self.commands += w.latencies.len() as u64;
        self.seconds += w.elapsed.as_secs_f64();
        self.latencies.extend(w.latencies);
    }

    fn throughput(&self) -> f64 {
        self.commands as f64 / self.seconds
    }

    fn percentile(&mut self, p: f64) -> Duration {
        self.latencies.sort_unstable();
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        Duration::from_nanos(self.latencies[i.min(self.latencies.len() - 1)])
    }
}

fn main() {
    let tasks = env_or("PER_COMMAND_TASKS", 32) as usize;
    let length = Duration::from_secs(env_or("PER_COMMAND_SECS", 2));
    let rounds = env_or("PER_COMMAND_ROUNDS", 4) as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let server = RedisServer::start().await.unwrap();
        let mut admin = server.connect().await.unwrap();
        let reply = admin
            .command(&["ACL", "SETUSER", PRINCIPAL, "on", "nopass", "~*", "&*", "+@all"])
            .await
            .unwrap();
        assert_eq!(reply, entraid_testkit::redis::RespValue::Simple("OK".into()));

        // Enough tokens for every rotation (5 per second of the rotating windows) and a margin.
        let needed = 16 + rounds * (length.as_millis() as usize / 200 + 2);
        let tokens = (0..needed).map(|i| token(PRINCIPAL, i)).collect();
        let manager = TokenManager::start(
            Preminted {
                tokens,
                next: AtomicUsize::new(0),
            },
            TokenManagerOptions::default(),
        )
        .unwrap();
        manager.ready().await.unwrap();
        let auth = EntraIdAuth::new(manager.clone());

        let server_config = ServerConfig::new_centralized(server.addr().ip().to_string(), server.addr().port());
        let mut entra_config = Config {
            server: server_config.clone(),
            version: RespVersion::RESP3,
            ..Config::default()
        };
        auth.configure(&mut entra_config);
        let entra = Builder::from_config(entra_config).build().unwrap();
        entra.init().await.unwrap();
        let _attachment = auth.attach(&entra);
        let static_client = Builder::from_config(Config {
            server: server_config,
            version: RespVersion::RESP3,
            password: Some(server.password().expose_secret().to_owned()),
            ..Config::default()
        })
        .build()
        .unwrap();
        static_client.init().await.unwrap();
        // The Entra client really is the principal, the static one `default`.
        let whoami = fred::types::CustomCommand::new_static("ACL", fred::types::ClusterHash::FirstKey, false);
        let user: String = entra.custom(whoami.clone(), vec!["WHOAMI"]).await.unwrap();
        assert_eq!(user, PRINCIPAL);
        let user: String = static_client.custom(whoami, vec!["WHOAMI"]).await.unwrap();
        assert_eq!(user, "default");

        // Warm-up, both.
        window(&entra, tasks, Duration::from_millis(500)).await;
        window(&static_client, tasks, Duration::from_millis(500)).await;

        let mut table = Vec::new();
        for rotating in [false, true] {
            let mut entra_totals = Totals::default();
            let mut static_totals = Totals::default();
            let fanouts_before = auth.stats().fanouts_completed;
            for round in 0..rounds {
                for entra_turn in [round % 2 == 0, round % 2 != 0] {
                    if entra_turn {
                        let rotations = rotating.then(|| {
                            let manager = manager.clone();
                            tokio::spawn(async move {
                                let mut tick = tokio::time::interval(Duration::from_millis(200));
                                tick.tick().await;
                                loop {
                                    tick.tick().await;
                                    manager.refresh_now().await.unwrap();
                                }
                            })
                        });
                        entra_totals.add(window(&entra, tasks, length).await);
                        if let Some(r) = rotations {
                            r.abort();
                        }
                    } else {
                        static_totals.add(window(&static_client, tasks, length).await);
                    }
                }
            }
            let fanouts = auth.stats().fanouts_completed - fanouts_before;
            if rotating {
                assert!(fanouts >= rounds as u64, "only {fanouts} rotations were pushed");
            } else {
                assert_eq!(fanouts, 0, "a rotation happened between rotations");
            }
            let phase = if rotating {
                format!("across rotations ({fanouts} re-AUTHs pushed)")
            } else {
                "between rotations".to_owned()
            };
            let ratio = entra_totals.throughput() / static_totals.throughput();
            for (name, totals) in [("static password", &mut static_totals), ("entraid-fred", &mut entra_totals)] {
                table.push(format!(
                    "| {phase} | {name} | {:.0} | {} | {:.2?} | {:.2?} | {:.2?} | {:.2?} |",
                    totals.throughput(),
                    if name == "entraid-fred" { format!("{ratio:.3}") } else { "1".to_owned() },
                    totals.percentile(0.5),
                    totals.percentile(0.99),
                    totals.percentile(0.999),
                    totals.percentile(1.0),
                ));
            }
        }
        let stats = auth.stats();
        println!(
            "\nper-command cost: {tasks} tasks x INCR on one client, {rounds} rounds of {length:?} windows per client and phase"
        );
        println!("| phase | client | commands/s | throughput ratio | p50 | p99 | p99.9 | max |\n|---|---|---|---|---|---|---|---|");
        for row in table {
            println!("{row}");
        }
        println!("adapter: {stats:?}");
        entra.quit().await.unwrap();
        static_client.quit().await.unwrap();
    });
}
