//! End-to-end: [`EntraIdAuth::subscriber`] on RESP2 (where the server refuses `AUTH` while subscribed), RESP3 and
//! TLS, through five rotations of 4 s tokens while a publisher sends every 10 ms: every message arrives, first
//! occurrences in order, no connection closed by expiry, and there is always a subscriber (`PUBLISH` never
//! answers 0).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{
    LIFETIME, MintingProvider, ROTATIONS, client, start_auth, wait_rotations, wait_until,
};
use entraid_testkit::redis::{AccessPolicy, HarnessOptions, RedisHarness};
use entraid_testkit::tls::TestCa;
use redis::ProtocolVersion;

async fn case(name: &str, protocol: ProtocolVersion, tls: Option<TestCa>) {
    let harness = RedisHarness::start(HarnessOptions {
        tls: tls.clone(),
        ..HarnessOptions::default()
    })
    .await
    .unwrap();
    let provider = MintingProvider::new(name, LIFETIME);
    let auth = start_auth(&provider);
    let redis = client(&harness, tls.as_ref(), protocol);
    let mut subscriber = auth
        .subscriber(&redis, vec!["news".to_owned()], vec!["alerts.*".to_owned()])
        .await
        .unwrap();
    let mut publisher = redis
        .get_multiplexed_async_connection_with_config(&auth.async_connection_config())
        .await
        .unwrap();

    let rotations = tokio::spawn({
        let manager = auth.manager().clone();
        async move { wait_rotations(&manager, ROTATIONS).await }
    });
    let mut published = 0u64;
    while !rotations.is_finished() {
        let channel = if published.is_multiple_of(2) {
            "news"
        } else {
            "alerts.fire"
        };
        let receivers: i64 = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(published)
            .query_async(&mut publisher)
            .await
            .unwrap();
        assert!(
            receivers >= 1,
            "{name}: no subscriber at message {published}"
        );
        published += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    rotations.await.unwrap();
    assert_eq!(provider.calls(), ROTATIONS as u64 + 1, "{name}");

    let (mut seen, mut first_order, mut duplicates) = (HashSet::new(), Vec::new(), 0u64);
    while (seen.len() as u64) < published {
        let message = tokio::time::timeout(Duration::from_secs(5), subscriber.next_message())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{name}: missing messages: got {} of {published}",
                    seen.len()
                )
            })
            .unwrap();
        let n: u64 = message.get_payload().unwrap();
        let expected_channel = if n.is_multiple_of(2) {
            "news"
        } else {
            "alerts.fire"
        };
        assert_eq!(message.get_channel_name(), expected_channel, "{name}");
        if seen.insert(n) {
            first_order.push(n);
        } else {
            duplicates += 1;
        }
    }
    assert_eq!(
        first_order,
        (0..published).collect::<Vec<_>>(),
        "{name}: in order"
    );
    assert!(published > 100, "{name}: {published}");
    // Duplicates only in the short switch overlaps.
    assert!(
        duplicates <= 10 * ROTATIONS as u64,
        "{name}: {duplicates} duplicates"
    );
    // One switch per rotation (none for the first token, which the first connection already has); the last
    // may still be finishing.
    wait_until(name, || subscriber.stats().switches >= ROTATIONS as u64).await;
    let stats = subscriber.stats();
    assert_eq!(stats.switches, ROTATIONS as u64, "{name}: {stats:?}");
    assert_eq!(stats.connections_lost, 0, "{name}: {stats:?}");
    assert_eq!(stats.switch_failures, 0, "{name}: {stats:?}");
    let gateway = harness.stats();
    assert_eq!(gateway.closed_by_expiry, 0, "{name}: {gateway:?}");
    assert_eq!(gateway.auth_failed, 0, "{name}: {gateway:?}");
    // Subscriber and publisher: two connections open (each old subscriber connection is closed).
    wait_until(name, || harness.stats().open_now == 2).await;
    drop(publisher);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_moves_to_each_new_token_without_losing_a_message() {
    tokio::join!(
        case("sub2", ProtocolVersion::RESP2, None),
        case("sub3", ProtocolVersion::RESP3, None),
        case(
            "sub2-tls",
            ProtocolVersion::RESP2,
            Some(TestCa::new().unwrap())
        ),
    );
}

/// A subscriber connection that ends on its own (here: killed by an admin under the Data Owner policy) is
/// replaced at once, re-subscribed, and counted; messages published after the re-subscribe arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_is_replaced_and_counted() {
    let harness = RedisHarness::standalone_with(AccessPolicy::DataOwner)
        .await
        .unwrap();
    let provider = MintingProvider::new("lost", Duration::from_secs(60));
    let auth = start_auth(&provider);
    let redis = client(&harness, None, ProtocolVersion::RESP2);
    let mut subscriber = auth
        .subscriber(&redis, vec!["news".to_owned()], Vec::new())
        .await
        .unwrap();
    let mut admin = redis
        .get_multiplexed_async_connection_with_config(&auth.async_connection_config())
        .await
        .unwrap();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(killed, 1);
    wait_until("lost", || subscriber.stats().connections_lost == 1).await;
    // Re-subscribed: PUBLISH reaches it again.
    wait_until("resubscribed", || harness.stats().open_now == 2).await;
    let mut receivers = 0i64;
    for _ in 0..100 {
        receivers = redis::cmd("PUBLISH")
            .arg("news")
            .arg(7)
            .query_async(&mut admin)
            .await
            .unwrap();
        if receivers == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(receivers, 1, "re-subscribed");
    let message = tokio::time::timeout(Duration::from_secs(5), subscriber.next_message())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(message.get_payload::<u64>().unwrap(), 7);
    let stats = subscriber.stats();
    assert_eq!(
        (stats.connections_lost, stats.switches),
        (1, 0),
        "{stats:?}"
    );
    // No new token was needed.
    assert_eq!(provider.calls(), 1);
}
