//! The soak run behind `cargo xtask soak`: every kind of fred client at once, for minutes, with 3 s tokens under
//! Azure's **Data Contributor** access policy, against the testkit's Entra ID emulator (a system-assigned managed
//! identity on its IMDS endpoint) and enforcing gateways in front of real redis-servers.
//!
//! What runs:
//! - a pool of 32 clients (RESP3) on a 3-master cluster, each looping SET/GET on its own key;
//! - a RESP3 and a RESP2 subscriber on the cluster, both on one channel a pool client publishes to every 50 ms;
//! - a client blocked in `BLPOP` with **no timeout**, on a standalone harness beside the cluster (fred 10.1 cannot
//!   close one cluster connection, so a *clustered* client blocked with no timeout under Data Contributor is
//!   closed by the server at expiry: the documented limit of crates/entraid-fred/README.md), reconnected by the
//!   adapter near each expiry; a second standalone client pushes an item every 500 ms;
//! - a clustered client in `BLPOP` with a 0.1 s timeout, shorter than the refresh window, so its `AUTH` runs
//!   between two calls; a pool client pushes an item every 500 ms.
//!
//! The emulator and the Redis harness run in a child process (this program with `--serve-harness`, see
//! `harness.rs`), so the RSS and task counts measured are the client side's alone: the library's, fred's and the
//! workload's, without the testkit's records of every connection (which grow by design).
//!
//! It prints a live progress line and, at the end, operations, failures, connections closed by expiry, messages
//! lost, and RSS (`/proc/self/statm`) and tokio's alive task count at start, after warm-up and at the end. It exits
//! with status 1 on any failure: a failed command, a failed re-authentication, a connection closed by expiry, a
//! message lost by the RESP3 subscriber, a clustered item pushed but never popped, a standalone item missing
//! beyond the documented window of the no-timeout fallback (popped by the server for the old connection in the
//! instant fred closes it, so at most one per reconnect and none left in the list), or RSS / task growth (end minus after
//! warm-up) beyond `--max-rss-growth-mib` / `--max-task-growth`. Messages the RESP2 subscriber misses while it
//! unsubscribes, re-authenticates and subscribes again are counted and printed, but expected (documented).
//!
//! ```text
//! cargo run -p entraid-tests --example soak -- --seconds 60 [--max-rss-growth-mib 32] [--max-task-growth 64]
//! cargo xtask soak --minutes 30
//! ```

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line program reporting on the terminal"
)]

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use entraid_fred::EntraIdAuth;
use entraid_fred::fred::clients::SubscriberClient;
use entraid_fred::fred::error::ErrorKind;
use entraid_fred::fred::prelude::*;
use entraid_fred::fred::types::RespVersion;
use entraid_fred::fred::types::config::{Config, ServerConfig};
use entraid_identity::{Env, ManagedIdentityCredential};
use entraid_manager::{RetryOptions, TokenManagerOptions};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

mod harness;

use harness::HarnessProcess;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Token lifetime: the issue's 3 s.
const LIFETIME: Duration = Duration::from_secs(3);
/// Clients in the SET/GET pool.
const POOL: usize = 32;
/// What fred answers a command it wrote `max_command_attempts` (default 3) times, once per reconnect.
const ATTEMPTS_USED_UP: &str = "Too many failed write attempts";
/// The clustered BLPOP client's timeout: shorter than the time between a 3 s token's refresh (70 %, less up to
/// 5 % jitter) and the adapter's reconnect of a blocked client (a fifth of the lifetime before expiry), so its
/// `AUTH` always runs between two calls and it is never reconnected.
const CLUSTER_BLPOP_TIMEOUT: f64 = 0.1;
/// The warm-up after which the baseline RSS and task count are taken.
const WARM_UP: Duration = Duration::from_secs(10);

struct Args {
    seconds: u64,
    max_rss_growth_mib: u64,
    max_task_growth: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        seconds: 60,
        max_rss_growth_mib: 32,
        max_task_growth: 64,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            it.next()
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|v| *v > 0)
                .ok_or(format!("{name} needs a positive number"))
        };
        match arg.as_str() {
            "--seconds" => args.seconds = number("--seconds")?,
            "--minutes" => {
                args.seconds = number("--minutes")?
                    .checked_mul(60)
                    .ok_or("--minutes: too large")?;
            }
            "--max-rss-growth-mib" => args.max_rss_growth_mib = number("--max-rss-growth-mib")?,
            "--max-task-growth" => args.max_task_growth = number("--max-task-growth")?,
            other => {
                return Err(format!(
                    "unknown argument `{other}`; usage: soak [--seconds N | --minutes N] [--max-rss-growth-mib N] [--max-task-growth N]"
                ));
            }
        }
    }
    Ok(args)
}

