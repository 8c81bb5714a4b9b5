//! Azure's data access policies applied by the harness: each token's principal becomes an ACL user on every
//! redis-server, and redis-server itself answers `NOPERM` for what the policy refuses (Data Contributor refuses
//! `CLIENT UNBLOCK`, `INFO` and every other `@dangerous` command; Data Reader refuses writes and pub/sub).

#![allow(clippy::unwrap_used, reason = "tests: a failed step is a failed test")]

use std::net::SocketAddr;
use std::time::Duration;

use entraid_testkit::redis::{AccessPolicy, RedisHarness, RespClient, RespValue, token};

const HOUR: Duration = Duration::from_secs(3600);

fn ok() -> RespValue {
    RespValue::Simple("OK".into())
}

async fn authed_at(harness: &RedisHarness, addr: SocketAddr, oid: &str) -> RespClient {
    let mut client = harness.connect_to(addr).await.unwrap();
    let reply = client
        .command(&["AUTH", oid, &token(oid, HOUR)])
        .await
        .unwrap();
    assert_eq!(reply, ok());
    client
}

async fn authed(harness: &RedisHarness, oid: &str) -> RespClient {
    authed_at(harness, harness.addr(), oid).await
}

/// Whether the server refused `args` with its own `NOPERM` error.
async fn refused(client: &mut RespClient, args: &[&str]) -> bool {
    match client.command(args).await.unwrap() {
        RespValue::Error(e) => {
            assert!(e.starts_with("NOPERM"), "{args:?}: unexpected error {e}");
            true
        }
        _ => false,
    }
}

#[tokio::test]
async fn data_contributor_refuses_dangerous_commands_and_allows_data() {
    let harness = RedisHarness::standalone().await.unwrap(); // the default policy
    let mut client = authed(&harness, "contributor").await;
    assert_eq!(
        client.command(&["SET", "k", "v"]).await.unwrap(),
        ok(),
        "writes are allowed"
    );
    assert!(!refused(&mut client, &["GET", "k"]).await);
    assert!(!refused(&mut client, &["CLIENT", "ID"]).await);
    assert!(!refused(&mut client, &["CLIENT", "SETNAME", "app"]).await);
    assert!(!refused(&mut client, &["PING"]).await);
    assert!(!refused(&mut client, &["BLPOP", "empty", "0.01"]).await);
    assert!(!refused(&mut client, &["PUBLISH", "ch", "x"]).await);
    for dangerous in [
        &["CLIENT", "UNBLOCK", "0"][..],
        &["CLIENT", "LIST"],
        &["CLIENT", "KILL", "ID", "999999"],
        &["INFO"],
        &["INFO", "server"],
        &["KEYS", "*"],
        &["CONFIG", "GET", "maxmemory"],
        &["MONITOR"],
    ] {
        assert!(
            refused(&mut client, dangerous).await,
            "{dangerous:?} must be refused"
        );
    }
    // The principal is an ACL user of its own, named after its oid.
    assert_eq!(
        client.command(&["ACL", "WHOAMI"]).await.unwrap(),
        RespValue::Bulk(bytes::Bytes::from_static(b"contributor"))
    );
    let connection = harness
        .connections()
        .into_iter()
        .find(|c| c.user.as_deref() == Some("contributor"))
        .unwrap();
    assert!(connection.deadline.is_some());
}

#[tokio::test]
async fn data_contributor_subscribes_in_both_protocols() {
    let harness = RedisHarness::standalone().await.unwrap();
    let mut subscriber = authed(&harness, "sub").await;
    let reply = subscriber.command(&["SUBSCRIBE", "news"]).await.unwrap();
    assert_eq!(reply.as_items().unwrap().len(), 3, "{reply:?}");
    let mut resp3 = harness.connect().await.unwrap();
    let hello = resp3
        .command(&["HELLO", "3", "AUTH", "sub3", &token("sub3", HOUR)])
        .await
        .unwrap();
    assert!(matches!(hello, RespValue::Map(_)), "{hello:?}");
    let reply = resp3.command(&["SSUBSCRIBE", "news"]).await;
    assert!(reply.is_ok(), "{reply:?}");
}

#[tokio::test]
async fn data_owner_allows_everything() {
    let harness = RedisHarness::standalone_with(AccessPolicy::DataOwner)
        .await
        .unwrap();
    let mut client = authed(&harness, "owner").await;
    assert_eq!(
        client.command(&["CLIENT", "UNBLOCK", "0"]).await.unwrap(),
        RespValue::Integer(0)
    );
    assert!(!refused(&mut client, &["INFO", "server"]).await);
    assert!(!refused(&mut client, &["CLIENT", "LIST"]).await);
}

