//! The gateway's fault injection: refusing re-AUTH on live connections while new connections still authenticate.

#![allow(clippy::unwrap_used, reason = "tests: a failed step is a failed test")]

use std::time::Duration;

use entraid_testkit::redis::{RedisHarness, RespValue, token};

#[tokio::test]
async fn refused_reauth_leaves_new_connections_working() {
    let harness = RedisHarness::standalone().await.unwrap();
    let hour = Duration::from_secs(3600);
    let mut live = harness.connect().await.unwrap();
    let ok = RespValue::Simple("OK".into());
    assert_eq!(
        live.command(&["AUTH", "u1", &token("u1", hour)])
            .await
            .unwrap(),
        ok
    );

    harness.set_refuse_reauth(true);
    let refused = live
        .command(&["AUTH", "u2", &token("u2", hour)])
        .await
        .unwrap();
    assert!(
        refused
            .as_error()
            .is_some_and(|e| e.starts_with("WRONGPASS")),
        "{refused:?}"
    );
    // The live connection keeps its first authentication.
    assert_eq!(
        live.command(&["PING"]).await.unwrap(),
        RespValue::Simple("PONG".into())
    );
    assert_eq!(harness.connections()[0].user.as_deref(), Some("u1"));
    // A new connection authenticates as usual.
    let mut fresh = harness.connect().await.unwrap();
    assert_eq!(
        fresh
            .command(&["AUTH", "u2", &token("u2", hour)])
            .await
            .unwrap(),
        ok
    );

    harness.set_refuse_reauth(false);
    assert_eq!(
        live.command(&["AUTH", "u3", &token("u3", hour)])
            .await
            .unwrap(),
        ok
    );
    let stats = harness.stats();
    assert_eq!(
        (stats.auth_ok, stats.auth_failed, stats.reauths),
        (3, 1, 1),
        "{stats:?}"
    );
}
