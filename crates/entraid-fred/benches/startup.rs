//! Start-up: from process start to the first authenticated `PING`, for a whole process that uses entraid-fred
//! with a managed identity (App Service style: `IDENTITY_ENDPOINT` + `IDENTITY_HEADER`, plain HTTP on
//! loopback) pointed at the testkit's Entra emulator, and a redis-server behind the testkit's enforcing gateway.
//!
//! `cargo bench -p entraid-fred --bench startup` (or `cargo xtask bench startup`). The measured program is the
//! `startup_probe` example, built first with `cargo build --profile bench -p entraid-fred --example startup_probe`
//! (`cargo xtask bench startup` does both). The driver starts the emulator and the harness, then runs the probe as a child process
//! several times, timing each from `spawn` to its exit; between runs it measures, in the same conditions, the
//! identity endpoint's own response time (a raw HTTP/1.1 request on a fresh TCP connection, as the probe makes)
//! and what the Redis side alone costs (a fresh fred client, no entraid, connecting with a token as username and
//! password through the gateway and sending `PING`). Each probe reports when its steps ended, on its own
//! monotonic clock from the start of `main`, and its start of `main` on the wall clock, from which the driver
//! takes the time spent before `main` (exec, dynamic loading).
//!
//! Three kinds of probe run in turn: `lazy` is the product path as it is; `eager-roots` first does what building
//! the HTTP client did before the roots were made lazy (load the operating system's root certificates into a
//! root store); `overlap` does not wait for the first token before `init()`. `STARTUP_RUNS` sets the number of
//! runs of each (default 15).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "benchmark"
)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn wall_now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

fn main() {
    driver();
}

/// The probe binary, beside this bench (`target/release/examples/`). It is not built from here: a nested cargo
/// inherits this process's environment and rebuilds the dependencies under other fingerprints, so the next
/// `cargo bench` rebuilds them again. `cargo xtask bench startup` builds it first.
fn probe() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let release = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let probe = release
        .join("examples")
        .join(format!("startup_probe{}", std::env::consts::EXE_SUFFIX));
    assert!(
        probe.exists(),
        "no probe at {}: run `cargo build --profile bench -p entraid-fred --example startup_probe` first \
         (`cargo xtask bench startup` does)",
        probe.display()
    );
    probe
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Lazy,
    EagerRoots,
    Overlap,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Lazy => "lazy (the product path)",
            Kind::EagerRoots => "eager-roots (as before this change)",
            Kind::Overlap => "overlap (no ready() before init())",
        }
    }
}

/// The Redis side alone: a fresh fred client (no entraid) with a token as username and password, connecting
/// through the gateway and sending `PING`.
async fn redis_alone(addr: std::net::SocketAddr, oid: &str, token: &str) -> Duration {
    use fred::prelude::*;
    let config = Config {
        server: ServerConfig::new_centralized(addr.ip().to_string(), addr.port()),
        version: fred::types::RespVersion::RESP3,
        username: Some(oid.to_owned()),
        password: Some(token.to_owned()),
        ..Config::default()
    };
    let started = Instant::now();
    let client = Builder::from_config(config).build().unwrap();
    client.init().await.unwrap();
    let pong: String = client.ping(None).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(pong, "PONG");
    client.quit().await.unwrap();
    elapsed
}

/// One raw identity request on a fresh TCP connection: connect, send, read to the end. Returns its duration.
async fn raw_identity_request(
    addr: std::net::SocketAddr,
    path_and_query: &str,
    secret: &str,
) -> Duration {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let started = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path_and_query} HTTP/1.1\r\nhost: {addr}\r\nx-identity-header: {secret}\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let elapsed = started.elapsed();
    assert!(
        response.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&response[..response.len().min(200)])
    );
    elapsed
}

struct Run {
    /// From just before `spawn` to the child's exit.
    process: Duration,
    /// From just before `spawn` to the child's `main` (wall clock).
    before_main: Duration,
    /// Each step's end, from the start of `main`.
    marks: Vec<(String, Duration)>,
}

impl Run {
    fn to_ping(&self) -> Duration {
        self.before_main + self.marks.last().map(|m| m.1).unwrap_or_default()
    }
}

async fn run_child(
    exe: &std::path::Path,
    kind: Kind,
    endpoint: &str,
    secret: &str,
    redis: std::net::SocketAddr,
) -> Run {
    let mut command = tokio::process::Command::new(exe);
    command
        .env_clear()
        .env("STARTUP_REDIS", redis.to_string())
        .env("IDENTITY_ENDPOINT", endpoint)
        .env("IDENTITY_HEADER", secret)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit());
    match kind {
        Kind::Lazy => {}
        Kind::EagerRoots => {
            command.env("STARTUP_EAGER_ROOTS", "1");
        }
        Kind::Overlap => {
            command.env("STARTUP_OVERLAP", "1");
        }
    }
    let wall_spawn = wall_now_ns();
    let started = Instant::now();
    let output = command.output().await.unwrap();
    let process = started.elapsed();
    assert!(output.status.success(), "child failed: {}", output.status);
    let stdout = String::from_utf8(output.stdout).unwrap();
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("STARTUP "))
        .expect("the child reports its steps");
    let mut marks = Vec::new();
    let mut wall_main = 0u128;
    for field in line.split(';') {
        let (name, value) = field.split_once('=').unwrap();
        let value: u128 = value.parse().unwrap();
        if name == "wall_main" {
            wall_main = value;
        } else {
            marks.push((name.to_owned(), Duration::from_nanos(value as u64)));
        }
    }
    Run {
        process,
        before_main: Duration::from_nanos(wall_main.saturating_sub(wall_spawn) as u64),
        marks,
    }
}