/// This process's resident set size in bytes: `/proc/self/statm`'s second field (pages) times the page size.
fn rss_bytes(page_size: u64) -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages.saturating_mul(page_size))
}

/// The page size (`getconf PAGESIZE`), 4096 when it cannot be read.
fn page_size() -> u64 {
    std::process::Command::new("getconf")
        .arg("PAGESIZE")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(4096)
}

#[derive(Clone, Copy)]
struct Sample {
    rss: u64,
    tasks: usize,
}

fn sample(page_size: u64) -> Sample {
    Sample {
        rss: rss_bytes(page_size),
        tasks: tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks(),
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[derive(Default)]
struct Counters {
    ops_ok: AtomicU64,
    ops_failed: AtomicU64,
    resp3_received: AtomicU64,
    resp2_received: AtomicU64,
}

/// One blocked client's queue: what was pushed, popped, issued again or failed.
#[derive(Default)]
struct Queue {
    pushed: AtomicU64,
    push_failed: AtomicU64,
    popped: AtomicU64,
    reissued: AtomicU64,
    failed: AtomicU64,
    /// The items popped, to name any that never came.
    items: std::sync::Mutex<std::collections::BTreeSet<u64>>,
}

impl Queue {
    fn items(&self) -> std::collections::BTreeSet<u64> {
        self.items
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The items pushed and never popped.
    fn missing(&self) -> Vec<u64> {
        let seen = self.items();
        (0..get(&self.pushed))
            .filter(|n| !seen.contains(n))
            .collect()
    }
}

/// Pops `key` with `timeout` (seconds, 0 = none) until the item `end`, counting into `queue`.
fn pop_loop(
    client: Client,
    key: &'static str,
    timeout: f64,
    queue: Arc<Queue>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match client
                .blpop::<Option<(String, String)>, _>(key, timeout)
                .await
            {
                Ok(Some((_, item))) if item == "end" => break,
                Ok(Some((_, item))) => {
                    queue.popped.fetch_add(1, Ordering::SeqCst);
                    if let Ok(n) = item.parse::<u64>() {
                        queue
                            .items
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .insert(n);
                    }
                }
                // The call's own timeout, or one interrupted so the AUTH could run.
                Ok(None) => {}
                Err(e) if *e.kind() == ErrorKind::Timeout => {}
                // Reconnected near each expiry under Data Contributor, fred re-sends the call; one that spanned
                // `max_command_attempts` reconnects is handed back (documented) and issued again.
                Err(e) if e.details().starts_with(ATTEMPTS_USED_UP) => {
                    queue.reissued.fetch_add(1, Ordering::SeqCst);
                }
                Err(e) => {
                    eprintln!("\nsoak: BLPOP {key} failed: {e}");
                    queue.failed.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    })
}

/// Pushes the next item onto `key` through `client`.
async fn push(client: &Client, key: &str, queue: &Queue) {
    let n = get(&queue.pushed);
    match client.rpush::<i64, _, _>(key, n).await {
        Ok(_) => {
            queue.pushed.fetch_add(1, Ordering::SeqCst);
        }
        Err(e) => {
            eprintln!("\nsoak: RPUSH {key} failed: {e}");
            queue.push_failed.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::SeqCst)
}

fn config(addrs: &[std::net::SocketAddr], version: RespVersion) -> Config {
    let server = match addrs {
        [one] => ServerConfig::new_centralized(one.ip().to_string(), one.port()),
        many => ServerConfig::new_clustered(
            many.iter()
                .map(|a| (a.ip().to_string(), a.port()))
                .collect(),
        ),
    };
    Config {
        server,
        version,
        ..Config::default()
    }
}

/// Counts the messages of one subscriber until it sees `end`.
fn listen(
    subscriber: &SubscriberClient,
    received: Arc<Counters>,
    resp3: bool,
) -> tokio::task::JoinHandle<()> {
    let mut messages = subscriber.message_rx();
    tokio::spawn(async move {
        let count = |n: u64| {
            let counter = if resp3 {
                &received.resp3_received
            } else {
                &received.resp2_received
            };
            counter.fetch_add(n, Ordering::SeqCst);
        };
        loop {
            match messages.recv().await {
                Ok(message) if message.value.as_str().is_some_and(|v| v == "end") => break,
                Ok(_) => count(1),
                // Delivered by the connection, but this listener fell behind fred's broadcast queue (a loaded
                // machine): received, not lost by the adapter.
                Err(RecvError::Lagged(skipped)) => count(skipped),
                Err(RecvError::Closed) => break,
            }
        }
    })
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--serve-harness") {
        return match harness::serve(LIFETIME, page_size()).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("soak harness: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("soak: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match soak(args).await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[allow(
    clippy::too_many_lines,
    reason = "one straight-line scenario, read top to bottom"
)]
async fn soak(args: Args) -> Result<bool, BoxError> {
    let page_size = page_size();
    let at_start = sample(page_size);
    let mut harness = HarnessProcess::start()?;
    let (oid, cluster, standalone) = (
        harness.ready.oid.clone(),
        harness.ready.cluster.clone(),
        harness.ready.standalone,
    );
    let credential = ManagedIdentityCredential::builder()
        .env(Env::from_map(std::iter::empty::<(String, String)>()))
        .imds_endpoint(harness.ready.imds_endpoint.clone())
        .build()?;
    let auth = EntraIdAuth::from_provider(
        credential,
        TokenManagerOptions {
            retry: RetryOptions {
                initial_delay: Duration::from_millis(100),
                ..RetryOptions::default()
            },
            ..TokenManagerOptions::default()
        },
    )?;
    println!(
        "soak: {} s, tokens of {} s (managed identity {oid} on the emulator's IMDS), access policy Data \
         Contributor; the emulator and the Redis harness run in a child process (pid {}), so the RSS and tasks \
         below are the client side's alone",
        args.seconds,
        LIFETIME.as_secs(),
        harness.pid(),
    );
    println!(
        "soak: pool of {POOL} (RESP3), RESP3 and RESP2 subscribers and a BLPOP client with a \
         {CLUSTER_BLPOP_TIMEOUT} s timeout (shorter than the refresh window) on a 3-master cluster ({}); a BLPOP \
         client with no timeout on a standalone harness beside it ({}), since fred 10.1 cannot close one cluster \
         connection (crates/entraid-fred/README.md)",
        cluster
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        standalone
    );

    let resp3 = config(&cluster, RespVersion::RESP3);
    let pool = auth.fred_builder(resp3.clone()).build_pool(POOL)?;
    pool.init().await?;
    let sub3 = auth
        .fred_builder(resp3)
        .with_performance_config(|p| p.broadcast_channel_capacity = 1 << 16)
        .build_subscriber_client()?;
    sub3.init().await?;
    let sub2 = auth
        .fred_builder(config(&cluster, RespVersion::RESP2))
        .with_performance_config(|p| p.broadcast_channel_capacity = 1 << 16)
        .build_subscriber_client()?;
    sub2.init().await?;
    let _resubscribe3 = sub3.manage_subscriptions();
    let _resubscribe2 = sub2.manage_subscriptions();
    let single = config(&[standalone], RespVersion::RESP3);
    let blocked = auth.fred_builder(single.clone()).build()?;
    blocked.init().await?;
    let pusher = auth.fred_builder(single).build()?;
    pusher.init().await?;
    let cluster_blocked = auth
        .fred_builder(config(&cluster, RespVersion::RESP3))
        .build()?;
    cluster_blocked.init().await?;
    let _attachments = [
        auth.attach(&pool),
        auth.attach(&sub3),
        auth.attach(&sub2),
        auth.attach(&blocked),
        auth.attach(&pusher),
        auth.attach(&cluster_blocked),
    ];

    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for (i, client) in pool.clients().iter().enumerate() {
        let (client, stop, counters) = (client.clone(), stop.clone(), counters.clone());
        workers.push(tokio::spawn(async move {
            let key = format!("soak:{i}");
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let done = client
                    .set::<(), _, _>(&key, n, None, None, false)
                    .await
                    .is_ok()
                    && client.get::<u64, _>(&key).await.is_ok_and(|v| v == n);
                let counter = if done {
                    &counters.ops_ok
                } else {
                    &counters.ops_failed
                };
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }
    let listen3 = listen(&sub3, counters.clone(), true);
    let listen2 = listen(&sub2, counters.clone(), false);
    sub3.subscribe("soak:events").await?;
    sub2.subscribe("soak:events").await?;
    let standalone_queue = Arc::new(Queue::default());
    let cluster_queue = Arc::new(Queue::default());
    let popper = pop_loop(blocked.clone(), "soak:queue", 0.0, standalone_queue.clone());
    let cluster_popper = pop_loop(
        cluster_blocked.clone(),
        "soak:cluster-queue",
        CLUSTER_BLPOP_TIMEOUT,
        cluster_queue.clone(),
    );

    let publisher = pool.next().clone();
    let mut published = 0u64;
    let mut publish_failed = 0u64;
    let mut publish_tick = tokio::time::interval(Duration::from_millis(50));
    let mut push_tick = tokio::time::interval(Duration::from_millis(500));
    let mut progress = tokio::time::interval(Duration::from_secs(1));
    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let mut after_warm_up: Option<Sample> = None;
    let mut last_ops = 0u64;
    let queue_failures = |q: &Queue| get(&q.failed) + get(&q.push_failed);
    while Instant::now() < deadline {
        tokio::select! {
            _ = publish_tick.tick() => {
                match publisher.publish::<i64, _, _>("soak:events", published).await {
                    Ok(_) => published += 1,
                    Err(e) => {
                        eprintln!("\nsoak: PUBLISH failed: {e}");
                        publish_failed += 1;
                    }
                }
            }
            _ = push_tick.tick() => {
                push(&pusher, "soak:queue", &standalone_queue).await;
                push(&publisher, "soak:cluster-queue", &cluster_queue).await;
            }
            _ = progress.tick() => {
                let elapsed = started.elapsed();
                if after_warm_up.is_none() && elapsed >= WARM_UP {
                    after_warm_up = Some(sample(page_size));
                }
                let now = sample(page_size);
                let ops = get(&counters.ops_ok) + get(&counters.ops_failed);
                let reauth = auth.stats();
                let failures = get(&counters.ops_failed) + publish_failed + reauth.reauths_failed
                    + queue_failures(&standalone_queue) + queue_failures(&cluster_queue);
                let remote = harness.stats()?;
                let line = format!(
                    "{:>5} s | tokens {} | ops {} ({}/s) | failures {} | closed by expiry {} | \
                     not yet received RESP3 {} RESP2 {} | popped {}/{} and {}/{} | RSS {:.1} MiB | tasks {} | \
                     harness RSS {:.1} MiB",
                    elapsed.as_secs(),
                    remote.tokens,
                    ops,
                    ops - last_ops,
                    failures,
                    remote.closed_by_expiry,
                    published.saturating_sub(get(&counters.resp3_received)),
                    published.saturating_sub(get(&counters.resp2_received)),
                    get(&standalone_queue.popped),
                    get(&standalone_queue.pushed),
                    get(&cluster_queue.popped),
                    get(&cluster_queue.pushed),
                    mib(now.rss),
                    now.tasks,
                    mib(remote.rss),
                );
                last_ops = ops;
                if tty {
                    eprint!("\r\x1b[K{line}");
                } else if elapsed.as_secs().is_multiple_of(10) {
                    eprintln!("{line}");
                }
            }
        }
    }
    let at_end = sample(page_size);
    let after_warm_up = after_warm_up.unwrap_or(at_start);
    if tty {
        eprint!("\r\x1b[K");
    }

    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        worker.await?;
    }
    // Messages in flight are delivered before the end marker (one connection, in order); on RESP2 a marker
    // published while the subscriber re-authenticates is lost, so it is published until both listeners saw it.
    let listeners = [listen3, listen2];
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let _: i64 = publisher.publish("soak:events", "end").await?;
            if listeners.iter().all(tokio::task::JoinHandle::is_finished) {
                return Ok::<(), BoxError>(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    let subscribers_ended = matches!(ended, Ok(Ok(())));
    let _: i64 = pusher.rpush("soak:queue", "end").await?;
    let _: i64 = publisher.rpush("soak:cluster-queue", "end").await?;
    let mut poppers_ended = true;
    for popper in [popper, cluster_popper] {
        poppers_ended &= tokio::time::timeout(Duration::from_secs(20), popper)
            .await
            .is_ok_and(|r| r.is_ok());
    }

    let reauth = auth.stats();
    let (remote, expired_connections) = harness.stats_and_expired()?;
    let tokens = remote.tokens;
    let (ops_ok, ops_failed) = (get(&counters.ops_ok), get(&counters.ops_failed));
    let lost3 = published.saturating_sub(get(&counters.resp3_received));
    let lost2 = published.saturating_sub(get(&counters.resp2_received));
    let expired = remote.closed_by_expiry;
    let opened = remote.opened;
    let failures = ops_failed
        + publish_failed
        + reauth.reauths_failed
        + queue_failures(&standalone_queue)
        + queue_failures(&cluster_queue);
    let standalone_missing = standalone_queue.missing();
    let cluster_missing = cluster_queue.missing();
    let left = remote.left;
    // An item the server popped for the standalone client's old connection in the instant fred closed it (the
    // documented window of the no-timeout fallback, at most one per reconnect): gone from the list, never
    // returned. Any other missing item is a failure.
    let in_window = standalone_missing.len() as u64 <= reauth.blocked_reconnects && left == 0;
    let rss_growth = at_end.rss.saturating_sub(after_warm_up.rss);
    let task_growth = at_end.tasks.saturating_sub(after_warm_up.tasks);
    let rss_ok = rss_growth <= args.max_rss_growth_mib * 1024 * 1024;
    let tasks_ok = u64::try_from(task_growth).unwrap_or(u64::MAX) <= args.max_task_growth;
    let clean = failures == 0
        && expired == 0
        && lost3 == 0
        && cluster_missing.is_empty()
        && in_window
        && subscribers_ended
        && poppers_ended
        && rss_ok
        && tasks_ok;

    for client in pool.clients() {
        let _ = client.quit().await;
    }
    for client in [&blocked, &pusher, &cluster_blocked] {
        let _ = client.quit().await;
    }
    let _ = sub3.quit().await;
    let _ = sub2.quit().await;

    let queue_row = |q: &Queue| {
        format!(
            "{} / {} (again {}, failed {})",
            get(&q.pushed),
            get(&q.popped),
            get(&q.reissued),
            get(&q.failed) + get(&q.push_failed)
        )
    };
    let rows: Vec<(&str, String)> = vec![
        (
            "duration",
            format!("{:.1} s", started.elapsed().as_secs_f64()),
        ),
        ("tokens issued (3 s each)", tokens.to_string()),
        ("token rotations seen", reauth.rotations.to_string()),
        ("operations ok (SET+GET)", ops_ok.to_string()),
        ("operations failed", ops_failed.to_string()),
        ("publish failed", publish_failed.to_string()),
        ("messages published", published.to_string()),
        ("lost by RESP3 subscriber", lost3.to_string()),
        (
            "lost by RESP2 subscriber",
            format!("{lost2} (expected: unsubscribe/AUTH/subscribe)"),
        ),
        ("BLPOP no timeout push/pop", queue_row(&standalone_queue)),
        (
            "  lost at a blocked reconnect",
            format!(
                "{} of {} reconnects (documented window)",
                standalone_missing.len(),
                reauth.blocked_reconnects
            ),
        ),
        ("BLPOP 0.1 s cluster push/pop", queue_row(&cluster_queue)),
        (
            "re-auths sent / failed",
            format!("{} / {}", reauth.reauths_sent, reauth.reauths_failed),
        ),
        ("reconnects (adapter)", reauth.reconnects.to_string()),
        ("connections opened", opened.to_string()),
        ("closed by expiry", expired.to_string()),
        (
            "RSS start / warm / end",
            format!(
                "{:.1} / {:.1} / {:.1} MiB",
                mib(at_start.rss),
                mib(after_warm_up.rss),
                mib(at_end.rss)
            ),
        ),
        (
            "RSS growth after warm-up",
            format!(
                "{:.1} MiB (bound {} MiB)",
                mib(rss_growth),
                args.max_rss_growth_mib
            ),
        ),
        (
            "tasks start / warm / end",
            format!(
                "{} / {} / {}",
                at_start.tasks, after_warm_up.tasks, at_end.tasks
            ),
        ),
        (
            "task growth after warm-up",
            format!("{task_growth} (bound {})", args.max_task_growth),
        ),
        (
            "harness process RSS at end",
            format!("{:.1} MiB (the testkit; not bounded)", mib(remote.rss)),
        ),
    ];
    println!("+------------------------------+--------------------------------------------------+");
    for (name, value) in rows {
        println!("| {name:<28} | {value:<48} |");
    }
    println!("+------------------------------+--------------------------------------------------+");
    if !standalone_missing.is_empty() {
        println!(
            "soak: standalone items pushed, popped by the server and never returned: {standalone_missing:?} \
             ({left} left in the list)"
        );
    }
    for line in &expired_connections {
        println!("soak: closed by expiry: {line}");
    }
    if !cluster_missing.is_empty() {
        println!("soak: cluster items never popped: {cluster_missing:?}");
    }
    if !subscribers_ended {
        println!("soak: a subscriber never saw the end marker");
    }
    if !poppers_ended {
        println!("soak: a BLPOP client never popped the end marker");
    }
    println!(
        "soak: {}",
        if clean {
            "result: ok"
        } else {
            "result: FAILED"
        }
    );
    Ok(clean)
}
