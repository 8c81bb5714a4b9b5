//! When a re-authentication takes effect, against a real redis-server: only once the server has executed the
//! `AUTH` (its reply arrived), not when the client wrote it. An `AUTH` stuck behind a blocked `BLPOP` or in a
//! `MULTI` that never runs leaves the connection to be closed at the old token's expiry; one that runs (after
//! `CLIENT UNBLOCK`, at `EXEC`, in a pipeline, among RESP3 pushes, after `CLIENT REPLY` changes) moves it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed step is a failed test"
)]

use std::time::Duration;

use entraid_testkit::redis::{
    AccessPolicy, ConnectionInfo, RedisHarness, RespClient, RespValue, token,
};
use tokio::time::Instant;

const HOUR: Duration = Duration::from_secs(3600);
/// The short-lived token's lifetime: whole seconds of wall clock, so it expires 2-3 s after it is minted.
const SHORT: Duration = Duration::from_secs(3);

fn ok() -> RespValue {
    RespValue::Simple("OK".into())
}

fn pong() -> RespValue {
    RespValue::Simple("PONG".into())
}

async fn auth(client: &mut RespClient, oid: &str, valid_for: Duration) {
    let reply = client
        .command(&["AUTH", oid, &token(oid, valid_for)])
        .await
        .unwrap();
    assert_eq!(reply, ok());
}

async fn authed(harness: &RedisHarness, oid: &str, valid_for: Duration) -> RespClient {
    let mut client = harness.connect().await.unwrap();
    auth(&mut client, oid, valid_for).await;
    client
}

/// The gateway's view of the (only) connection authenticated as `oid`.
fn connection(harness: &RedisHarness, oid: &str) -> ConnectionInfo {
    let mut found: Vec<_> = harness
        .connections()
        .into_iter()
        .filter(|c| c.user.as_deref() == Some(oid))
        .collect();
    assert_eq!(found.len(), 1, "{oid}: {found:?}");
    found.remove(0)
}

fn unix_now() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(now.as_secs()).unwrap()
}

async fn client_id(client: &mut RespClient) -> i64 {
    match client.command(&["CLIENT", "ID"]).await.unwrap() {
        RespValue::Integer(id) => id,
        other => panic!("CLIENT ID: {other:?}"),
    }
}

/// Waits until the server reports client `id` blocked in `BLPOP` with unread input behind it (the `AUTH` has
/// reached the server, which cannot run it yet).
async fn wait_blocked_with_input_behind(observer: &mut RespClient, id: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = observer
            .command(&["CLIENT", "LIST", "ID", &id.to_string()])
            .await
            .unwrap();
        let line = reply.as_text().unwrap();
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(name).map(str::to_owned))
                .unwrap_or_default()
        };
        let queued: u64 = field("qbuf=").parse().unwrap_or(0);
        if field("cmd=") == "blpop" && field("flags=").contains('b') && queued > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "client {id} never blocked with input behind: {line}"
        );
        tokio::task::yield_now().await;
    }
}

/// A client that authenticates with a short token, blocks in `BLPOP q 0`, and writes a fresh `AUTH` behind it.
async fn blocked_with_auth_behind(harness: &RedisHarness, oid: &str) -> (RespClient, i64, i64) {
    let mut blocked = authed(harness, oid, SHORT).await;
    let old_exp = connection(harness, oid).expires_at.unwrap();
    let id = client_id(&mut blocked).await;
    blocked.send(&["BLPOP", "q", "0"]).await.unwrap();
    blocked
        .send(&["AUTH", oid, &token(oid, HOUR)])
        .await
        .unwrap();
    (blocked, id, old_exp)
}

