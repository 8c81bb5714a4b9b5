//! Shared pieces of the fred adapter's end-to-end tests: an identity provider minting tokens the testkit gateway
//! accepts (a new `oid` each time, so a wrong username would be refused), fred configs for the harness, and load.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use entraid_fred::EntraIdAuth;
use entraid_manager::{RetryOptions, TokenEvent, TokenManager, TokenManagerOptions};
use entraid_testkit::redis::RedisHarness;
use fred::prelude::*;
use fred::types::RespVersion;
use fred::types::config::{Config, ServerConfig, TlsConfig, TlsConnector};

pub use entraid_testkit::redis::MintingProvider;

/// Manager options for short-lived test tokens: fast retries.
pub fn manager_options() -> TokenManagerOptions {
    TokenManagerOptions {
        retry: RetryOptions {
            initial_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(200),
            ..RetryOptions::default()
        },
        ..TokenManagerOptions::default()
    }
}

/// Starts manager + adapter over a minting provider.
pub fn start_auth(provider: &Arc<MintingProvider>) -> (TokenManager, EntraIdAuth) {
    let manager = TokenManager::start(provider.clone(), manager_options()).unwrap();
    let auth = EntraIdAuth::new(manager.clone());
    (manager, auth)
}

/// A fred config for the harness (standalone, cluster or TLS), authenticated by `auth`.
pub fn config(harness: &RedisHarness, auth: &EntraIdAuth, version: RespVersion) -> Config {
    let addrs = harness.addrs();
    let server = if addrs.len() > 1 {
        ServerConfig::new_clustered(
            addrs
                .iter()
                .map(|a| (a.ip().to_string(), a.port()))
                .collect(),
        )
    } else {
        ServerConfig::new_centralized(addrs[0].ip().to_string(), addrs[0].port())
    };
    let mut config = Config {
        server,
        version,
        ..Config::default()
    };
    if let Some(tls) = harness.tls_client_config() {
        config.tls = Some(TlsConfig::from(TlsConnector::from((*tls).clone())));
    }
    auth.configure(&mut config);
    config
}

/// A fred builder for the harness with a reconnect policy (every production client should have one).
pub fn builder(harness: &RedisHarness, auth: &EntraIdAuth, version: RespVersion) -> Builder {
    let mut builder = Builder::from_config(config(harness, auth, version));
    builder.set_policy(ReconnectPolicy::new_constant(0, 50));
    // Every connection names itself after its fred client (`CLIENT SETNAME <id>`), so the gateway's records say
    // which client a closed connection belonged to.
    builder.with_connection_config(|c| c.auto_client_setname = true);
    // Room for every message of a test's stream in fred's broadcast queue, so a listener starved by a loaded
    // machine does not lag (a lag would look like lost messages).
    builder.with_performance_config(|p| p.broadcast_channel_capacity = 1 << 16);
    builder
}

/// Waits until the manager has delivered `count` new tokens (after the first).
pub async fn wait_rotations(manager: &TokenManager, count: usize) {
    let mut sub = manager.subscribe();
    let mut seen = 0;
    while seen < count {
        match tokio::time::timeout(Duration::from_secs(30), sub.recv()).await {
            Ok(Some(TokenEvent::Token(_))) => seen += 1,
            Ok(Some(_)) => {}
            Ok(None) => panic!("manager stopped"),
            Err(_) => panic!("no rotation within 30 s (saw {seen} of {count})"),
        }
    }
}

/// Waits until the adapter has pushed the manager's current token to every attached client.
pub async fn settle(auth: &EntraIdAuth) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let current = auth.manager().current().map(|t| t.username().to_owned());
        let pushed = auth.pushed_token().map(|t| t.username().to_owned());
        let stats = auth.stats();
        if current.is_some() && current == pushed && stats.fanouts_completed == stats.rotations {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "fan-out did not finish: {stats:?}, manager has {current:?}, pushed {pushed:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs SET/GET/INCR on `client` until `stop`; returns (ok, failed) counts and the first error.
pub async fn load(
    client: Client,
    stop: Arc<AtomicBool>,
    keys: Vec<String>,
) -> (u64, u64, Option<String>) {
    let (mut ok, mut failed, mut first) = (0u64, 0u64, None);
    let mut i = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let key = &keys[(i as usize) % keys.len()];
        i += 1;
        let result: Result<(), Error> = async {
            client
                .set::<(), _, _>(key.as_str(), i, None, None, false)
                .await?;
            let value: u64 = client.get(key.as_str()).await?;
            assert!(value > 0);
            client.incr::<i64, _>(format!("{key}:n")).await?;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => ok += 1,
            Err(e) => {
                failed += 1;
                first.get_or_insert_with(|| e.to_string());
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (ok, failed, first)
}
