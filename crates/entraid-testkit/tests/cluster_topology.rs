//! Cluster topology changes behind gateways: replicas announce their gateways and replicate through their primary's
//! gateway; a killed or paused primary is replaced by its replica; a paused one rejoins as a replica; a coordinated
//! failover swaps them back; a new primary takes migrated slots with their keys, gives them back and is removed. Data written through the gateways
//! (with tokens) survives each change.

#![allow(clippy::unwrap_used, reason = "tests: a failed step is a failed test")]

use std::net::SocketAddr;
use std::time::Duration;

use entraid_testkit::redis::{
    ClusterOptions, FailoverMode, Failure, RedisCluster, RespClient, RespValue, Role, slot_range,
    token,
};

const HOUR: Duration = Duration::from_secs(3600);

async fn authed(addr: SocketAddr) -> RespClient {
    let mut client = RespClient::connect(addr).await.unwrap();
    let reply = client
        .command(&["AUTH", "topology-user", &token("topology-user", HOUR)])
        .await
        .unwrap();
    assert_eq!(reply, RespValue::Simple("OK".into()));
    client
}

/// A key (no hash tag) in `slots`.
fn key_in(slots: (u16, u16), n: usize) -> String {
    (0..)
        .map(|i| format!("k{i}"))
        .filter(|k| (slots.0..=slots.1).contains(&key_slot(k)))
        .nth(n)
        .unwrap()
}

/// The gateway port of node `i`.
fn port(cluster: &RedisCluster, i: usize) -> u16 {
    cluster.gateways()[i].addr().port()
}

/// Writes `key` on the node owning it (through its gateway) and waits until one replica has it.
async fn write_replicated(cluster: &RedisCluster, owner: usize, key: &str) {
    let mut client = authed(cluster.gateways()[owner].addr()).await;
    assert_eq!(
        client.command(&["SET", key, "v"]).await.unwrap(),
        RespValue::Simple("OK".into())
    );
    assert_eq!(
        client.command(&["WAIT", "1", "5000"]).await.unwrap(),
        RespValue::Integer(1),
        "a replica acknowledged the write"
    );
}