#[tokio::test]
async fn an_auth_behind_a_blocked_blpop_does_not_save_the_connection() {
    // INFO, CLIENT LIST / UNBLOCK and MONITOR are @dangerous: Data Owner allows them.
    let harness = RedisHarness::standalone_with(AccessPolicy::DataOwner)
        .await
        .unwrap();
    let started = Instant::now();
    let (mut blocked, id, old_exp) = blocked_with_auth_behind(&harness, "blocked").await;
    let mut observer = authed(&harness, "observer", HOUR).await;
    wait_blocked_with_input_behind(&mut observer, id).await;
    // The gateway has read and verified the AUTH, but the server has not run it: nothing moved.
    let conn = connection(&harness, "blocked");
    assert_eq!((conn.expires_at, conn.reauths), (Some(old_exp), 0));
    assert_eq!(harness.stats().auth_ok, 2);
    // Closed at the old token's expiry, with neither the BLPOP's nor the AUTH's reply.
    let replies = tokio::time::timeout(Duration::from_secs(8), blocked.read_until_closed())
        .await
        .expect("closed at the old token's expiry")
        .unwrap();
    assert_eq!(replies, 0);
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(1900), "{elapsed:?}");
    let stats = harness
        .wait_for_stats(Duration::from_secs(5), |s| s.closed_by_expiry == 1)
        .await
        .unwrap();
    let expired = stats.expired().next().unwrap();
    assert_eq!(
        (expired.user.as_deref(), expired.reauths),
        (Some("blocked"), 0)
    );
    assert_eq!((stats.auth_ok, stats.reauths), (2, 0));
}

#[tokio::test]
async fn client_unblock_lets_the_auth_run_and_the_connection_stays() {
    // INFO, CLIENT LIST / UNBLOCK and MONITOR are @dangerous: Data Owner allows them.
    let harness = RedisHarness::standalone_with(AccessPolicy::DataOwner)
        .await
        .unwrap();
    let (mut blocked, id, old_exp) = blocked_with_auth_behind(&harness, "blocked").await;
    let mut observer = authed(&harness, "observer", HOUR).await;
    wait_blocked_with_input_behind(&mut observer, id).await;
    assert_eq!(connection(&harness, "blocked").expires_at, Some(old_exp));
    let reply = observer
        .command(&["CLIENT", "UNBLOCK", &id.to_string(), "TIMEOUT"])
        .await
        .unwrap();
    assert_eq!(reply, RespValue::Integer(1));
    // The BLPOP times out (nil), then the AUTH runs.
    assert_eq!(blocked.read_reply().await.unwrap(), RespValue::Null);
    assert_eq!(blocked.read_reply().await.unwrap(), ok());
    let conn = connection(&harness, "blocked");
    assert_eq!(conn.reauths, 1);
    let new_exp = conn.expires_at.unwrap();
    assert!(
        (new_exp - unix_now() - 3600).abs() <= 2,
        "{new_exp} {old_exp}"
    );
    // A witness whose token outlives the old one: once it is closed, the old deadline is past.
    let _witness = authed(&harness, "witness", SHORT + Duration::from_secs(1)).await;
    let stats = harness
        .wait_for_stats(Duration::from_secs(8), |s| s.closed_by_expiry == 1)
        .await
        .unwrap();
    assert_eq!(
        stats.expired().next().unwrap().user.as_deref(),
        Some("witness")
    );
    assert_eq!(blocked.command(&["PING"]).await.unwrap(), pong());
    assert_eq!(
        blocked.command(&["BLPOP", "q", "0.01"]).await.unwrap(),
        RespValue::Null
    );
}

#[tokio::test]
async fn an_auth_in_a_multi_that_never_executes_does_not_save_the_connection() {
    let harness = RedisHarness::standalone().await.unwrap();
    let started = Instant::now();
    let mut client = authed(&harness, "m", SHORT).await;
    let old_exp = connection(&harness, "m").expires_at;
    assert_eq!(client.command(&["MULTI"]).await.unwrap(), ok());
    let reply = client
        .command(&["AUTH", "m", &token("m", HOUR)])
        .await
        .unwrap();
    assert_eq!(reply, RespValue::Simple("QUEUED".into()));
    assert_eq!(connection(&harness, "m").expires_at, old_exp);
    let replies = tokio::time::timeout(Duration::from_secs(8), client.read_until_closed())
        .await
        .expect("closed at the old token's expiry")
        .unwrap();
    assert_eq!(replies, 0);
    assert!(started.elapsed() >= Duration::from_millis(1900));
    let stats = harness
        .wait_for_stats(Duration::from_secs(5), |s| s.closed_by_expiry == 1)
        .await
        .unwrap();
    assert_eq!((stats.auth_ok, stats.reauths), (1, 0));
}

