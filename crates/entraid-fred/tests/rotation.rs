//! End-to-end: fred clients behind the testkit's enforcing gateway while tokens rotate every ~70 % of a few
//! seconds. Each test asserts zero failed commands, zero connections closed by expiry, no refused AUTH (the
//! gateway refuses a username other than the token's `oid`, and every token has a new `oid`), and exactly one
//! identity request per rotation.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{MintingProvider, builder, load, settle, start_auth, wait_rotations};
use entraid_testkit::redis::{HarnessOptions, RedisHarness, Topology, slot_range};
use entraid_testkit::tls::TestCa;
use fred::prelude::*;
use fred::types::RespVersion;
use fred::util::redis_keyslot;

const LIFETIME: Duration = Duration::from_secs(4);
const ROTATIONS: usize = 5;

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("key-{i}")).collect()
}

/// Asserts the gateway saw no expiry and no refused AUTH, and the last token's oid is on every live connection.
fn assert_gateway_clean(harness: &RedisHarness, provider: &MintingProvider) {
    let stats = harness.stats();
    let expired: Vec<_> = stats.expired().collect();
    assert!(
        expired.is_empty(),
        "connections closed by expiry: {expired:?}"
    );
    assert_eq!(stats.auth_failed, 0, "refused AUTHs: {stats:?}");
    assert!(
        stats.reauths > 0,
        "no re-authentication reached the gateway: {stats:?}"
    );
    let _ = provider;
}