#[tokio::test]
async fn data_reader_reads_but_cannot_write_or_subscribe() {
    let harness = RedisHarness::standalone_with(AccessPolicy::DataReader)
        .await
        .unwrap();
    let mut client = authed(&harness, "reader").await;
    assert!(!refused(&mut client, &["GET", "k"]).await);
    assert!(!refused(&mut client, &["PING"]).await);
    assert!(!refused(&mut client, &["CLIENT", "ID"]).await);
    // CLIENT UNBLOCK is in @connection as well as @dangerous: Data Reader allows it.
    assert_eq!(
        client.command(&["CLIENT", "UNBLOCK", "0"]).await.unwrap(),
        RespValue::Integer(0)
    );
    assert!(!refused(&mut client, &["XREAD", "BLOCK", "10", "STREAMS", "s", "$"]).await);
    for refused_here in [
        &["SET", "k", "v"][..],
        &["BLPOP", "q", "0.01"],
        &["SUBSCRIBE", "ch"],
        &["PUBLISH", "ch", "x"],
        &["INFO"],
    ] {
        assert!(
            refused(&mut client, refused_here).await,
            "{refused_here:?} must be refused"
        );
    }
}

#[tokio::test]
async fn a_custom_policy_is_applied_as_given() {
    let harness = RedisHarness::standalone_with(AccessPolicy::data_contributor_with_unblock())
        .await
        .unwrap();
    let mut client = authed(&harness, "custom").await;
    assert_eq!(
        client.command(&["CLIENT", "UNBLOCK", "0"]).await.unwrap(),
        RespValue::Integer(0),
        "+client|unblock"
    );
    assert!(refused(&mut client, &["INFO"]).await, "still no @dangerous");

    let narrow = RedisHarness::standalone_with(AccessPolicy::Custom("+get ~cache:*".into()))
        .await
        .unwrap();
    let mut client = authed(&narrow, "narrow").await;
    assert!(!refused(&mut client, &["GET", "cache:1"]).await);
    assert!(refused(&mut client, &["GET", "other"]).await, "key pattern");
    assert!(refused(&mut client, &["SET", "cache:1", "v"]).await);
}

#[tokio::test]
async fn every_principal_gets_its_own_user_and_tokens_stay_verified() {
    let harness = RedisHarness::standalone().await.unwrap();
    let mut a = authed(&harness, "principal-a").await;
    let mut b = authed(&harness, "principal-b").await;
    assert_eq!(a.command(&["SET", "shared", "1"]).await.unwrap(), ok());
    assert_eq!(
        b.command(&["GET", "shared"]).await.unwrap(),
        RespValue::Bulk(bytes::Bytes::from_static(b"1"))
    );
    // A re-AUTH as another principal switches the server-side user too.
    assert_eq!(
        a.command(&["AUTH", "principal-b", &token("principal-b", HOUR)])
            .await
            .unwrap(),
        ok()
    );
    assert_eq!(
        a.command(&["ACL", "WHOAMI"]).await.unwrap(),
        RespValue::Bulk(bytes::Bytes::from_static(b"principal-b"))
    );
    // A wrong token is still refused by the gateway, whatever the policy.
    let mut c = harness.connect().await.unwrap();
    let reply = c
        .command(&["AUTH", "principal-a", &token("principal-b", HOUR)])
        .await
        .unwrap();
    assert!(reply.as_error().unwrap().starts_with("WRONGPASS"));
    // The principal's ACL password is not a way in without a token: the gateway never forwards what the client
    // sent as a password.
    let stats = harness.stats();
    assert_eq!(stats.auth_failed, 1);
}

#[tokio::test]
async fn a_cluster_applies_the_policy_on_every_node() {
    let harness = RedisHarness::cluster().await.unwrap(); // Data Contributor
    for addr in harness.addrs() {
        let mut client = authed_at(&harness, addr, "cluster-app").await;
        for allowed in [
            &["CLUSTER", "SLOTS"][..],
            &["CLUSTER", "NODES"],
            &["CLUSTER", "INFO"],
        ] {
            assert!(!refused(&mut client, allowed).await, "{allowed:?}");
        }
        assert!(refused(&mut client, &["CLIENT", "UNBLOCK", "0"]).await);
        assert!(refused(&mut client, &["CLUSTER", "FORGET", "x"]).await);
    }
}
