//! The gateway over TLS with a certificate from the test CA: a client trusting that CA authenticates and talks to
//! Redis; a client trusting another CA, or speaking plain TCP, gets nothing; expiry applies over TLS too.

#![allow(clippy::unwrap_used, reason = "tests: a failed step is a failed test")]

use std::time::Duration;

use entraid_testkit::redis::{RedisHarness, RespClient, RespValue, TLS_SERVER_NAME, token};
use entraid_testkit::tls::TestCa;

#[tokio::test]
async fn tls_clients_trusting_the_test_ca_are_served() {
    let ca = TestCa::new().unwrap();
    let harness = RedisHarness::standalone_tls(&ca).await.unwrap();
    assert!(harness.is_tls());
    assert!(harness.url().starts_with("rediss://127.0.0.1:"));
    let mut client = harness.connect().await.unwrap();
    let reply = client.command(&["PING"]).await.unwrap();
    assert_eq!(reply.as_error(), Some("NOAUTH Authentication required."));
    let reply = client
        .command(&[
            "HELLO",
            "3",
            "AUTH",
            "tls-user",
            &token("tls-user", Duration::from_secs(3600)),
        ])
        .await
        .unwrap();
    assert_eq!(reply.get("proto"), Some(&RespValue::Integer(3)));
    assert_eq!(
        client.command(&["SET", "k", "over tls"]).await.unwrap(),
        RespValue::Simple("OK".into())
    );
    assert_eq!(
        client.command(&["GET", "k"]).await.unwrap(),
        RespValue::Bulk("over tls".into())
    );
    // "localhost" is in the certificate too.
    let mut by_name = RespClient::connect_tls(
        harness.addr(),
        harness.tls_client_config().unwrap(),
        "localhost",
    )
    .await
    .unwrap();
    assert!(
        by_name
            .command(&["PING"])
            .await
            .unwrap()
            .as_error()
            .is_some()
    );
    assert_eq!(harness.stats().auth_ok, 1);
}

#[tokio::test]
async fn untrusted_or_plain_clients_are_refused() {
    let ca = TestCa::new().unwrap();
    let harness = RedisHarness::standalone_tls(&ca).await.unwrap();
    let other = TestCa::new().unwrap();
    let err = RespClient::connect_tls(
        harness.addr(),
        other.rustls_client_config(),
        TLS_SERVER_NAME,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("TLS"), "{err}");
    // Plain RESP to a TLS port: the handshake fails and the connection is closed without a reply.
    let mut plain = RespClient::connect(harness.addr()).await.unwrap();
    plain.send(&["PING"]).await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(5), plain.read_reply())
        .await
        .unwrap();
    assert!(outcome.is_err(), "{outcome:?}");
    let stats = harness
        .wait_for_stats(Duration::from_secs(5), |s| s.closed.len() == 2)
        .await
        .unwrap();
    assert_eq!(stats.auth_ok, 0);
}

#[tokio::test]
async fn expiry_closes_tls_connections() {
    let ca = TestCa::new().unwrap();
    let harness = RedisHarness::standalone_tls(&ca).await.unwrap();
    let mut client = harness.connect().await.unwrap();
    let reply = client
        .command(&["AUTH", "short", &token("short", Duration::from_secs(1))])
        .await
        .unwrap();
    assert_eq!(reply, RespValue::Simple("OK".into()));
    tokio::time::timeout(Duration::from_secs(5), client.read_until_closed())
        .await
        .unwrap()
        .unwrap();
    let stats = harness
        .wait_for_stats(Duration::from_secs(5), |s| s.closed_by_expiry == 1)
        .await
        .unwrap();
    assert_eq!(
        stats.expired().next().unwrap().user.as_deref(),
        Some("short")
    );
}