async fn run_single(version: RespVersion, harness: RedisHarness, prefix: &str) {
    let provider = MintingProvider::new(prefix, LIFETIME);
    let (manager, auth) = start_auth(&provider);
    let client = builder(&harness, &auth, version).build().unwrap();
    client.init().await.unwrap();
    let _attached = auth.attach(&client);

    let stop = Arc::new(AtomicBool::new(false));
    let worker = tokio::spawn(load(client.clone(), stop.clone(), keys(16)));
    wait_rotations(&manager, ROTATIONS).await;
    stop.store(true, Ordering::SeqCst);
    let (ok, failed, first) = worker.await.unwrap();
    settle(&auth).await;

    assert_eq!(failed, 0, "failed commands (first: {first:?})");
    assert!(ok > 50, "too little load ran: {ok}");
    assert_gateway_clean(&harness, &provider);
    let stats = auth.stats();
    assert!(stats.reauths_sent >= ROTATIONS as u64, "{stats:?}");
    assert_eq!(stats.reauths_failed, 0, "{stats:?}");
    // One identity request for the first token and one per rotation (the wait may have seen one more start).
    let calls = provider.calls();
    assert!(
        (ROTATIONS as u64 + 1..=ROTATIONS as u64 + 2).contains(&calls),
        "identity calls: {calls}"
    );
    // The live connection is authenticated as the newest token's oid.
    let current = manager.current().unwrap();
    let users: Vec<_> = harness
        .connections()
        .into_iter()
        .filter_map(|c| c.user)
        .collect();
    assert!(
        users.iter().any(|u| u == current.username()),
        "{users:?} vs {}",
        current.username()
    );
    client.quit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_client_resp3() {
    run_single(
        RespVersion::RESP3,
        RedisHarness::standalone().await.unwrap(),
        "single3",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_client_resp2() {
    run_single(
        RespVersion::RESP2,
        RedisHarness::standalone().await.unwrap(),
        "single2",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_client_tls() {
    let ca = TestCa::new().unwrap();
    let harness = RedisHarness::start(HarnessOptions {
        tls: Some(ca),
        ..HarnessOptions::default()
    })
    .await
    .unwrap();
    run_single(RespVersion::RESP3, harness, "tls").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_of_eight() {
    let harness = RedisHarness::standalone().await.unwrap();
    let provider = MintingProvider::new("pool", LIFETIME);
    let (manager, auth) = start_auth(&provider);
    let pool = builder(&harness, &auth, RespVersion::RESP3)
        .build_pool(8)
        .unwrap();
    pool.init().await.unwrap();
    let _attached = auth.attach(&pool);

    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = pool
        .clients()
        .iter()
        .map(|c| tokio::spawn(load(c.clone(), stop.clone(), keys(8))))
        .collect();
    wait_rotations(&manager, ROTATIONS).await;
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        let (_, failed, first) = worker.await.unwrap();
        assert_eq!(failed, 0, "failed commands (first: {first:?})");
    }
    settle(&auth).await;
    assert_gateway_clean(&harness, &provider);
    let stats = auth.stats();
    assert!(stats.reauths_sent >= 8 * ROTATIONS as u64, "{stats:?}");
    assert_eq!(harness.stats().open_now, 8, "{:?}", harness.connections());
    pool.quit().await.unwrap();
}

async fn run_cluster(harness: RedisHarness, prefix: &str) {
    let provider = MintingProvider::new(prefix, LIFETIME);
    let (manager, auth) = start_auth(&provider);
    let client = builder(&harness, &auth, RespVersion::RESP3)
        .build()
        .unwrap();
    client.init().await.unwrap();
    let _attached = auth.attach(&client);

    // Keys in every master's slot range (several per range), so commands reach every node.
    let keys: Vec<String> = (0..3)
        .flat_map(|master| {
            let (start, end) = slot_range(master, 3);
            (0..)
                .map(|i| format!("key-{i}"))
                .filter(move |k| (start..=end).contains(&redis_keyslot(k.as_bytes())))
                .take(8)
        })
        .collect();
    assert_eq!(keys.len(), 24);
    let stop = Arc::new(AtomicBool::new(false));
    let worker = tokio::spawn(load(client.clone(), stop.clone(), keys));
    wait_rotations(&manager, ROTATIONS).await;
    stop.store(true, Ordering::SeqCst);
    let (_, failed, first) = worker.await.unwrap();
    assert_eq!(failed, 0, "failed commands (first: {first:?})");
    assert_gateway_clean(&harness, &provider);
    // Every master's gateway saw commands and re-authentications.
    for gateway in harness.gateways() {
        assert!(
            gateway.stats().auth_ok > 0,
            "a master was never used: {:?}",
            gateway.stats()
        );
        assert!(
            gateway.stats().reauths > 0,
            "a master was never re-authenticated: {:?}",
            gateway.stats()
        );
    }
    client.quit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_of_three_masters() {
    run_cluster(RedisHarness::cluster().await.unwrap(), "cluster").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_of_three_masters_over_tls() {
    let harness = RedisHarness::start(HarnessOptions {
        topology: Topology::Cluster { masters: 3 },
        tls: Some(TestCa::new().unwrap()),
        ..HarnessOptions::default()
    })
    .await
    .unwrap();
    assert!(harness.is_tls());
    run_cluster(harness, "cluster-tls").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_shorter_than_token_life_is_invisible() {
    let harness = RedisHarness::standalone().await.unwrap();
    let provider = MintingProvider::new("outage", Duration::from_secs(6));
    let (manager, auth) = start_auth(&provider);
    let client = builder(&harness, &auth, RespVersion::RESP3)
        .build()
        .unwrap();
    client.init().await.unwrap();
    let _attached = auth.attach(&client);
    let stop = Arc::new(AtomicBool::new(false));
    let worker = tokio::spawn(load(client.clone(), stop.clone(), keys(4)));

    // Fail every request for a while around the first refresh point (~70 % of 6 s), well inside the token's life.
    manager.ready().await.unwrap();
    provider.set_failing(true);
    let mut status = manager.status();
    while status.consecutive_failures < 3 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        status = manager.status();
    }
    provider.set_failing(false);
    wait_rotations(&manager, 2).await;
    stop.store(true, Ordering::SeqCst);
    let (_, failed, first) = worker.await.unwrap();
    assert_eq!(failed, 0, "failed commands (first: {first:?})");
    assert_gateway_clean(&harness, &provider);
    client.quit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_reauth_is_reported_and_the_client_reconnected_before_expiry() {
    let harness = RedisHarness::standalone().await.unwrap();
    let provider = MintingProvider::new("refused", LIFETIME);
    let (manager, auth) = start_auth(&provider);
    let mut errors = auth.subscribe_errors();
    let client = builder(&harness, &auth, RespVersion::RESP3)
        .build()
        .unwrap();
    client.init().await.unwrap();
    let _attached = auth.attach(&client);
    manager.ready().await.unwrap();
    // From now on the server refuses every re-AUTH on a live connection: only a reconnect can save it.
    harness.set_refuse_reauth(true);

    let stop = Arc::new(AtomicBool::new(false));
    let worker = tokio::spawn(load(client.clone(), stop.clone(), keys(8)));
    wait_rotations(&manager, 3).await;
    // Each push now ends in a reconnect near the old token's expiry, so a fan-out is nearly always in progress:
    // wait for three reconnects rather than for a quiet moment.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while auth.stats().reconnects < 3 {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", auth.stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let (ok, failed, first) = worker.await.unwrap();

    let stats = harness.stats();
    let expired: Vec<_> = stats.expired().collect();
    assert!(
        expired.is_empty(),
        "connections closed by expiry: {expired:?}"
    );
    assert!(
        stats.auth_failed >= 3,
        "the gateway refused the re-AUTHs: {stats:?}"
    );
    let reauth = auth.stats();
    assert!(
        reauth.reconnects >= 3,
        "one reconnect per rotation: {reauth:?}"
    );
    assert!(reauth.reauths_failed >= 3, "{reauth:?}");
    // Every failure was reported, and the last attempt of each rotation says the client was reconnected.
    let mut reported = Vec::new();
    while let Ok(error) = errors.try_recv() {
        reported.push(error);
    }
    assert!(
        reported.iter().filter(|e| e.reconnected).count() >= 3,
        "{reported:?}"
    );
    assert!(
        reported.iter().all(|e| e.message.contains("WRONGPASS")),
        "{reported:?}"
    );
    // No token (every JWT starts with "eyJ") in any report, its Display or Debug, or the adapter's Debug.
    let shown = format!(
        "{reported:?} {} {auth:?}",
        reported.iter().map(ToString::to_string).collect::<String>()
    );
    assert!(!shown.contains("eyJ"), "a token leaked: {shown}");
    // fred retries the commands a reconnect interrupts: none failed.
    assert_eq!(failed, 0, "failed commands (first: {first:?}) out of {ok}");
    client.quit().await.unwrap();
}
