//! End-to-end: what happens when redis-rs's own re-auth task stops after a refused `AUTH`, and how
//! [`EntraIdAuth::attach`] covers it.
//!
//! redis-rs sends one `AUTH` per new token from a per-connection task and ends that task on the first error. The
//! gateway's fault injection (`set_refuse_reauth`) refuses every `AUTH` on an already authenticated connection,
//! which kills those tasks; after that, a bare connection is closed when its token expires, while an attached
//! one is re-authenticated by the adapter (its retry lands once the refusal ends) and lives on.

#![cfg(feature = "connection-manager")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{
    LIFETIME, MintingProvider, ROTATIONS, client, cluster_client, keyed, keys, load, start_auth,
    wait_rotations, wait_until,
};
use entraid_testkit::redis::RedisHarness;
use redis::ProtocolVersion;
use redis::aio::ConnectionManagerConfig;

/// redis-rs's tasks are refused from the start; the adapter's attachments (a multiplexed connection and a
/// `ConnectionManager`) see one refused rotation, then the refusal ends. A bare connection is the control.
async fn attached_connections_outlive_redis_rs_stopped_tasks() {
    let harness = RedisHarness::standalone().await.unwrap();
    harness.set_refuse_reauth(true);
    let (p_mux, p_cm, p_bare) = (
        MintingProvider::new("attached-mux", LIFETIME),
        MintingProvider::new("attached-cm", LIFETIME),
        MintingProvider::new("bare", LIFETIME),
    );
    let (a_mux, a_cm, a_bare) = (start_auth(&p_mux), start_auth(&p_cm), start_auth(&p_bare));
    let mux = client(&harness, None, ProtocolVersion::RESP3)
        .get_multiplexed_async_connection_with_config(&a_mux.async_connection_config())
        .await
        .unwrap();
    let cm = client(&harness, None, ProtocolVersion::RESP2)
        .get_connection_manager_with_config(
            ConnectionManagerConfig::new().set_credentials_provider(a_cm.clone()),
        )
        .await
        .unwrap();
    let bare = client(&harness, None, ProtocolVersion::RESP3)
        .get_multiplexed_async_connection_with_config(&a_bare.async_connection_config())
        .await
        .unwrap();
    // Each redis-rs re-auth task's first AUTH (the same token, right after connecting) is refused: all three
    // tasks have stopped.
    wait_until("tasks refused", || harness.stats().auth_failed >= 3).await;
    let _mux_attached = a_mux.attach(mux.clone());
    let _cm_attached = a_cm.attach(cm.clone());

    let stop = Arc::new(AtomicBool::new(false));
    let w_mux = tokio::spawn(load(mux.clone(), stop.clone(), keyed("mux", 8)));
    let w_cm = tokio::spawn(load(cm.clone(), stop.clone(), keyed("cm", 8)));
    let w_bare = tokio::spawn(load(bare.clone(), stop.clone(), keyed("bare", 8)));

    // The first rotation's AUTH from both attachments is refused, then the refusal ends: their retries succeed.
    wait_until("attachments refused", || {
        a_mux.stats().attached_reauths_failed >= 1 && a_cm.stats().attached_reauths_failed >= 1
    })
    .await;
    harness.set_refuse_reauth(false);
    wait_rotations(a_mux.manager(), ROTATIONS).await;
    // Right after the last rotation (the next is ~2.8 s away): one identity request for the first token and one
    // per rotation (the refused one before this wait, and ROTATIONS during it).
    assert_eq!(p_mux.calls(), ROTATIONS as u64 + 2);
    stop.store(true, Ordering::SeqCst);
    let (l_mux, l_cm, l_bare) = (
        w_mux.await.unwrap(),
        w_cm.await.unwrap(),
        w_bare.await.unwrap(),
    );

    assert_eq!(l_mux.failed, 0, "attached multiplexed: {l_mux:?}");
    assert_eq!(l_cm.failed, 0, "attached ConnectionManager: {l_cm:?}");
    assert!(l_mux.ok > 50 && l_cm.ok > 50, "{l_mux:?} {l_cm:?}");
    let stats = harness.stats();
    let expired: Vec<_> = stats.expired().collect();
    // The control: redis-rs alone lets the connection expire (and its commands then fail).
    assert!(
        expired
            .iter()
            .any(|c| c.user.as_deref().is_some_and(|u| u.starts_with("bare-"))),
        "the bare connection should have expired: {stats:?}"
    );
    assert!(l_bare.failed > 0, "{l_bare:?}");
    assert!(
        expired
            .iter()
            .all(|c| c.user.as_deref().is_some_and(|u| u.starts_with("bare-"))),
        "an attached connection expired: {expired:?}"
    );
    for (name, auth) in [("mux", &a_mux), ("cm", &a_cm)] {
        let s = auth.stats();
        // Only the adapter re-authenticated these connections: redis-rs's tasks were dead from the start.
        assert_eq!(s.reauths_confirmed, 0, "{name}: {s:?}");
        assert!(
            s.attached_reauths_ok >= ROTATIONS as u64 - 1,
            "{name}: {s:?}"
        );
        assert!(s.attached_reauths_failed >= 1, "{name}: {s:?}");
    }
    // The ConnectionManager never had to reconnect, and both attached connections carry their newest token.
    assert_eq!(stats.connections_accepted, 3, "{stats:?}");
    for auth in [&a_mux, &a_cm] {
        wait_until("newest token", || {
            let current = auth.current().unwrap();
            harness
                .connections()
                .iter()
                .any(|c| c.user.as_deref() == Some(current.username()))
        })
        .await;
    }
    drop((mux, cm, bare, p_cm, p_bare));
}