#[tokio::test]
async fn an_auth_in_multi_takes_effect_at_exec_unless_the_transaction_aborts() {
    let harness = RedisHarness::standalone().await.unwrap();
    let mut client = authed(&harness, "m", HOUR).await;
    let first = connection(&harness, "m").expires_at.unwrap();
    // EXEC runs it.
    client.command(&["MULTI"]).await.unwrap();
    client
        .command(&["AUTH", "m", &token("m", 2 * HOUR)])
        .await
        .unwrap();
    assert_eq!(connection(&harness, "m").expires_at, Some(first));
    let reply = client.command(&["EXEC"]).await.unwrap();
    assert_eq!(reply, RespValue::Array(vec![ok()]));
    let second = connection(&harness, "m").expires_at.unwrap();
    assert!(second >= first + 3599, "{first} {second}");
    // A WATCHed key changed: EXEC answers a null and nothing ran.
    let mut other = authed(&harness, "other", HOUR).await;
    client.command(&["WATCH", "w"]).await.unwrap();
    other.command(&["SET", "w", "1"]).await.unwrap();
    client.command(&["MULTI"]).await.unwrap();
    client
        .command(&["AUTH", "m", &token("m", 3 * HOUR)])
        .await
        .unwrap();
    assert_eq!(client.command(&["EXEC"]).await.unwrap(), RespValue::Null);
    // A queueing error aborts it; DISCARD drops it.
    client.command(&["MULTI"]).await.unwrap();
    client
        .command(&["AUTH", "m", &token("m", 3 * HOUR)])
        .await
        .unwrap();
    let reply = client.command(&["NO-SUCH-COMMAND"]).await.unwrap();
    assert!(reply.as_error().is_some(), "{reply:?}");
    let reply = client.command(&["EXEC"]).await.unwrap();
    assert!(
        reply.as_error().unwrap().starts_with("EXECABORT"),
        "{reply:?}"
    );
    client.command(&["MULTI"]).await.unwrap();
    client
        .command(&["AUTH", "m", &token("m", 3 * HOUR)])
        .await
        .unwrap();
    assert_eq!(client.command(&["DISCARD"]).await.unwrap(), ok());
    let conn = connection(&harness, "m");
    assert_eq!((conn.expires_at, conn.reauths), (Some(second), 1));
    assert_eq!(client.command(&["PING"]).await.unwrap(), pong());
}

#[tokio::test]
async fn pipelined_reauth_moves_the_deadline_in_resp2_and_resp3() {
    let harness = RedisHarness::standalone().await.unwrap();
    let mut resp2 = authed(&harness, "two", SHORT).await;
    let mut resp3 = harness.connect().await.unwrap();
    let reply = resp3
        .command(&["HELLO", "3", "AUTH", "three", &token("three", SHORT)])
        .await
        .unwrap();
    assert_eq!(reply.get("proto"), Some(&RespValue::Integer(3)));
    for (client, oid) in [(&mut resp2, "two"), (&mut resp3, "three")] {
        let fresh = token(oid, HOUR);
        let replies = client
            .pipeline(&[vec!["PING"], vec!["AUTH", oid, &fresh], vec!["PING"]])
            .await
            .unwrap();
        assert_eq!(replies, [pong(), ok(), pong()], "{oid}");
        let conn = connection(&harness, oid);
        assert_eq!(conn.reauths, 1, "{oid}");
        assert!(
            (conn.expires_at.unwrap() - unix_now() - 3600).abs() <= 2,
            "{oid}"
        );
    }
    let _witness = authed(&harness, "witness", SHORT + Duration::from_secs(1)).await;
    harness
        .wait_for_stats(Duration::from_secs(8), |s| s.closed_by_expiry == 1)
        .await
        .unwrap();
    assert_eq!(resp2.command(&["PING"]).await.unwrap(), pong());
    assert_eq!(resp3.command(&["PING"]).await.unwrap(), pong());
    assert_eq!(harness.stats().reauths, 2);
}

