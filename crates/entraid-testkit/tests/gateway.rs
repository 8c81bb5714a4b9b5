//! The enforcing gateway in front of a real redis-server, driven by a raw RESP client: AUTH and HELLO checks,
//! refusals, NOAUTH, pass-through of every command shape (pipelines, partial frames, inline commands, pub/sub in
//! both protocols, blocking commands, MULTI), expiry and re-authentication, and the counters.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed step is a failed test"
)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use entraid_testkit::keys::{JwsAlgorithm, TestKey};
use entraid_testkit::redis::{
    AccessPolicy, CloseReason, RedisHarness, RespClient, RespValue, token,
};
use serde_json::{Value, json};

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
const NOAUTH: &str = "NOAUTH Authentication required.";
const HOUR: Duration = Duration::from_secs(3600);

fn ok() -> RespValue {
    RespValue::Simple("OK".into())
}

fn bulk(s: &str) -> RespValue {
    RespValue::Bulk(bytes::Bytes::copy_from_slice(s.as_bytes()))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(oid: &str) -> Value {
    let now = now();
    json!({"aud": "https://redis.azure.com", "oid": oid, "iat": now, "nbf": now, "exp": now + 3600})
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

async fn authed(harness: &RedisHarness, oid: &str) -> RespClient {
    let mut client = harness.connect().await.unwrap();
    let reply = client
        .command(&["AUTH", oid, &token(oid, HOUR)])
        .await
        .unwrap();
    assert_eq!(reply, ok());
    client
}

#[tokio::test]
async fn commands_before_auth_get_noauth() {
    let harness = RedisHarness::standalone().await.unwrap();
    let mut client = harness.connect().await.unwrap();
    for command in [
        &["PING"][..],
        &["GET", "k"],
        &["SET", "k", "v"],
        &["SUBSCRIBE", "c"],
    ] {
        let reply = client.command(command).await.unwrap();
        assert_eq!(reply.as_error(), Some(NOAUTH), "{command:?}");
    }
    // HELLO without AUTH on an unauthenticated connection: the server's own NOAUTH text.
    let reply = client.command(&["HELLO", "3"]).await.unwrap();
    assert!(
        reply
            .as_error()
            .unwrap()
            .starts_with("NOAUTH HELLO must be called"),
        "{reply:?}"
    );
    // Still usable, and AUTH works afterwards.
    let t = token("oid-1", HOUR);
    assert_eq!(client.command(&["AUTH", "oid-1", &t]).await.unwrap(), ok());
    assert_eq!(
        client.command(&["PING"]).await.unwrap(),
        RespValue::Simple("PONG".into())
    );
    let stats = harness.stats();
    assert_eq!((stats.auth_ok, stats.auth_failed), (1, 0));
}

#[tokio::test]
async fn valid_auth_sets_the_deadline_and_passes_commands_through() {
    let harness = RedisHarness::standalone().await.unwrap();
    let mut client = authed(&harness, "app-oid").await;
    assert_eq!(client.command(&["SET", "k", "v"]).await.unwrap(), ok());
    assert_eq!(client.command(&["GET", "k"]).await.unwrap(), bulk("v"));
    let conns = harness.connections();
    assert_eq!(conns.len(), 1);
    let conn = &conns[0];
    assert_eq!(conn.user.as_deref(), Some("app-oid"));
    let exp = conn.expires_at.unwrap();
    assert!(
        (exp - i64::try_from(now()).unwrap() - 3600).abs() <= 2,
        "{exp}"
    );
    let left = conn
        .deadline
        .unwrap()
        .saturating_duration_since(tokio::time::Instant::now());
    assert!(left > Duration::from_secs(3590) && left <= HOUR, "{left:?}");
    assert_eq!(conn.protocol, 2);
    // The data really is in the backend.
    let mut direct = harness.servers()[0].connect().await.unwrap();
    assert_eq!(direct.command(&["GET", "k"]).await.unwrap(), bulk("v"));
}

#[tokio::test]
async fn bad_tokens_are_refused_with_wrongpass() {
    let harness = RedisHarness::standalone().await.unwrap();
    let now = now();
    let entra = TestKey::entra();
    let impostor =
        TestKey::from_pkcs8_pem(entra.kid(), TestKey::client_other().private_key_pem()).unwrap();
    let cases: Vec<(&str, String, String)> = vec![
        (
            "wrong signature",
            "o".into(),
            impostor.sign_jwt(&claims("o")),
        ),
        (
            "unknown key",
            "o".into(),
            TestKey::github().sign_jwt(&claims("o")),
        ),
        (
            "PS256 instead of RS256",
            "o".into(),
            entra.sign_jwt_with(
                JwsAlgorithm::Ps256,
                json!({"kid": entra.kid()}),
                &claims("o"),
            ),
        ),
        (
            "wrong audience",
            "o".into(),
            entra.sign_jwt(&with(
                claims("o"),
                "aud",
                json!("https://storage.azure.com"),
            )),
        ),
        (
            "expired",
            "o".into(),
            entra.sign_jwt(&with(claims("o"), "exp", json!(now - 60))),
        ),
        (
            "expires this second",
            "o".into(),
            entra.sign_jwt(&with(claims("o"), "exp", json!(now))),
        ),
        (
            "no exp",
            "o".into(),
            entra.sign_jwt(&json!({"aud": "https://redis.azure.com", "oid": "o"})),
        ),
        (
            "not yet valid",
            "o".into(),
            entra.sign_jwt(&with(claims("o"), "nbf", json!(now + 600))),
        ),
        (
            "user is not the oid",
            "someone-else".into(),
            entra.sign_jwt(&claims("o")),
        ),
        (
            "no oid",
            "o".into(),
            entra.sign_jwt(&json!({"aud": "https://redis.azure.com", "exp": now + 600})),
        ),
        ("garbage", "o".into(), "not-a-jwt".into()),
        ("empty", "o".into(), String::new()),
    ];
    let mut client = harness.connect().await.unwrap();
    for (case, user, jwt) in &cases {
        let reply = client.command(&["AUTH", user, jwt]).await.unwrap();
        assert_eq!(reply.as_error(), Some(WRONGPASS), "{case}");
        let reply = client
            .command(&["HELLO", "3", "AUTH", user, jwt])
            .await
            .unwrap();
        assert_eq!(reply.as_error(), Some(WRONGPASS), "HELLO: {case}");
        // Refused: still not authenticated.
        let reply = client.command(&["GET", "k"]).await.unwrap();
        assert_eq!(reply.as_error(), Some(NOAUTH), "{case}");
    }
    // One-argument AUTH means user `default`, which is never a token's oid.
    let reply = client.command(&["AUTH", &token("o", HOUR)]).await.unwrap();
    assert_eq!(reply.as_error(), Some(WRONGPASS));
    let stats = harness.stats();
    assert_eq!(stats.auth_ok, 0);
    assert_eq!(stats.auth_failed, 2 * cases.len() as u64 + 1);
    assert!(harness.connections()[0].user.is_none());
}

#[tokio::test]
async fn a_refused_reauth_keeps_the_previous_authentication() {
    let harness = RedisHarness::standalone().await.unwrap();
    let mut client = authed(&harness, "o").await;
    let before = harness.connections()[0].deadline;
    let reply = client.command(&["AUTH", "o", "garbage"]).await.unwrap();
    assert_eq!(reply.as_error(), Some(WRONGPASS));
    assert_eq!(
        client.command(&["PING"]).await.unwrap(),
        RespValue::Simple("PONG".into())
    );
    assert_eq!(harness.connections()[0].deadline, before);
    let stats = harness.stats();
    assert_eq!((stats.auth_ok, stats.auth_failed, stats.reauths), (1, 1, 0));
}

#[tokio::test]
async fn wrong_arity_auth_gets_the_servers_error() {
    let harness = RedisHarness::standalone().await.unwrap();
    let mut client = harness.connect().await.unwrap();
    let reply = client.command(&["AUTH"]).await.unwrap();
    assert!(
        reply
            .as_error()
            .unwrap()
            .contains("wrong number of arguments"),
        "{reply:?}"
    );
    let reply = client.command(&["AUTH", "a", "b", "c"]).await.unwrap();
    assert!(reply.as_error().unwrap().starts_with("ERR"), "{reply:?}");
}

#[tokio::test]
async fn hello_3_auth_switches_to_resp3_and_sets_the_name() {
    let harness = RedisHarness::standalone().await.unwrap();
    let mut client = harness.connect().await.unwrap();
    let t = token("o3", HOUR);
    let reply = client
        .command(&["hello", "3", "auth", "o3", &t, "setname", "conn-a"])
        .await
        .unwrap();
    assert!(matches!(reply, RespValue::Map(_)), "{reply:?}");
    assert_eq!(reply.get("proto"), Some(&RespValue::Integer(3)));
    assert_eq!(
        reply.get("server").unwrap().as_text().as_deref(),
        Some("redis")
    );
    assert_eq!(
        client.command(&["CLIENT", "GETNAME"]).await.unwrap(),
        bulk("conn-a")
    );
    // A RESP3-only reply type: HGETALL answers a map.
    client.command(&["HSET", "h", "f", "v"]).await.unwrap();
    let reply = client.command(&["HGETALL", "h"]).await.unwrap();
    assert_eq!(reply, RespValue::Map(vec![(bulk("f"), bulk("v"))]));
    let conn = &harness.connections()[0];
    assert_eq!((conn.user.as_deref(), conn.protocol), (Some("o3"), 3));
    // HELLO 2 with AUTH again: a re-authentication that goes back to RESP2.
    let t = token("o3", HOUR);
    let reply = client
        .command(&["HELLO", "2", "AUTH", "o3", &t])
        .await
        .unwrap();
    assert!(matches!(reply, RespValue::Array(_)), "{reply:?}");
    assert_eq!(reply.get("proto"), Some(&RespValue::Integer(2)));
    let stats = harness.stats();
    assert_eq!((stats.auth_ok, stats.reauths), (2, 1));
    assert_eq!(harness.connections()[0].reauths, 1);
}

#[tokio::test]
async fn hello_without_auth_switches_protocol_after_auth() {
    let harness = RedisHarness::standalone().await.unwrap();
    let mut client = authed(&harness, "o").await;
    let reply = client.command(&["HELLO", "3"]).await.unwrap();
    assert_eq!(reply.get("proto"), Some(&RespValue::Integer(3)));
    assert_eq!(harness.connections()[0].protocol, 3);
    // Invalid versions are the server's to refuse; credentials in them never reach it.
    let reply = client
        .command(&["HELLO", "4", "AUTH", "o", &token("o", HOUR)])
        .await
        .unwrap();
    assert!(
        reply.as_error().unwrap().starts_with("NOPROTO"),
        "{reply:?}"
    );
    let reply = client.command(&["HELLO", "3", "BOGUS"]).await.unwrap();
    assert!(
        reply.as_error().unwrap().contains("Syntax error"),
        "{reply:?}"
    );
    assert_eq!(harness.connections()[0].protocol, 3);
}

#[tokio::test]
async fn pipelines_keep_their_order_around_auth() {
    let harness = RedisHarness::standalone().await.unwrap();
    let mut client = harness.connect().await.unwrap();
    let t = token("p", HOUR);
    let replies = client
        .pipeline(&[
            vec!["GET", "k"],
            vec!["AUTH", "p", "bad"],
            vec!["AUTH", "p", &t],
            vec!["SET", "k", "1"],
            vec!["INCR", "k"],
            vec!["GET", "k"],
            vec!["RESET"],
            vec!["GET", "k"],
        ])
        .await
        .unwrap();
    assert_eq!(replies[0].as_error(), Some(NOAUTH));
    assert_eq!(replies[1].as_error(), Some(WRONGPASS));
    assert_eq!(replies[2], ok());
    assert_eq!(replies[3], ok());
    assert_eq!(replies[4], RespValue::Integer(2));
    assert_eq!(replies[5], bulk("2"));
    assert_eq!(replies[6], RespValue::Simple("RESET".into()));
    assert_eq!(replies[7].as_error(), Some(NOAUTH));
    // RESET de-authenticated: no user, no deadline.
    let conn = &harness.connections()[0];
    assert_eq!((conn.user.as_ref(), conn.deadline), (None, None));
}

#[tokio::test]
async fn a_large_pipeline_and_large_values_pass_through() {
    let harness = RedisHarness::standalone().await.unwrap();
    let mut client = authed(&harness, "o").await;
    let big = "x".repeat(3 * 1024 * 1024);
    let mut commands: Vec<Vec<String>> = (0..2000)
        .map(|i| vec!["SET".into(), format!("k{i}"), i.to_string()])
        .collect();
    commands.push(vec!["SET".into(), "big".into(), big.clone()]);
    commands.push(vec!["GET".into(), "big".into()]);
    commands.push(vec!["DBSIZE".into()]);
    let replies = client.pipeline(&commands).await.unwrap();
    assert!(replies[..2001].iter().all(|r| *r == ok()));
    assert_eq!(replies[2001], bulk(&big));
    assert_eq!(replies[2002], RespValue::Integer(2001));
}

#[tokio::test]
async fn requests_split_at_every_byte_are_reassembled() {
    let harness = RedisHarness::standalone().await.unwrap();
    let mut client = harness.connect().await.unwrap();
    let t = token("b", HOUR);
    let mut wire = bytes::BytesMut::new();
    entraid_testkit::redis::encode_command(&["AUTH", "b", &t], &mut wire);
    entraid_testkit::redis::encode_command(&["SET", "k", "split\r\nvalue"], &mut wire);
    entraid_testkit::redis::encode_command(&["GET", "k"], &mut wire);
    wire.extend_from_slice(b"PING inline\r\n");
    for byte in wire.iter() {
        client.write_raw(&[*byte]).await.unwrap();
    }
    assert_eq!(client.read_reply().await.unwrap(), ok());
    assert_eq!(client.read_reply().await.unwrap(), ok());
    assert_eq!(client.read_reply().await.unwrap(), bulk("split\r\nvalue"));
    assert_eq!(client.read_reply().await.unwrap(), bulk("inline"));
    assert_eq!(harness.stats().auth_ok, 1);
}

#[tokio::test]
async fn inline_commands_work_including_inline_auth() {
    let harness = RedisHarness::standalone().await.unwrap();
    let mut client = harness.connect().await.unwrap();
    client.write_raw(b"PING\r\n").await.unwrap();
    assert_eq!(client.read_reply().await.unwrap().as_error(), Some(NOAUTH));
    let t = token("inline-user", HOUR);
    client
        .write_raw(
            format!("AUTH inline-user {t}\r\nSET \"a key\" 'v'\nGET \"a key\"\r\n").as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(client.read_reply().await.unwrap(), ok());
    assert_eq!(client.read_reply().await.unwrap(), ok());
    assert_eq!(client.read_reply().await.unwrap(), bulk("v"));
}

#[tokio::test]
async fn a_protocol_error_is_answered_by_the_server_which_closes() {
    let harness = RedisHarness::standalone().await.unwrap();
    let mut client = authed(&harness, "o").await;
    client.write_raw(b"*1\r\n:5\r\n").await.unwrap();
    let reply = client.read_reply().await.unwrap();
    assert!(
        reply.as_error().unwrap().starts_with("ERR Protocol error"),
        "{reply:?}"
    );
    assert_eq!(client.read_until_closed().await.unwrap(), 0);
    let stats = harness
        .wait_for_stats(Duration::from_secs(5), |s| s.open_now == 0)
        .await
        .unwrap();
    assert_eq!(stats.closed[0].reason, CloseReason::Backend);
}

#[tokio::test]
async fn quit_closes_the_connection() {
    let harness = RedisHarness::standalone().await.unwrap();
    let mut client = authed(&harness, "o").await;
    assert_eq!(client.command(&["QUIT"]).await.unwrap(), ok());
    assert_eq!(client.read_until_closed().await.unwrap(), 0);
    harness
        .wait_for_stats(Duration::from_secs(5), |s| {
            s.open_now == 0 && s.closed.len() == 1
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn resp2_subscriber_receives_messages_and_cannot_reauth() {
    let harness = RedisHarness::standalone().await.unwrap();
    let mut subscriber = authed(&harness, "sub").await;
    let reply = subscriber
        .command(&["SUBSCRIBE", "news", "other"])
        .await
        .unwrap();
    assert_eq!(
        reply,
        RespValue::Array(vec![bulk("subscribe"), bulk("news"), RespValue::Integer(1)])
    );
    subscriber.read_reply().await.unwrap();
    let mut publisher = authed(&harness, "pub").await;
    assert_eq!(
        publisher
            .command(&["PUBLISH", "news", "hello"])
            .await
            .unwrap(),
        RespValue::Integer(1)
    );
    assert_eq!(
        subscriber.read_reply().await.unwrap(),
        RespValue::Array(vec![bulk("message"), bulk("news"), bulk("hello")])
    );
    // Like redis-server (and Azure), AUTH is refused in RESP2 subscriber mode; the deadline does not move.
    let deadline = harness.connections()[0].deadline;
    let reply = subscriber
        .command(&["AUTH", "sub", &token("sub", 2 * HOUR)])
        .await
        .unwrap();
    assert!(
        reply
            .as_error()
            .unwrap()
            .starts_with("ERR Can't execute 'auth'"),
        "{reply:?}"
    );
    assert_eq!(harness.connections()[0].deadline, deadline);
    // After unsubscribing from everything, AUTH works again.
    subscriber.send(&["UNSUBSCRIBE"]).await.unwrap();
    subscriber.read_reply().await.unwrap();
    subscriber.read_reply().await.unwrap();
    let reply = subscriber
        .command(&["AUTH", "sub", &token("sub", 2 * HOUR)])
        .await
        .unwrap();
    assert_eq!(reply, ok());
    assert_ne!(harness.connections()[0].deadline, deadline);
    let stats = harness.stats();
    assert_eq!((stats.auth_ok, stats.auth_failed, stats.reauths), (3, 1, 1));
}

#[tokio::test]
async fn resp3_subscriber_receives_pushes_and_can_reauth() {
    let harness = RedisHarness::standalone().await.unwrap();
    let mut subscriber = harness.connect().await.unwrap();
    let reply = subscriber
        .command(&["HELLO", "3", "AUTH", "sub", &token("sub", HOUR)])
        .await
        .unwrap();
    assert_eq!(reply.get("proto"), Some(&RespValue::Integer(3)));
    let reply = subscriber.command(&["PSUBSCRIBE", "n*"]).await.unwrap();
    assert!(matches!(reply, RespValue::Push(_)), "{reply:?}");
    let before = harness.connections()[0].deadline.unwrap();
    let reply = subscriber
        .command(&["AUTH", "sub", &token("sub", 2 * HOUR)])
        .await
        .unwrap();
    assert_eq!(reply, ok());
    assert!(harness.connections()[0].deadline.unwrap() > before);
    let mut publisher = authed(&harness, "pub").await;
    publisher
        .command(&["PUBLISH", "news", "after-reauth"])
        .await
        .unwrap();
    assert_eq!(
        subscriber.read_reply().await.unwrap(),
        RespValue::Push(vec![
            bulk("pmessage"),
            bulk("n*"),
            bulk("news"),
            bulk("after-reauth")
        ])
    );
}

#[tokio::test]
async fn blocking_commands_pass_through() {
    // INFO, CLIENT LIST / UNBLOCK and MONITOR are @dangerous: Data Owner allows them.
    let harness = RedisHarness::standalone_with(AccessPolicy::DataOwner)
        .await
        .unwrap();
    let mut blocked = authed(&harness, "b").await;
    blocked.send(&["BLPOP", "queue", "10"]).await.unwrap();
    let mut pusher = authed(&harness, "p").await;
    // Wait until the server reports the client as blocked, then push.
    loop {
        let info = pusher.command(&["INFO", "clients"]).await.unwrap();
        if info.as_text().unwrap().contains("blocked_clients:1") {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(
        pusher.command(&["RPUSH", "queue", "job"]).await.unwrap(),
        RespValue::Integer(1)
    );
    assert_eq!(
        blocked.read_reply().await.unwrap(),
        RespValue::Array(vec![bulk("queue"), bulk("job")])
    );
}

#[tokio::test]
async fn multi_exec_passes_through_and_auth_can_be_queued() {
    let harness = RedisHarness::standalone().await.unwrap();
    let mut client = authed(&harness, "m").await;
    let t = token("m", 2 * HOUR);
    let replies = client
        .pipeline(&[
            vec!["MULTI"],
            vec!["SET", "c", "1"],
            vec!["AUTH", "m", &t],
            vec!["INCR", "c"],
            vec!["EXEC"],
        ])
        .await
        .unwrap();
    assert_eq!(replies[0], ok());
    assert!(
        replies[1..4]
            .iter()
            .all(|r| *r == RespValue::Simple("QUEUED".into()))
    );
    assert_eq!(
        replies[4],
        RespValue::Array(vec![ok(), ok(), RespValue::Integer(2)])
    );
    assert_eq!(harness.stats().reauths, 1);
}

#[tokio::test]
async fn a_client_that_never_reauths_is_closed_at_expiry() {
    let harness = RedisHarness::standalone().await.unwrap();
    let mut client = harness.connect().await.unwrap();
    let started = tokio::time::Instant::now();
    let reply = client
        .command(&["AUTH", "short", &token("short", Duration::from_secs(2))])
        .await
        .unwrap();
    assert_eq!(reply, ok());
    assert_eq!(
        client.command(&["PING"]).await.unwrap(),
        RespValue::Simple("PONG".into())
    );
    // The gateway closes it; the client only sees the connection end.
    tokio::time::timeout(Duration::from_secs(6), client.read_until_closed())
        .await
        .expect("closed within the token's lifetime plus slack")
        .unwrap();
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    let stats = harness
        .wait_for_stats(Duration::from_secs(5), |s| s.closed_by_expiry == 1)
        .await
        .unwrap();
    let expired: Vec<_> = stats.expired().collect();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].user.as_deref(), Some("short"));
    assert!(
        expired[0].age >= Duration::from_millis(900) && expired[0].age < Duration::from_secs(5),
        "{:?}",
        expired[0].age
    );
    assert_eq!(stats.open_now, 0);
}

#[tokio::test]
async fn a_client_that_reauths_stays_past_its_first_expiry() {
    let harness = RedisHarness::standalone().await.unwrap();
    let mut stays = harness.connect().await.unwrap();
    let reply = stays
        .command(&["AUTH", "stays", &token("stays", Duration::from_secs(2))])
        .await
        .unwrap();
    assert_eq!(reply, ok());
    let reply = stays
        .command(&["AUTH", "stays", &token("stays", HOUR)])
        .await
        .unwrap();
    assert_eq!(reply, ok());
    // A witness whose token outlives the first one: once the gateway has closed it, the first deadline is past.
    let mut witness = harness.connect().await.unwrap();
    let reply = witness
        .command(&["AUTH", "witness", &token("witness", Duration::from_secs(3))])
        .await
        .unwrap();
    assert_eq!(reply, ok());
    let stats = harness
        .wait_for_stats(Duration::from_secs(8), |s| s.closed_by_expiry == 1)
        .await
        .unwrap();
    assert_eq!(
        stats.expired().next().unwrap().user.as_deref(),
        Some("witness")
    );
    assert_eq!(
        stays.command(&["PING"]).await.unwrap(),
        RespValue::Simple("PONG".into())
    );
    let conns = harness.connections();
    assert_eq!(conns.len(), 1);
    assert_eq!(
        (conns[0].user.as_deref(), conns[0].reauths),
        (Some("stays"), 1)
    );
    assert_eq!(harness.stats().reauths, 1);
}

#[tokio::test]
async fn counters_track_connections() {
    let harness = RedisHarness::standalone().await.unwrap();
    let a = authed(&harness, "a").await;
    let b = authed(&harness, "b").await;
    let stats = harness.stats();
    assert_eq!((stats.connections_accepted, stats.open_now), (2, 2));
    let users: Vec<_> = harness
        .connections()
        .into_iter()
        .map(|c| c.user.unwrap())
        .collect();
    assert_eq!(users, ["a", "b"]);
    drop(a);
    let stats = harness
        .wait_for_stats(Duration::from_secs(5), |s| s.open_now == 1)
        .await
        .unwrap();
    assert_eq!(stats.closed[0].reason, CloseReason::Client);
    assert_eq!(stats.closed[0].user.as_deref(), Some("a"));
    drop(b);
}
