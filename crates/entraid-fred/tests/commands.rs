//! Every command fred (10.1) and the adapter send on their own, checked against Azure's access policies on a real
//! redis-server: which ones Data Contributor and Data Reader refuse, and so which need a fallback.
//!
//! | command | who sends it | Data Contributor | Data Reader | when refused |
//! |---|---|---|---|---|
//! | `HELLO 3 AUTH`, `AUTH` | fred (connect), adapter (re-auth) | allowed | allowed | - |
//! | `PING`, `SELECT`, `CLIENT SETNAME`, `CLIENT ID` | fred (connect) | allowed | allowed | - |
//! | `INFO server` | fred (connect: server version) | **refused** | **refused** | fred logs a WARN and continues; `server_version()` is `None` |
//! | `CLUSTER SLOTS` / `NODES` / `INFO` | fred (cluster routing, health check) | allowed | allowed | - |
//! | `CLIENT UNBLOCK <id> TIMEOUT` | adapter (blocked connections) | **refused** | allowed | the adapter waits, then reconnects the client (see `blocking.rs`) |
//! | `SUBSCRIBE`, `PSUBSCRIBE`, `UNSUBSCRIBE`, `SSUBSCRIBE` | fred, adapter (RESP2 re-auth) | allowed | **refused** | Data Reader cannot use pub/sub at all |
//! | `QUIT`, `RESET`, `READONLY` | fred | allowed | allowed | - |

#![allow(clippy::unwrap_used, reason = "tests")]

use std::time::Duration;

use entraid_testkit::redis::{AccessPolicy, RedisHarness, RespClient, RespValue, token};

const HOUR: Duration = Duration::from_secs(3600);

async fn refused(client: &mut RespClient, args: &[&str]) -> bool {
    match client.command(args).await.unwrap() {
        RespValue::Error(e) if e.starts_with("NOPERM") => true,
        RespValue::Error(e) if e.starts_with("ERR") => false, // e.g. wrong arguments: executed, not refused
        RespValue::Error(e) => panic!("{args:?}: {e}"),
        _ => false,
    }
}

/// (command, refused under Data Contributor, refused under Data Reader)
const TABLE: &[(&[&str], bool, bool)] = &[
    (&["PING"], false, false),
    (&["SELECT", "0"], false, false),
    (&["CLIENT", "SETNAME", "fred-abc"], false, false),
    (&["CLIENT", "ID"], false, false),
    (&["INFO", "server"], true, true),
    (&["CLIENT", "UNBLOCK", "0", "TIMEOUT"], true, false),
    (&["READONLY"], false, false),
];

const CLUSTER_TABLE: &[(&[&str], bool, bool)] = &[
    (&["CLUSTER", "SLOTS"], false, false),
    (&["CLUSTER", "NODES"], false, false),
    (&["CLUSTER", "INFO"], false, false),
];

async fn check(harness: &RedisHarness, policy: &AccessPolicy, table: &[(&[&str], bool, bool)]) {
    let mut client = harness.connect().await.unwrap();
    let hello = client
        .command(&["HELLO", "3", "AUTH", "app", &token("app", HOUR)])
        .await
        .unwrap();
    assert!(matches!(hello, RespValue::Map(_)), "{hello:?}");
    assert_eq!(
        client
            .command(&["AUTH", "app", &token("app", HOUR)])
            .await
            .unwrap(),
        RespValue::Simple("OK".into())
    );
    for (args, contributor, reader) in table {
        let expected = if *policy == AccessPolicy::DataReader {
            *reader
        } else {
            *contributor
        };
        assert_eq!(
            refused(&mut client, args).await,
            expected,
            "{args:?} under {policy}"
        );
    }
    // Pub/sub last (it changes the connection's mode): refused under Data Reader only.
    let subscribe = refused(&mut client, &["SUBSCRIBE", "events"]).await;
    assert_eq!(
        subscribe,
        *policy == AccessPolicy::DataReader,
        "SUBSCRIBE under {policy}"
    );
}

#[tokio::test]
async fn fred_and_adapter_commands_under_each_policy_standalone() {
    for policy in [AccessPolicy::DataContributor, AccessPolicy::DataReader] {
        let harness = RedisHarness::standalone_with(policy.clone()).await.unwrap();
        check(&harness, &policy, TABLE).await;
    }
}

#[tokio::test]
async fn fred_and_adapter_commands_under_each_policy_cluster() {
    for policy in [AccessPolicy::DataContributor, AccessPolicy::DataReader] {
        let harness = RedisHarness::cluster_with(policy.clone()).await.unwrap();
        let mut table = TABLE.to_vec();
        table.extend_from_slice(CLUSTER_TABLE);
        check(&harness, &policy, &table).await;
    }
}
