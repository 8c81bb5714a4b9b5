//! `entraid demo`: every layer of entraid-rs against local stand-ins for Azure, with tokens that expire in seconds.
//!
//! The emulator plays Entra ID (a system-assigned managed identity on its IMDS endpoint); the testkit's gateway
//! plays Azure Managed Redis in front of a real redis-server (it verifies each token and closes a connection the
//! moment its token expires). A pool of fred clients runs SET/GET, a RESP3 subscriber receives a message stream and
//! one client waits in `BLPOP` with no timeout, while the token manager rotates tokens and the adapter
//! re-authenticates every connection. The demo fails (exit status 1) on any failed command, lost message or
//! connection closed by expiry.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use entraid_fred::EntraIdAuth;
use entraid_fred::fred::error::ErrorKind;
use entraid_fred::fred::prelude::*;
use entraid_fred::fred::types::RespVersion;
use entraid_fred::fred::types::config::{Config, ServerConfig};
use entraid_identity::{Env, ManagedIdentityCredential};
use entraid_manager::{RetryOptions, TokenEvent, TokenManagerOptions};
use entraid_testkit::emulator::{Emulator, ManagedIdentity};
use entraid_testkit::redis::RedisHarness;

/// What the demo runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Options {
    /// Token rotations to watch. Default: 5.
    rotations: usize,
    /// Token lifetime in seconds. Default: 6.
    lifetime: u64,
}

impl Options {
    pub(crate) fn parse(args: &[String]) -> Result<Self, String> {
        let mut options = Self {
            rotations: 5,
            lifetime: 6,
        };
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let number: u64 = value
                .parse()
                .map_err(|_| format!("{flag}: not a number: {value}"))?;
            match flag.as_str() {
                "--rotations" if number >= 1 => options.rotations = number as usize,
                "--lifetime" if number >= 2 => options.lifetime = number,
                "--rotations" | "--lifetime" => {
                    return Err(format!("{flag} {number} is too small"));
                }
                _ => return Err(format!("unknown option {flag}")),
            }
        }
        Ok(options)
    }
}

pub(crate) async fn run(options: Options) -> ExitCode {
    match demo(options).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("entraid demo: {e}");
            ExitCode::from(1)
        }
    }
}

async fn demo(options: Options) -> Result<bool, Box<dyn std::error::Error>> {
    let lifetime = Duration::from_secs(options.lifetime);
    let emulator = Emulator::start().await?;
    let identity = emulator
        .add_managed_identity(ManagedIdentity::system_assigned().token_lifetime(lifetime))?;
    let harness = RedisHarness::standalone().await?;
    println!(
        "Entra ID emulator: {} (managed identity oid {})",
        emulator.http_url(),
        identity.oid
    );
    println!(
        "Redis behind the enforcing gateway: {} (tokens live {} s)",
        harness.addr(),
        options.lifetime
    );

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
    let config = Config {
        server: ServerConfig::new_centralized(addr.ip().to_string(), addr.port()),
        version: RespVersion::RESP3,
        ..Config::default()
    };

    let pool = auth.fred_builder(config.clone()).build_pool(4)?;
    pool.init().await?;
    let subscriber = auth
        .fred_builder(config.clone())
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
            while let Ok(message) = messages.recv().await {
                if message.value.as_str().is_some_and(|v| v == "end") {
                    break;
                }
                received.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let popped = Arc::new(AtomicU64::new(0));
    let popper = {
        let (blocked, popped, failed) = (blocked.clone(), popped.clone(), failed.clone());
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
    let mut rotations = 0;
    let mut ticker = tokio::time::interval(Duration::from_millis(50));
    while rotations < options.rotations {
        tokio::select! {
            event = events.recv() => match event {
                Some(TokenEvent::Token(token)) => {
                    rotations += 1;
                    println!(
                        "rotation {rotations}: new token for {} (expires in {} s); connections opened so far: {}",
                        token.username(),
                        token.lifetime().as_secs(),
                        harness.stats().connections_accepted,
                    );
                }
                Some(TokenEvent::Error(e)) => println!("token manager reported: {e}"),
                Some(_) => {}
                None => return Err("token manager stopped".into()),
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
    let _: i64 = publisher.publish("demo:events", "end").await?;
    let _: i64 = publisher.rpush("demo:queue", "end").await?;
    tokio::time::timeout(Duration::from_secs(10), listener).await??;
    tokio::time::timeout(Duration::from_secs(10), popper).await??;

    let gateway = harness.stats();
    let reauth = auth.stats();
    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    let (received, popped) = (
        received.load(Ordering::SeqCst),
        popped.load(Ordering::SeqCst),
    );
    println!();
    println!("commands ok: {ok}, failed: {failed}");
    println!(
        "messages published: {published}, received: {received}; items pushed: {pushed}, popped: {popped}"
    );
    println!(
        "re-authentications: {} (failed {}), blocking calls interrupted for AUTH: {}, last fan-out: {:?}",
        reauth.reauths_sent, reauth.reauths_failed, reauth.unblocks, reauth.last_fanout_latency
    );
    println!(
        "identity requests: {} for {rotations} rotations; connections closed by expiry: {}",
        emulator.tokens_issued(&identity.oid),
        gateway.closed_by_expiry
    );
    for client in pool.clients() {
        client.quit().await?;
    }
    subscriber.quit().await?;
    blocked.quit().await?;
    let clean =
        failed == 0 && received == published && popped == pushed && gateway.closed_by_expiry == 0;
    println!(
        "{}",
        if clean {
            "result: ok"
        } else {
            "result: FAILED"
        }
    );
    Ok(clean)
}

#[cfg(test)]
mod tests {
    use super::Options;

    fn parse(args: &[&str]) -> Result<Options, String> {
        Options::parse(&args.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn options() {
        assert_eq!(
            parse(&[]),
            Ok(Options {
                rotations: 5,
                lifetime: 6
            })
        );
        assert_eq!(
            parse(&["--rotations", "2", "--lifetime", "3"]),
            Ok(Options {
                rotations: 2,
                lifetime: 3
            })
        );
        assert!(parse(&["--lifetime", "1"]).is_err());
        assert!(parse(&["--rotations"]).is_err());
        assert!(parse(&["--colour", "red"]).is_err());
        assert!(parse(&["--rotations", "many"]).is_err());
    }
}