/// Reads replies and pushes until `want` arrives; returns the pushes seen first.
async fn read_until(client: &mut RespClient, want: &RespValue) -> Vec<RespValue> {
    let mut pushes = Vec::new();
    loop {
        let value = client.read_reply().await.unwrap();
        if &value == want {
            return pushes;
        }
        assert!(matches!(value, RespValue::Push(_)), "{value:?}");
        pushes.push(value);
    }
}

#[tokio::test]
async fn a_resp3_subscriber_reauths_while_messages_flow() {
    let harness = RedisHarness::standalone().await.unwrap();
    let mut subscriber = harness.connect().await.unwrap();
    subscriber
        .command(&["HELLO", "3", "AUTH", "sub", &token("sub", SHORT)])
        .await
        .unwrap();
    let reply = subscriber.command(&["SUBSCRIBE", "news"]).await.unwrap();
    assert!(matches!(reply, RespValue::Push(_)), "{reply:?}");
    let old_exp = connection(&harness, "sub").expires_at;
    // A publisher keeps messages coming until told to stop.
    let mut publisher = authed(&harness, "pub", HOUR).await;
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let publishing = tokio::spawn(async move {
        let batch: Vec<Vec<String>> = (0..50)
            .map(|i| vec!["PUBLISH".into(), "news".into(), format!("m{i}")])
            .collect();
        let mut sent = 0usize;
        while stop_rx.try_recv().is_err() {
            publisher.pipeline(&batch).await.unwrap();
            sent += batch.len();
            tokio::task::yield_now().await;
        }
        (publisher, sent)
    });
    let first = subscriber.read_reply().await.unwrap();
    assert!(matches!(first, RespValue::Push(_)), "{first:?}");
    // PING in RESP3 subscriber mode answers an ordinary `+PONG` among the pushes.
    subscriber.send(&["PING"]).await.unwrap();
    read_until(&mut subscriber, &pong()).await;
    subscriber
        .send(&["AUTH", "sub", &token("sub", HOUR)])
        .await
        .unwrap();
    read_until(&mut subscriber, &ok()).await;
    stop_tx.send(()).unwrap();
    let (mut publisher, sent) = publishing.await.unwrap();
    assert!(sent > 0);
    let conn = connection(&harness, "sub");
    assert_eq!(conn.reauths, 1);
    assert_ne!(conn.expires_at, old_exp);
    // Past the old expiry it still receives messages.
    let _witness = authed(&harness, "witness", SHORT + Duration::from_secs(1)).await;
    harness
        .wait_for_stats(Duration::from_secs(8), |s| s.closed_by_expiry == 1)
        .await
        .unwrap();
    publisher
        .command(&["PUBLISH", "news", "after-expiry"])
        .await
        .unwrap();
    let last = RespValue::Push(vec![
        RespValue::Bulk("message".into()),
        RespValue::Bulk("news".into()),
        RespValue::Bulk("after-expiry".into()),
    ]);
    read_until(&mut subscriber, &last).await;
    assert_eq!(harness.stats().closed_by_expiry, 1);
}

