//! A 3-master cluster behind gateways: topology replies and redirections name the gateways (announced ports, no
//! rewriting), following a MOVED works, AUTH is enforced on every node, and every process is gone after drop.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed step is a failed test"
)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use entraid_testkit::redis::{RedisHarness, RespClient, RespValue, slot_range, token};

const HOUR: Duration = Duration::from_secs(3600);

async fn authed(harness: &RedisHarness, addr: SocketAddr) -> RespClient {
    let mut client = harness.connect_to(addr).await.unwrap();
    let reply = client
        .command(&["AUTH", "cluster-user", &token("cluster-user", HOUR)])
        .await
        .unwrap();
    assert_eq!(reply, RespValue::Simple("OK".into()));
    client
}

fn ports(value: &RespValue, out: &mut Vec<u16>) {
    // CLUSTER SLOTS: [[start, end, [ip, port, id, ...], ...], ...]
    for range in value.as_items().unwrap() {
        for node in &range.as_items().unwrap()[2..] {
            let RespValue::Integer(port) = node.as_items().unwrap()[1] else {
                panic!("{node:?}");
            };
            out.push(u16::try_from(port).unwrap());
        }
    }
}

#[tokio::test]
async fn a_cluster_behind_gateways_redirects_to_gateways() {
    let harness = RedisHarness::cluster().await.unwrap();
    let gateways = harness.addrs();
    assert_eq!(gateways.len(), 3);
    let gateway_ports: Vec<u16> = gateways.iter().map(SocketAddr::port).collect();
    let direct_ports: Vec<u16> = harness
        .direct_addrs()
        .iter()
        .map(SocketAddr::port)
        .collect();

    // NOAUTH on every node before AUTH.
    for addr in &gateways {
        let mut client = harness.connect_to(*addr).await.unwrap();
        let reply = client.command(&["CLUSTER", "SLOTS"]).await.unwrap();
        assert_eq!(reply.as_error(), Some("NOAUTH Authentication required."));
    }

    let mut first = authed(&harness, gateways[0]).await;
    let slots = first.command(&["CLUSTER", "SLOTS"]).await.unwrap();
    let mut announced = Vec::new();
    ports(&slots, &mut announced);
    announced.sort_unstable();
    let mut expected = gateway_ports.clone();
    expected.sort_unstable();
    assert_eq!(announced, expected, "CLUSTER SLOTS names the gateways");
    assert!(announced.iter().all(|p| !direct_ports.contains(p)));

    let shards = first.command(&["CLUSTER", "SHARDS"]).await.unwrap();
    let shown = format!("{shards:?}");
    for port in &gateway_ports {
        assert!(shown.contains(&format!("Integer({port})")), "{shown}");
    }

    // "foo" hashes to slot 12182, which the third node owns.
    let slot = first.command(&["CLUSTER", "KEYSLOT", "foo"]).await.unwrap();
    assert_eq!(slot, RespValue::Integer(12182));
    let (start, end) = slot_range(2, 3);
    assert!((start..=end).contains(&12182));
    let reply = first.command(&["SET", "foo", "bar"]).await.unwrap();
    let moved = reply.as_error().unwrap();
    assert_eq!(moved, format!("MOVED 12182 127.0.0.1:{}", gateway_ports[2]));

    // Following the redirection reaches the right node through its gateway.
    let target: SocketAddr = moved.rsplit(' ').next().unwrap().parse().unwrap();
    let mut owner = authed(&harness, target).await;
    assert_eq!(
        owner.command(&["SET", "foo", "bar"]).await.unwrap(),
        RespValue::Simple("OK".into())
    );
    assert_eq!(
        owner.command(&["GET", "foo"]).await.unwrap(),
        RespValue::Bulk("bar".into())
    );
    // A key the first node owns is served there.
    let slot = first.command(&["CLUSTER", "KEYSLOT", "a"]).await.unwrap();
    assert_eq!(slot, RespValue::Integer(15495));
    let reply = first.command(&["SET", "{b}x", "1"]).await.unwrap(); // slot 3300, node 0
    assert_eq!(reply, RespValue::Simple("OK".into()));

    // Counters come from every gateway.
    let stats = harness.stats();
    assert_eq!(stats.auth_ok, 2);
    assert_eq!(stats.connections_accepted, 5);

    let pids: Vec<u32> = harness.servers().iter().map(|s| s.pid()).collect();
    drop((first, owner));
    drop(harness);
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "cluster node {pid} survived"
        );
    }
}

#[tokio::test]
async fn a_tls_cluster_announces_its_tls_gateways() {
    use entraid_testkit::redis::{HarnessOptions, Topology};
    use entraid_testkit::tls::TestCa;

    let harness = RedisHarness::start(HarnessOptions {
        topology: Topology::Cluster { masters: 3 },
        tls: Some(TestCa::new().unwrap()),
        ..HarnessOptions::default()
    })
    .await
    .unwrap();
    assert!(harness.is_tls());
    let gateways = harness.addrs();
    let mut gateway_ports: Vec<u16> = gateways.iter().map(SocketAddr::port).collect();
    gateway_ports.sort_unstable();
    // `connect_to` speaks TLS to a TLS harness.
    let mut client = authed(&harness, gateways[0]).await;
    let slots = client.command(&["CLUSTER", "SLOTS"]).await.unwrap();
    let mut announced = Vec::new();
    ports(&slots, &mut announced);
    announced.sort_unstable();
    assert_eq!(announced, gateway_ports);
    // A key owned by another node is redirected to that node's TLS gateway, where it works.
    let (start, end) = slot_range(2, 3);
    let key = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| (start..=end).contains(&key_slot(k)))
        .unwrap();
    let reply = client.command(&["SET", &key, "v"]).await.unwrap();
    let moved = reply.as_error().expect("MOVED").to_owned();
    let target: SocketAddr = moved.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(gateways.contains(&target), "{moved}");
    let mut there = authed(&harness, target).await;
    assert_eq!(
        there.command(&["SET", &key, "v"]).await.unwrap(),
        RespValue::Simple("OK".into())
    );
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