/// A re-auth task that stops on a refused `AUTH` with a new token is counted (and the connection then expires).
async fn a_stopped_task_is_counted() {
    let harness = RedisHarness::standalone().await.unwrap();
    let provider = MintingProvider::new("stopped", LIFETIME);
    let auth = start_auth(&provider);
    let conn = client(&harness, None, ProtocolVersion::RESP2)
        .get_multiplexed_async_connection_with_config(&auth.async_connection_config())
        .await
        .unwrap();
    // The task's first AUTH (same token) goes through; then every re-AUTH is refused.
    wait_until("first re-auth", || harness.stats().reauths >= 1).await;
    harness.set_refuse_reauth(true);
    wait_rotations(auth.manager(), 1).await;
    wait_until("task stopped", || auth.stats().reauth_tasks_stopped == 1).await;
    let stats = auth.stats();
    assert_eq!(stats.reauths_confirmed, 0, "{stats:?}");
    assert_eq!(
        stats.streams_open, 0,
        "the task dropped its stream: {stats:?}"
    );
    // Nothing re-authenticates it any more: the gateway closes it when the first token expires.
    tokio::time::timeout(Duration::from_secs(10), async {
        while harness.stats().closed_by_expiry == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the connection should expire");
    drop(conn);
}

/// The same for the cluster client: every node's redis-rs task is refused at once; the attachment's `AUTH` goes
/// to every node and is retried until all succeed.
async fn an_attached_cluster_connection_outlives_its_nodes_stopped_tasks() {
    let harness = RedisHarness::cluster().await.unwrap();
    harness.set_refuse_reauth(true);
    let provider = MintingProvider::new("attached-cluster", LIFETIME);
    let auth = start_auth(&provider);
    let conn = cluster_client(&harness, None, ProtocolVersion::RESP3, &auth)
        .get_async_connection()
        .await
        .unwrap();
    // One refused AUTH per node: every node connection's redis-rs task has stopped.
    wait_until("node tasks refused", || harness.stats().auth_failed >= 3).await;
    let _attached = auth.attach(conn.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let worker = tokio::spawn(load(conn.clone(), stop.clone(), keys(48)));
    wait_until("attachment refused", || {
        auth.stats().attached_reauths_failed >= 1
    })
    .await;
    harness.set_refuse_reauth(false);
    wait_rotations(auth.manager(), ROTATIONS).await;
    assert_eq!(provider.calls(), ROTATIONS as u64 + 2);
    stop.store(true, Ordering::SeqCst);
    let load = worker.await.unwrap();
    assert_eq!(load.failed, 0, "{load:?}");
    assert!(load.ok > 50, "{load:?}");
    let stats = harness.stats();
    assert_eq!(stats.closed_by_expiry, 0, "{stats:?}");
    let s = auth.stats();
    assert_eq!(
        s.reauths_confirmed, 0,
        "only the adapter re-authenticated: {s:?}"
    );
    assert!(s.attached_reauths_ok >= ROTATIONS as u64 - 1, "{s:?}");
    for gateway in harness.gateways() {
        assert!(
            gateway.stats().reauths > 0,
            "a node was never re-authenticated: {:?}",
            gateway.stats()
        );
    }
    drop(conn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_reauth_tasks_are_counted_and_attach_covers_them() {
    tokio::join!(
        attached_connections_outlive_redis_rs_stopped_tasks(),
        an_attached_cluster_connection_outlives_its_nodes_stopped_tasks(),
        a_stopped_task_is_counted(),
    );
}
