//! End-to-end: redis-rs connections behind the testkit's enforcing gateway (Data Contributor policy) while 4 s
//! tokens rotate five times under load. Each case asserts zero failed commands, zero connections closed by
//! expiry, no refused AUTH (every token has a new `oid`, so a stale username is refused), every live connection
//! on the newest token, and exactly one identity request per rotation. Independent cases run concurrently inside
//! one test, each on its own harness and token manager.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::{
    LIFETIME, MintingProvider, client, cluster_client, keys, rotate_under_load, start_auth,
};
use entraid_testkit::redis::{AccessPolicy, HarnessOptions, RedisHarness, Topology};
use entraid_testkit::tls::TestCa;
use redis::ProtocolVersion;
use redis::aio::ConnectionManagerConfig;

fn options(topology: Topology, tls: Option<&TestCa>) -> HarnessOptions {
    HarnessOptions {
        topology,
        tls: tls.cloned(),
        access_policy: AccessPolicy::DataContributor,
        ..HarnessOptions::default()
    }
}

/// Four clones of one multiplexed connection (one physical connection), each running load.
async fn multiplexed(name: &str, protocol: ProtocolVersion, tls: Option<TestCa>) {
    let harness = RedisHarness::start(options(Topology::Standalone, tls.as_ref()))
        .await
        .unwrap();
    let provider = MintingProvider::new(name, LIFETIME);
    let auth = start_auth(&provider);
    let conn = client(&harness, tls.as_ref(), protocol)
        .get_multiplexed_async_connection_with_config(&auth.async_connection_config())
        .await
        .unwrap();
    let conns = vec![conn.clone(), conn.clone(), conn.clone(), conn.clone()];
    rotate_under_load(name, &harness, &provider, &auth, conns, keys(16)).await;
    assert_eq!(
        harness.stats().open_now,
        1,
        "{name}: one multiplexed connection"
    );
    drop(conn);
}

/// Two `ConnectionManager`s (two physical connections), each running load from two clones.
async fn connection_manager(name: &str, protocol: ProtocolVersion, tls: Option<TestCa>) {
    let harness = RedisHarness::start(options(Topology::Standalone, tls.as_ref()))
        .await
        .unwrap();
    let provider = MintingProvider::new(name, LIFETIME);
    let auth = start_auth(&provider);
    let (mut conns, mut keep) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let config = ConnectionManagerConfig::new().set_credentials_provider(auth.clone());
        let manager = client(&harness, tls.as_ref(), protocol)
            .get_connection_manager_with_config(config)
            .await
            .unwrap();
        conns.push(manager.clone());
        conns.push(manager.clone());
        keep.push(manager);
    }
    rotate_under_load(name, &harness, &provider, &auth, conns, keys(16)).await;
    let stats = harness.stats();
    assert_eq!(stats.open_now, 2, "{name}: {stats:?}");
    assert_eq!(
        stats.connections_accepted, 2,
        "{name}: no reconnect: {stats:?}"
    );
    drop(keep);
}

/// The async cluster client over a three-master cluster, with keys on every master.
async fn cluster(name: &str, protocol: ProtocolVersion, tls: Option<TestCa>) {
    let harness = RedisHarness::start(options(Topology::Cluster { masters: 3 }, tls.as_ref()))
        .await
        .unwrap();
    let provider = MintingProvider::new(name, LIFETIME);
    let auth = start_auth(&provider);
    let conn = cluster_client(&harness, tls.as_ref(), protocol, &auth)
        .get_async_connection()
        .await
        .unwrap();
    let conns = vec![conn.clone(), conn.clone()];
    rotate_under_load(name, &harness, &provider, &auth, conns, keys(48)).await;
    drop(conn);
    // Every master's gateway saw commands and re-authentications.
    for gateway in harness.gateways() {
        let stats = gateway.stats();
        assert!(
            stats.auth_ok > 0 && stats.reauths > 0,
            "{name}: a master was left out: {stats:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiplexed_and_connection_manager_on_resp2_and_resp3() {
    tokio::join!(
        multiplexed("mux2", ProtocolVersion::RESP2, None),
        multiplexed("mux3", ProtocolVersion::RESP3, None),
        connection_manager("cm2", ProtocolVersion::RESP2, None),
        connection_manager("cm3", ProtocolVersion::RESP3, None),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_of_three_masters_on_resp2_and_resp3() {
    tokio::join!(
        cluster("cluster2", ProtocolVersion::RESP2, None),
        cluster("cluster3", ProtocolVersion::RESP3, None),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connection_kind_over_tls() {
    let ca = TestCa::new().unwrap();
    tokio::join!(
        multiplexed("mux-tls", ProtocolVersion::RESP3, Some(ca.clone())),
        connection_manager("cm-tls", ProtocolVersion::RESP2, Some(ca.clone())),
        cluster("cluster-tls", ProtocolVersion::RESP3, Some(ca)),
    );
}
