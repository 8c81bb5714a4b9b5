//! `entraid demo`: every layer of entraid-rs against local stand-ins for Azure, with tokens that expire in seconds.
//!
//! The emulator plays Entra ID (a system-assigned managed identity on its IMDS endpoint); the testkit's gateway
//! plays Azure Managed Redis in front of a real redis-server (it verifies each token and closes a connection the
//! moment its token expires). A pool of fred clients runs SET/GET, a RESP3 subscriber receives a message stream and
//! one client waits in `BLPOP` with no timeout, while the token manager rotates tokens and the adapter
//! re-authenticates every connection. The demo fails (exit status 1) on any failed command, lost message or
//! connection closed by expiry (on RESP3; on RESP2 a subscriber is reconnected at each rotation, so messages
//! published in that window are counted as lost but expected).

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use clap::Args;
use entraid_fred::EntraIdAuth;
use entraid_fred::fred::error::ErrorKind;
use entraid_fred::fred::prelude::*;
use entraid_fred::fred::types::RespVersion;
use entraid_fred::fred::types::config::{Config, ServerConfig};
use entraid_identity::{Env, ManagedIdentityCredential};
use entraid_manager::{RetryOptions, TokenEvent, TokenManagerOptions};
use entraid_testkit::emulator::{Emulator, ManagedIdentity};
use entraid_testkit::redis::{AccessPolicy, RedisHarness};
use serde_json::json;
use tokio::time::Instant;

use crate::exit::{self, Exit};

/// What fred answers a command it wrote `max_command_attempts` (default 3) times, once per reconnect.
const ATTEMPTS_USED_UP: &str = "Too many failed write attempts";

/// What the demo runs.
#[derive(Debug, Clone, Args)]
pub(crate) struct Options {
    /// Token rotations to watch (ignored with --duration).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) rotations: u64,
    /// Run for this many seconds instead of counting rotations.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) duration: Option<u64>,
    /// Token lifetime in seconds.
    #[arg(long, visible_alias = "lifetime", value_name = "SECONDS", default_value_t = 6, value_parser = clap::value_parser!(u64).range(2..))]
    pub(crate) token_lifetime: u64,
    /// Clients in the SET/GET pool.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub(crate) connections: u64,
    /// Run against a 3-master cluster (each master behind its own gateway).
    #[arg(long)]
    pub(crate) cluster: bool,
    /// RESP version (2 or 3). On RESP2 the subscriber is reconnected at each rotation.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(2..=3))]
    pub(crate) resp: u8,
    /// The data access policy of the demo's identity: `data-owner`, `data-contributor` (Azure's usual one, which
    /// refuses CLIENT UNBLOCK: blocked connections are reconnected instead), `data-reader` (reads only: the demo's
    /// writes fail), `contributor-with-unblock`, or `custom:<ACL rules>`.
    #[arg(long, value_name = "POLICY", default_value = "data-contributor", value_parser = parse_policy)]
    pub(crate) policy: AccessPolicy,
    /// Print the summary as one JSON object (and no progress line).
    #[arg(long)]
    pub(crate) json: bool,
}

fn parse_policy(value: &str) -> Result<AccessPolicy, String> {
    match value {
        "data-owner" => Ok(AccessPolicy::DataOwner),
        "data-contributor" => Ok(AccessPolicy::DataContributor),
        "data-reader" => Ok(AccessPolicy::DataReader),
        "contributor-with-unblock" => Ok(AccessPolicy::data_contributor_with_unblock()),
        other => match other.strip_prefix("custom:") {
            Some(rules) if !rules.trim().is_empty() => Ok(AccessPolicy::Custom(rules.to_owned())),
            _ => Err(format!(
                "`{other}`: expected data-owner, data-contributor, data-reader, contributor-with-unblock or custom:<rules>"
            )),
        },
    }
}

pub(crate) async fn run(options: Options) -> Exit {
    match demo(options).await {
        Ok(true) => exit::OK,
        Ok(false) => exit::CHECK_FAILED,
        Err(e) => {
            eprintln!("entraid demo: {e}");
            exit::CHECK_FAILED
        }
    }
}

