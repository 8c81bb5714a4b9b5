//! End-to-end: a RESP3 subscriber on a multiplexed connection (redis-rs's push sender) keeps receiving every
//! message through five rotations: RESP3 allows `AUTH` while subscribed, so redis-rs's re-auth task covers it.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::time::Duration;

use common::{
    LIFETIME, MintingProvider, ROTATIONS, assert_gateway_clean, client, start_auth, wait_rotations,
    wait_until,
};
use entraid_testkit::redis::RedisHarness;
use redis::{ProtocolVersion, PushKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp3_subscriber_receives_every_message_through_rotations() {
    let harness = RedisHarness::standalone().await.unwrap();
    let provider = MintingProvider::new("pubsub", LIFETIME);
    let auth = start_auth(&provider);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let redis = client(&harness, None, ProtocolVersion::RESP3);
    let mut subscriber = redis
        .get_multiplexed_async_connection_with_config(
            &auth.async_connection_config().set_push_sender(tx),
        )
        .await
        .unwrap();
    subscriber.subscribe("news").await.unwrap();
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
        let receivers: i64 = redis::cmd("PUBLISH")
            .arg("news")
            .arg(published)
            .query_async(&mut publisher)
            .await
            .unwrap();
        assert_eq!(receivers, 1, "the subscriber is still subscribed");
        published += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    rotations.await.unwrap();

    let mut received = Vec::new();
    while (received.len() as u64) < published {
        let push = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a message is missing")
            .unwrap();
        if push.kind == PushKind::Message {
            let payload: u64 = redis::from_redis_value(push.data[1].clone()).unwrap();
            received.push(payload);
        }
    }
    assert_eq!(
        received,
        (0..published).collect::<Vec<_>>(),
        "every message, in order"
    );
    assert!(published > 100, "{published}");
    assert_gateway_clean("pubsub", &harness);
    // Both connections (subscriber and publisher) re-authenticated every rotation (the last AUTH may still be
    // on its way).
    wait_until("pubsub", || {
        auth.stats().reauths_confirmed >= 2 * ROTATIONS as u64
    })
    .await;
    assert_eq!(auth.stats().reauth_tasks_stopped, 0);
    let connections = harness.connections();
    assert_eq!(connections.len(), 2, "{connections:?}");
    drop((subscriber, publisher));
}
