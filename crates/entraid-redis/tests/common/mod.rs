//! Shared pieces of the redis-rs adapter's end-to-end tests: an identity provider minting tokens the testkit
//! gateway accepts (a new `oid` each time, so a stale or wrong username is refused), redis-rs clients for the
//! harness (standalone or cluster, RESP2 or RESP3, TLS), load, and the per-case assertions.

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

use entraid_manager::{RetryOptions, TokenEvent, TokenManager, TokenManagerOptions};
use entraid_redis::EntraIdAuth;
use entraid_testkit::redis::RedisHarness;
use entraid_testkit::tls::TestCa;
use redis::aio::ConnectionLike;
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::{Client, ProtocolVersion, TlsCertificates};

/// Token lifetime of the rotation tests: the manager refreshes at ~70 %, every ~2.8 s.
pub const LIFETIME: Duration = Duration::from_secs(4);
/// Rotations each case waits for.
pub const ROTATIONS: usize = 5;

pub use entraid_testkit::redis::MintingProvider;

/// Starts manager + adapter over a minting provider (fast retries for short-lived tokens).
pub fn start_auth(provider: &Arc<MintingProvider>) -> EntraIdAuth {
    let options = TokenManagerOptions {
        retry: RetryOptions {
            initial_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(200),
            ..RetryOptions::default()
        },
        ..TokenManagerOptions::default()
    };
    EntraIdAuth::from_provider(provider.clone(), options).unwrap()
}

fn query(protocol: ProtocolVersion) -> &'static str {
    match protocol {
        ProtocolVersion::RESP3 => "?protocol=resp3",
        _ => "?protocol=resp2",
    }
}

fn certs(ca: Option<&TestCa>) -> TlsCertificates {
    TlsCertificates {
        client_tls: None,
        root_cert: ca.map(|ca| ca.ca_cert_pem().as_bytes().to_vec()),
    }
}

/// A redis-rs client for a standalone harness (over TLS, trusting `ca`, when the harness serves TLS).
pub fn client(harness: &RedisHarness, ca: Option<&TestCa>, protocol: ProtocolVersion) -> Client {
    let url = format!("{}/{}", harness.url(), query(protocol));
    if harness.is_tls() {
        Client::build_with_tls(url, certs(ca)).unwrap()
    } else {
        Client::open(url).unwrap()
    }
}

/// A redis-rs cluster client over every gateway of a cluster harness, authenticated by `auth`.
pub fn cluster_client(
    harness: &RedisHarness,
    ca: Option<&TestCa>,
    protocol: ProtocolVersion,
    auth: &EntraIdAuth,
) -> ClusterClient {
    let scheme = if harness.is_tls() { "rediss" } else { "redis" };
    let nodes: Vec<String> = harness
        .addrs()
        .iter()
        .map(|a| format!("{scheme}://{a}/"))
        .collect();
    let mut builder = ClusterClientBuilder::new(nodes)
        .use_protocol(protocol)
        .set_credentials_provider(auth.clone());
    if harness.is_tls() {
        builder = builder.certs(certs(ca));
    }
    builder.build().unwrap()
}

/// Waits until the manager has delivered `count` new tokens (after the one current at the call).
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

/// The outcome of [`load`].
#[derive(Debug, Default)]
pub struct Load {
    pub ok: u64,
    pub failed: u64,
    pub first_error: Option<String>,
}

/// Runs SET/GET/INCR on `conn` until `stop`.
pub async fn load<C: ConnectionLike + Send>(
    mut conn: C,
    stop: Arc<AtomicBool>,
    keys: Vec<String>,
) -> Load {
    let mut out = Load::default();
    let mut i = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let key = &keys[(i as usize) % keys.len()];
        i += 1;
        let result: redis::RedisResult<()> = async {
            redis::cmd("SET")
                .arg(key)
                .arg(i)
                .query_async::<()>(&mut conn)
                .await?;
            let value: u64 = redis::cmd("GET").arg(key).query_async(&mut conn).await?;
            assert_eq!(value, i);
            redis::cmd("INCR")
                .arg(format!("{key}:n"))
                .query_async::<i64>(&mut conn)
                .await?;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => out.ok += 1,
            Err(e) => {
                out.failed += 1;
                out.first_error.get_or_insert_with(|| e.to_string());
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    out
}

/// Keys `{prefix}-0..n` (one set per worker sharing a server, so each GET checks its own SET).
pub fn keyed(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Keys `key-0..n`.
pub fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("key-{i}")).collect()
}

/// Runs `load` on `conns` (clones of one handle or separate connections) through `ROTATIONS` rotations, then
/// checks everything the issue asks of one case: no failed command, no connection closed by expiry, no refused
/// AUTH, every live connection on the newest token, exactly one identity request per rotation.
pub async fn rotate_under_load<C: ConnectionLike + Send + 'static>(
    name: &str,
    harness: &RedisHarness,
    provider: &MintingProvider,
    auth: &EntraIdAuth,
    conns: Vec<C>,
    keys: Vec<String>,
) {
    let calls_before = provider.calls();
    assert_eq!(calls_before, 1, "{name}: one request for the first token");
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(w, c)| {
            // Each worker its own keys (its GET checks its own SET).
            let keys = keys.iter().map(|k| format!("{k}:w{w}")).collect();
            tokio::spawn(load(c, stop.clone(), keys))
        })
        .collect();
    wait_rotations(auth.manager(), ROTATIONS).await;
    // The provider count right after the last rotation: the next refresh is ~2.8 s away.
    let calls = provider.calls();
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        let load = worker.await.unwrap();
        assert_eq!(
            load.failed, 0,
            "{name}: failed commands (first: {:?}) of {}",
            load.first_error, load.ok
        );
        assert!(load.ok > 50, "{name}: too little load ran: {load:?}");
    }
    assert_eq!(calls, ROTATIONS as u64 + 1, "{name}: identity requests");
    assert_gateway_clean(name, harness);
    // Every live connection has executed an AUTH with the newest token (the gateway records the oid).
    wait_for(name, || {
        let current = auth.current().unwrap();
        let conns = harness.connections();
        let done = !conns.is_empty()
            && conns
                .iter()
                .all(|c| c.user.as_deref() == Some(current.username()));
        if done {
            Ok(())
        } else {
            Err(format!(
                "connections not all on {}: {conns:?}",
                current.username()
            ))
        }
    })
    .await;
    // redis-rs confirmed them (it polls again once its AUTH reply is in; the last may still be on its way).
    wait_until(name, || auth.stats().reauths_confirmed >= ROTATIONS as u64).await;
    let stats = auth.stats();
    assert_eq!(stats.reauth_tasks_stopped, 0, "{name}: {stats:?}");
}

/// The gateway saw no expiry, no refused AUTH, and re-authentications.
pub fn assert_gateway_clean(name: &str, harness: &RedisHarness) {
    let stats = harness.stats();
    let expired: Vec<_> = stats.expired().collect();
    assert!(
        expired.is_empty(),
        "{name}: connections closed by expiry: {expired:?}"
    );
    assert_eq!(stats.auth_failed, 0, "{name}: refused AUTHs: {stats:?}");
    assert!(
        stats.reauths >= ROTATIONS as u64,
        "{name}: too few re-authentications: {stats:?}"
    );
}

/// Polls `done` (every 100 ms, up to 10 s).
pub async fn wait_until(name: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name}: condition not reached in 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `check` (every 100 ms, up to 10 s) until it is `Ok`; panics with its last `Err`.
pub async fn wait_for(name: &str, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let Err(why) = check() else { return };
        assert!(tokio::time::Instant::now() < deadline, "{name}: {why}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