async fn demo(options: Options) -> Result<bool, Box<dyn std::error::Error>> {
    let lifetime = Duration::from_secs(options.token_lifetime);
    let quiet = options.json;
    let emulator = Emulator::start().await?;
    let identity = emulator
        .add_managed_identity(ManagedIdentity::system_assigned().token_lifetime(lifetime))?;
    let harness = if options.cluster {
        RedisHarness::cluster_with(options.policy.clone()).await?
    } else {
        RedisHarness::standalone_with(options.policy.clone()).await?
    };
    if !quiet {
        println!(
            "Entra ID emulator: {} (managed identity oid {})",
            emulator.http_url(),
            identity.oid
        );
        println!(
            "Redis behind the enforcing gateway: {} ({}; tokens live {} s; RESP{})",
            harness.addr(),
            if options.cluster {
                "3-master cluster"
            } else {
                "standalone"
            },
            options.token_lifetime,
            options.resp
        );
    }

    let credential = ManagedIdentityCredential::builder()
        .env(Env::from_map(std::iter::empty::<(String, String)>()))
        .imds_endpoint(emulator.imds_endpoint())
        .build()?;
    let manager_options = TokenManagerOptions {
        retry: RetryOptions {
            initial_delay: Duration::from_millis(100),
            ..RetryOptions::default()
        },
        ..TokenManagerOptions::default()
    };
    let auth = EntraIdAuth::from_provider(credential, manager_options)?;
    let addr = harness.addr();
    let server = if options.cluster {
        ServerConfig::new_clustered(
            harness
                .addrs()
                .into_iter()
                .map(|a| (a.ip().to_string(), a.port()))
                .collect(),
        )
    } else {
        ServerConfig::new_centralized(addr.ip().to_string(), addr.port())
    };
    let resp3 = options.resp == 3;
    let config = Config {
        server,
        version: if resp3 {
            RespVersion::RESP3
        } else {
            RespVersion::RESP2
        },
        ..Config::default()
    };

    let pool = auth
        .fred_builder(config.clone())
        .build_pool(usize::try_from(options.connections).unwrap_or(4))?;
    pool.init().await?;
    let subscriber = auth
        .fred_builder(config.clone())
        // Room in fred's broadcast queue for the demo's whole message stream (see the listener below).
        .with_performance_config(|p| p.broadcast_channel_capacity = 1 << 16)
        .build_subscriber_client()?;
    subscriber.init().await?;
    let _resubscribe = subscriber.manage_subscriptions();
    let blocked = auth.fred_builder(config).build()?;
    blocked.init().await?;
    let _attachments = [
        auth.attach(&pool),
        auth.attach(&subscriber),
        auth.attach(&blocked),
    ];

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut tasks = Vec::new();
    for (i, client) in pool.clients().iter().enumerate() {
        let (client, stop, ok, failed) = (client.clone(), stop.clone(), ok.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let key = format!("demo:{i}");
                let done = client
                    .set::<(), _, _>(&key, n, None, None, false)
                    .await
                    .is_ok()
                    && client.get::<u64, _>(&key).await.is_ok_and(|v| v == n);
                let counter = if done { &ok } else { &failed };
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }
    let mut messages = subscriber.message_rx();
    subscriber.subscribe("demo:events").await?;
    let received = Arc::new(AtomicU64::new(0));
    let listener = {
        let received = received.clone();
        tokio::spawn(async move {
            loop {
                match messages.recv().await {
                    Ok(message) if message.value.as_str().is_some_and(|v| v == "end") => break,
                    Ok(_) => {
                        received.fetch_add(1, Ordering::SeqCst);
                    }
                    // The connection delivered them; this listener was too slow to take them from fred's
                    // broadcast queue (a loaded machine): they count as received, not as lost by the adapter.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(skipped)) => {
                        received.fetch_add(skipped, Ordering::SeqCst);
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        })
    };
    let popped = Arc::new(AtomicU64::new(0));
    let reissued = Arc::new(AtomicU64::new(0));
    let popper = {
        let (blocked, popped, failed, reissued) = (
            blocked.clone(),
            popped.clone(),
            failed.clone(),
            reissued.clone(),
        );
        tokio::spawn(async move {
            loop {
                match blocked
                    .blpop::<Option<(String, String)>, _>("demo:queue", 0.0)
                    .await
                {
                    Ok(Some((_, item))) if item == "end" => break,
                    Ok(Some(_)) => {
                        popped.fetch_add(1, Ordering::SeqCst);
                    }
                    // A blocking call interrupted so the AUTH could run returns like a timeout.
                    Ok(None) => {}
                    Err(e) if *e.kind() == ErrorKind::Timeout => {}
                    // Under Data Contributor the adapter reconnects the blocked client near each expiry and fred
                    // re-sends the call; a call that spanned `max_command_attempts` reconnects is handed back
                    // (documented in entraid-fred's README) and, as after any timeout, issued again. No item is
                    // lost (the pushed/popped counts check that), so it is counted apart from failures.
                    Err(e) if e.details().starts_with(ATTEMPTS_USED_UP) => {
                        reissued.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        })
    };

    let publisher = pool.next().clone();
    let mut published = 0u64;
    let mut pushed = 0u64;
    let mut events = auth.manager().subscribe();
    let mut rotations = 0u64;
    let mut ticker = tokio::time::interval(Duration::from_millis(50));
    let mut progress = tokio::time::interval(Duration::from_secs(1));
    let started = Instant::now();
    let deadline = options.duration.map(|s| started + Duration::from_secs(s));
    let tty = std::io::stderr().is_terminal();
    let mut last_ops = 0u64;
    loop {
        let done = match deadline {
            Some(deadline) => Instant::now() >= deadline,
            None => rotations >= options.rotations,
        };
        if done {
            break;
        }
        tokio::select! {
            event = events.recv() => match event {
                Some(TokenEvent::Token(token)) => {
                    rotations += 1;
                    if !quiet {
                        if tty {
                            eprint!("\r\x1b[K");
                        }
                        println!(
                            "rotation {rotations}: new token for {} (expires in {} s); connections opened so far: {}",
                            token.username(),
                            token.lifetime().as_secs(),
                            harness.stats().connections_accepted,
                        );
                    }
                }
                Some(TokenEvent::Error(e)) => {
                    if !quiet {
                        println!("token manager reported: {e}");
                    }
                }
                Some(_) => {}
                None => return Err("token manager stopped".into()),
            },
            _ = progress.tick(), if !quiet => {
                let ops = ok.load(Ordering::SeqCst) + failed.load(Ordering::SeqCst);
                let reauth = auth.stats();
                let line = format!(
                    "tokens {} | re-auths {} | ops/s {} | failures {} | closed by expiry {}",
                    emulator.tokens_issued(&identity.oid),
                    reauth.reauths_sent,
                    ops - last_ops,
                    failed.load(Ordering::SeqCst) + reauth.reauths_failed,
                    harness.stats().closed_by_expiry,
                );
                last_ops = ops;
                if tty {
                    eprint!("\r\x1b[K{line}");
                } else {
                    eprintln!("{line}");
                }
            },
            _ = ticker.tick() => {
                let _: i64 = publisher.publish("demo:events", published).await?;
                published += 1;
                if published.is_multiple_of(40) {
                    let _: i64 = publisher.rpush("demo:queue", pushed).await?;
                    pushed += 1;
                }
            }
        }
    }
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await?;
    }
    let _: i64 = publisher.rpush("demo:queue", "end").await?;
    // The end marker is published until the listener sees it: on RESP2 a message published while the subscriber
    // re-authenticates is lost (documented), and the marker must not be.
    let mut listener = listener;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let _: i64 = publisher.publish("demo:events", "end").await?;
            if let Ok(done) = tokio::time::timeout(Duration::from_millis(200), &mut listener).await
            {
                return done.map_err(Box::<dyn std::error::Error>::from);
            }
        }
    })
    .await;
    ended.map_err(|_| "the subscriber never saw the end marker")??;
    tokio::time::timeout(Duration::from_secs(10), popper).await??;

    let gateway = harness.stats();
    let reauth = auth.stats();
    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    let (received, popped, reissued) = (
        received.load(Ordering::SeqCst),
        popped.load(Ordering::SeqCst),
        reissued.load(Ordering::SeqCst),
    );
    let tokens = emulator.tokens_issued(&identity.oid);
    let elapsed = started.elapsed();
    for client in pool.clients() {
        client.quit().await?;
    }
    subscriber.quit().await?;
    blocked.quit().await?;
    let lost = published.saturating_sub(received);
    // On RESP2 the subscriber is reconnected at each rotation: messages published meanwhile are lost, as documented.
    let messages_ok = lost == 0 || !resp3;
    let clean = failed == 0 && messages_ok && popped == pushed && gateway.closed_by_expiry == 0;
    if tty && !quiet {
        eprint!("\r\x1b[K");
    }
    if options.json {
        println!(
            "{}",
            json!({
                "ok": clean,
                "seconds": elapsed.as_secs_f64(),
                "rotations": rotations,
                "tokens_issued": tokens,
                "resp": options.resp,
                "policy": options.policy.name(),
                "cluster": options.cluster,
                "connections": options.connections,
                "commands_ok": ok,
                "commands_failed": failed,
                "messages_published": published,
                "messages_received": received,
                "items_pushed": pushed,
                "items_popped": popped,
                "blocking_calls_reissued": reissued,
                "reauths_sent": reauth.reauths_sent,
                "reauths_failed": reauth.reauths_failed,
                "reconnects": reauth.reconnects,
                "unblocks": reauth.unblocks,
                "last_fanout_ms": reauth.last_fanout_latency.map(|d| d.as_secs_f64() * 1000.0),
                "connections_opened": gateway.connections_accepted,
                "closed_by_expiry": gateway.closed_by_expiry,
            })
        );
    } else {
        let rows: Vec<(&str, String)> = vec![
            ("duration", format!("{:.1} s", elapsed.as_secs_f64())),
            ("rotations", rotations.to_string()),
            ("access policy", options.policy.name().to_owned()),
            ("identity requests", tokens.to_string()),
            ("commands ok", ok.to_string()),
            ("commands failed", failed.to_string()),
            ("messages published", published.to_string()),
            (
                "messages received",
                if resp3 || lost == 0 {
                    received.to_string()
                } else {
                    format!("{received} ({lost} lost while the RESP2 subscriber reconnected)")
                },
            ),
            ("items pushed / popped", format!("{pushed} / {popped}")),
            ("blocking calls issued again", reissued.to_string()),
            ("re-authentications", reauth.reauths_sent.to_string()),
            (
                "re-authentications failed",
                reauth.reauths_failed.to_string(),
            ),
            ("reconnects", reauth.reconnects.to_string()),
            ("blocking calls interrupted", reauth.unblocks.to_string()),
            (
                "last fan-out",
                reauth
                    .last_fanout_latency
                    .map(|d| format!("{:.2} ms", d.as_secs_f64() * 1000.0))
                    .unwrap_or_else(|| "-".to_owned()),
            ),
            (
                "connections opened",
                gateway.connections_accepted.to_string(),
            ),
            (
                "connections closed by expiry",
                gateway.closed_by_expiry.to_string(),
            ),
        ];
        println!();
        println!("+------------------------------+------------------------------------------+");
        for (name, value) in rows {
            println!("| {name:<28} | {value:<40} |");
        }
        println!("+------------------------------+------------------------------------------+");
        println!("commands ok: {ok}, failed: {failed}");
        println!("connections closed by expiry: {}", gateway.closed_by_expiry);
        println!(
            "{}",
            if clean {
                "result: ok"
            } else {
                "result: FAILED"
            }
        );
    }
    Ok(clean)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Options;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        options: Options,
    }

    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        Cli::try_parse_from(std::iter::once("demo").chain(args.iter().copied())).map(|c| c.options)
    }

    #[test]
    fn options() {
        let o = parse(&[]).unwrap();
        assert_eq!(
            (o.rotations, o.token_lifetime, o.connections, o.resp),
            (5, 6, 4, 3)
        );
        assert!(!o.cluster && !o.json && o.duration.is_none());
        let o = parse(&["--rotations", "2", "--lifetime", "3"]).unwrap();
        assert_eq!((o.rotations, o.token_lifetime), (2, 3));
        let o = parse(&[
            "--duration",
            "9",
            "--token-lifetime",
            "4",
            "--connections",
            "2",
            "--cluster",
            "--resp",
            "2",
            "--json",
        ])
        .unwrap();
        assert_eq!(
            (o.duration, o.token_lifetime, o.connections, o.resp),
            (Some(9), 4, 2, 2)
        );
        assert!(o.cluster && o.json);
        assert!(parse(&["--lifetime", "1"]).is_err());
        assert!(parse(&["--rotations"]).is_err());
        assert!(parse(&["--colour", "red"]).is_err());
        assert!(parse(&["--rotations", "many"]).is_err());
        assert!(parse(&["--resp", "4"]).is_err());
        assert_eq!(
            parse(&[]).unwrap().policy,
            super::AccessPolicy::DataContributor
        );
        assert_eq!(
            parse(&["--policy", "data-reader"]).unwrap().policy,
            super::AccessPolicy::DataReader
        );
        assert_eq!(
            parse(&["--policy", "custom:+@all"]).unwrap().policy,
            super::AccessPolicy::Custom("+@all".into())
        );
        assert!(parse(&["--policy", "custom:"]).is_err());
        assert!(parse(&["--policy", "admin"]).is_err());
    }
}