async fn read(cluster: &RedisCluster, node: usize, key: &str) -> RespValue {
    authed(cluster.gateways()[node].addr())
        .await
        .command(&["GET", key])
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_take_over_killed_and_paused_primaries() {
    let mut cluster = RedisCluster::start(ClusterOptions {
        masters: 3,
        replicas_per_master: 1,
        node_timeout: Duration::from_millis(1500),
        ..ClusterOptions::default()
    })
    .await
    .unwrap();
    let roles = cluster.roles().await.unwrap();
    assert_eq!(
        roles,
        vec![
            Role::Primary,
            Role::Primary,
            Role::Primary,
            Role::Replica { of: 0 },
            Role::Replica { of: 1 },
            Role::Replica { of: 2 },
        ]
    );
    // CLUSTER SLOTS (from every node) names the replicas' gateways too.
    let map = cluster.slot_map(4).await.unwrap();
    for (i, range) in map.iter().enumerate() {
        assert_eq!((range.start, range.end), slot_range(i, 3));
        assert_eq!(range.primary, port(&cluster, i));
        assert_eq!(range.replicas, vec![port(&cluster, i + 3)]);
    }
    // Each replica replicates through its primary's gateway: a link with no user and no deadline, not a token.
    for i in 0..3 {
        let links: Vec<_> = cluster.gateways()[i]
            .connections()
            .into_iter()
            .filter(|c| c.user.is_none())
            .collect();
        assert_eq!(links.len(), 1, "node {i}: {links:?}");
        assert!(links[0].deadline.is_none());
        assert_eq!(cluster.gateways()[i].stats().auth_ok, 0);
    }

    // Kill primary 0: its replica (3) takes slots and data over.
    let key0 = key_in(slot_range(0, 3), 0);
    write_replicated(&cluster, 0, &key0).await;
    let promoted = cluster.fail_primary(0, Failure::Kill).await.unwrap();
    assert_eq!(promoted, 3);
    assert_eq!(cluster.primaries().await.unwrap(), vec![1, 2, 3]);
    assert_eq!(cluster.roles().await.unwrap()[0], Role::Down);
    assert_eq!(read(&cluster, 3, &key0).await, RespValue::Bulk("v".into()));
    let map = cluster.slot_map(1).await.unwrap();
    assert_eq!(map[0].primary, port(&cluster, 3));
    assert!(map[0].replicas.is_empty());
    // The dead node's gateway closes every connection at once.
    let mut dead = RespClient::connect(cluster.gateways()[0].addr())
        .await
        .unwrap();
    assert!(dead.command(&["PING"]).await.is_err());

    // Pause primary 1: its replica (4) takes over; resumed, 1 rejoins as 4's replica, with the data.
    let key1 = key_in(slot_range(1, 3), 0);
    write_replicated(&cluster, 1, &key1).await;
    let promoted = cluster.fail_primary(1, Failure::Pause).await.unwrap();
    assert_eq!(promoted, 4);
    assert_eq!(read(&cluster, 4, &key1).await, RespValue::Bulk("v".into()));
    cluster.resume(1).await.unwrap();
    assert_eq!(cluster.roles().await.unwrap()[1], Role::Replica { of: 4 });
    let reply = read(&cluster, 1, &key1).await;
    assert_eq!(
        reply.as_error().unwrap(),
        format!("MOVED {} 127.0.0.1:{}", key_slot(&key1), port(&cluster, 4)),
        "a replica redirects to its primary's gateway"
    );

    // A coordinated failover gives node 1 its slots back; FORCE and TAKEOVER promote too.
    assert_eq!(
        cluster
            .failover(1, FailoverMode::Coordinated)
            .await
            .unwrap(),
        1
    );
    assert_eq!(cluster.roles().await.unwrap()[4], Role::Replica { of: 1 });
    assert_eq!(read(&cluster, 1, &key1).await, RespValue::Bulk("v".into()));
    assert_eq!(cluster.failover(5, FailoverMode::Force).await.unwrap(), 5);
    assert_eq!(
        cluster.failover(2, FailoverMode::Takeover).await.unwrap(),
        2
    );
    assert_eq!(cluster.primaries().await.unwrap(), vec![1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_primary_takes_migrated_slots_with_their_keys() {
    let mut cluster = RedisCluster::start(ClusterOptions::default())
        .await
        .unwrap();
    let (start, _) = slot_range(2, 3);
    let moving = (start, start + 99);
    let keys: Vec<String> = (0..20).map(|n| key_in(moving, n)).collect();
    let staying = key_in((start + 100, start + 200), 0);
    let mut owner = authed(cluster.gateways()[2].addr()).await;
    for key in keys.iter().chain([&staying]) {
        assert_eq!(
            owner.command(&["SET", key, key]).await.unwrap(),
            RespValue::Simple("OK".into())
        );
    }

    let new = cluster.add_primary().await.unwrap();
    assert_eq!(new, 3);
    assert_eq!(cluster.roles().await.unwrap()[3], Role::EmptyPrimary);
    let moved = cluster
        .migrate_slots(2, new, moving.0..=moving.1)
        .await
        .unwrap();
    assert_eq!(moved, 20);
    assert_eq!(cluster.primaries().await.unwrap(), vec![0, 1, 2, 3]);
    // Every node shows the new owner of the range, at its gateway.
    for i in 0..4 {
        let map = cluster.slot_map(i).await.unwrap();
        let range = map.iter().find(|r| r.start == moving.0).unwrap();
        assert_eq!((range.end, range.primary), (moving.1, port(&cluster, 3)));
    }
    let mut there = authed(cluster.gateways()[3].addr()).await;
    for key in &keys {
        assert_eq!(
            there.command(&["GET", key]).await.unwrap(),
            RespValue::Bulk(key.clone().into())
        );
        let reply = owner.command(&["GET", key]).await.unwrap();
        assert_eq!(
            reply.as_error().unwrap(),
            format!("MOVED {} 127.0.0.1:{}", key_slot(key), port(&cluster, 3))
        );
    }
    assert_eq!(
        owner.command(&["GET", &staying]).await.unwrap(),
        RespValue::Bulk(staying.clone().into())
    );

    // Scale in: the slots go back, the emptied node is removed, the others forget it.
    assert!(
        cluster.remove_node(new).await.is_err(),
        "it still serves slots"
    );
    let back = cluster
        .migrate_slots(new, 2, moving.0..=moving.1)
        .await
        .unwrap();
    assert_eq!(back, 20);
    cluster.remove_node(new).await.unwrap();
    assert_eq!(cluster.primaries().await.unwrap(), vec![0, 1, 2]);
    let nodes = cluster
        .admin(0)
        .await
        .unwrap()
        .command(&["CLUSTER", "NODES"])
        .await
        .unwrap();
    assert!(!nodes.as_text().unwrap().contains(cluster.node_id(new)));
    for key in &keys {
        assert_eq!(
            owner.command(&["GET", key]).await.unwrap(),
            RespValue::Bulk(key.clone().into())
        );
    }
}

/// CRC16 (XMODEM) key slot, as Redis computes it for keys without a hash tag.
fn key_slot(key: &str) -> u16 {
    let mut crc: u16 = 0;
    for byte in key.bytes() {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}