#[tokio::test]
async fn a_resp2_subscriber_is_followed_through_messages_and_pings() {
    let harness = RedisHarness::standalone().await.unwrap();
    let mut subscriber = authed(&harness, "sub", HOUR).await;
    let mut publisher = authed(&harness, "pub", HOUR).await;
    subscriber
        .send(&["SUBSCRIBE", "news", "sports"])
        .await
        .unwrap();
    subscriber.send(&["PSUBSCRIBE", "n*"]).await.unwrap();
    for _ in 0..3 {
        subscriber.read_reply().await.unwrap();
    }
    // Messages, a PING (an array reply in RESP2 subscriber mode) and a refused AUTH, interleaved.
    publisher.command(&["PUBLISH", "news", "a"]).await.unwrap();
    subscriber.send(&["PING"]).await.unwrap();
    subscriber
        .send(&["AUTH", "sub", &token("sub", 2 * HOUR)])
        .await
        .unwrap();
    publisher
        .command(&["PUBLISH", "sports", "b"])
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 5 {
        seen.push(subscriber.read_reply().await.unwrap());
    }
    assert!(seen.iter().any(|v| {
        v.as_error()
            .is_some_and(|e| e.starts_with("ERR Can't execute 'auth'"))
    }));
    assert!(seen.iter().any(|v| {
        v.as_items()
            .is_some_and(|i| i.first().and_then(RespValue::as_text).as_deref() == Some("pong"))
    }));
    assert_eq!(connection(&harness, "sub").reauths, 0);
    // Out of subscriber mode (messages may still arrive before the confirmations), AUTH works again.
    publisher.command(&["PUBLISH", "news", "c"]).await.unwrap();
    subscriber.send(&["UNSUBSCRIBE"]).await.unwrap();
    subscriber.send(&["PUNSUBSCRIBE"]).await.unwrap();
    let t = token("sub", 2 * HOUR);
    subscriber.send(&["AUTH", "sub", &t]).await.unwrap();
    loop {
        if subscriber.read_reply().await.unwrap() == ok() {
            break;
        }
    }
    let conn = connection(&harness, "sub");
    assert_eq!(conn.reauths, 1);
    assert!((conn.expires_at.unwrap() - unix_now() - 7200).abs() <= 2);
    let stats = harness.stats();
    assert_eq!((stats.auth_failed, stats.reauths), (1, 1));
}

#[tokio::test]
async fn client_reply_off_and_skip_are_followed() {
    let harness = RedisHarness::standalone().await.unwrap();
    let mut client = authed(&harness, "r", HOUR).await;
    // SKIP: the AUTH's reply is skipped; the PING's reply shows it ran.
    client.send(&["CLIENT", "REPLY", "SKIP"]).await.unwrap();
    client
        .send(&["AUTH", "r", &token("r", 2 * HOUR)])
        .await
        .unwrap();
    assert_eq!(client.command(&["PING"]).await.unwrap(), pong());
    let conn = connection(&harness, "r");
    assert_eq!(conn.reauths, 1);
    assert!((conn.expires_at.unwrap() - unix_now() - 7200).abs() <= 2);
    // OFF: nothing comes back until ON, whose `+OK` shows the AUTH ran.
    client.send(&["CLIENT", "REPLY", "OFF"]).await.unwrap();
    client
        .send(&["AUTH", "r", &token("r", 3 * HOUR)])
        .await
        .unwrap();
    client.send(&["SET", "k", "v"]).await.unwrap();
    assert_eq!(
        client.command(&["CLIENT", "REPLY", "ON"]).await.unwrap(),
        ok()
    );
    let conn = connection(&harness, "r");
    assert_eq!(conn.reauths, 2);
    assert!((conn.expires_at.unwrap() - unix_now() - 3 * 3600).abs() <= 2);
    assert_eq!(
        client.command(&["GET", "k"]).await.unwrap(),
        RespValue::Bulk("v".into())
    );
}

#[tokio::test]
async fn after_monitor_no_reauth_takes_effect() {
    // INFO, CLIENT LIST / UNBLOCK and MONITOR are @dangerous: Data Owner allows them.
    let harness = RedisHarness::standalone_with(AccessPolicy::DataOwner)
        .await
        .unwrap();
    let mut client = authed(&harness, "mon", HOUR).await;
    let before = connection(&harness, "mon").expires_at;
    assert_eq!(client.command(&["MONITOR"]).await.unwrap(), ok());
    client
        .send(&["AUTH", "mon", &token("mon", 2 * HOUR)])
        .await
        .unwrap();
    // The server runs it (its `+OK` comes among the feed's lines), but the gateway no longer follows replies.
    loop {
        if client.read_reply().await.unwrap() == ok() {
            break;
        }
    }
    let conn = connection(&harness, "mon");
    assert_eq!((conn.expires_at, conn.reauths), (before, 0));
}