fn stats(mut values: Vec<Duration>) -> (Duration, Duration, Duration) {
    values.sort();
    (
        values[0],
        values[values.len() / 2],
        values[values.len() - 1],
    )
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn driver() {
    use entraid_testkit::emulator::{Emulator, ManagedIdentity};
    use entraid_testkit::redis::RedisHarness;

    let runs: usize = std::env::var("STARTUP_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15)
        .max(3);
    let exe = probe();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let emulator = Emulator::start().await.unwrap();
        let identity = emulator
            .add_managed_identity(ManagedIdentity::system_assigned())
            .unwrap();
        let harness = RedisHarness::standalone().await.unwrap();
        let endpoint = emulator.app_service_endpoint();
        let secret = emulator.app_service_secret().to_owned();
        let (endpoint_addr, path) = split_url(&endpoint);
        let query = format!("{path}?api-version=2019-08-01&resource=https%3A%2F%2Fredis.azure.com");
        let kinds = [Kind::Lazy, Kind::EagerRoots, Kind::Overlap];

        // Warm-up: the page cache, the emulator's and the gateway's first connections, the principal's ACL user.
        for kind in kinds {
            run_child(&exe, kind, &endpoint, &secret, harness.addr()).await;
            raw_identity_request(endpoint_addr, &query, &secret).await;
        }

        let mut endpoint_times = Vec::new();
        let mut redis_times = Vec::new();
        let mut results: Vec<(Kind, Vec<Run>)> = kinds.iter().map(|k| (*k, Vec::new())).collect();
        for _ in 0..runs {
            for (kind, runs) in &mut results {
                endpoint_times.push(raw_identity_request(endpoint_addr, &query, &secret).await);
                let token = emulator
                    .issue_token(&identity.oid, "https://redis.azure.com")
                    .unwrap();
                redis_times.push(redis_alone(harness.addr(), &identity.oid, &token).await);
                runs.push(run_child(&exe, *kind, &endpoint, &secret, harness.addr()).await);
            }
        }
        let gateway = harness.stats();
        assert_eq!(gateway.auth_failed, 0, "{gateway:?}");

        let (emin, emed, emax) = stats(endpoint_times.clone());
        let (rmin, rmed, rmax) = stats(redis_times.clone());
        println!(
            "\nidentity endpoint's own response time (raw HTTP/1.1 GET on a fresh loopback connection, {} requests): \
             min {} / median {} / max {}",
            endpoint_times.len(),
            ms(emin),
            ms(emed),
            ms(emax)
        );
        println!(
            "Redis side alone (fresh fred client, token as password, connect + AUTH + PING through the gateway, {} \
             clients): min {} / median {} / max {}",
            redis_times.len(),
            ms(rmin),
            ms(rmed),
            ms(rmax)
        );
        for (kind, runs) in &results {
            println!("\n{}: {} runs; min / median / max", kind.name(), runs.len());
            println!("| step | ends at (from spawn) | step's own time |\n|---|---|---|");
            let (a, b, c) = stats(runs.iter().map(|r| r.before_main).collect());
            println!("| exec → main | {} / {} / {} | |", ms(a), ms(b), ms(c));
            for s in 0..runs[0].marks.len() {
                let name = &runs[0].marks[s].0;
                let (a, b, c) = stats(runs.iter().map(|r| r.before_main + r.marks[s].1).collect());
                let (d, e, f) = stats(
                    runs.iter()
                        .map(|r| r.marks[s].1 - if s == 0 { Duration::ZERO } else { r.marks[s - 1].1 })
                        .collect(),
                );
                println!(
                    "| {name} | {} / {} / {} | {} / {} / {} |",
                    ms(a),
                    ms(b),
                    ms(c),
                    ms(d),
                    ms(e),
                    ms(f)
                );
            }
            let (a, b, c) = stats(runs.iter().map(|r| r.process).collect());
            println!("| process exit (whole process) | {} / {} / {} | |", ms(a), ms(b), ms(c));
            let (pmin, pmed, pmax) = stats(runs.iter().map(Run::to_ping).collect());
            println!(
                "first authenticated PING from spawn: min {} / median {} / max {}; median - the endpoint's median = {} \
                 (target: at most 3 ms); minus the Redis side's median too: {}",
                ms(pmin),
                ms(pmed),
                ms(pmax),
                ms(pmed.saturating_sub(emed)),
                ms(pmed.saturating_sub(emed).saturating_sub(rmed))
            );
        }
    });
}

/// `http://127.0.0.1:port/path` → (address, path).
fn split_url(url: &str) -> (std::net::SocketAddr, String) {
    let rest = url.strip_prefix("http://").expect("a plain-HTTP endpoint");
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    (authority.parse().unwrap(), format!("/{path}"))
}
