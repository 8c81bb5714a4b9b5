//! Deterministic tests of the adapter's windows between a token's publication and a client's re-authentication:
//! each sets up the window on purpose (no load test that needs luck) and checks, on the gateway, which token every
//! connection holds.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::time::Duration;

use common::{MintingProvider, builder, manager_options};
use entraid_fred::EntraIdAuth;
use entraid_manager::TokenManager;
use entraid_testkit::redis::{AccessPolicy, HarnessOptions, RedisHarness, Topology};
use fred::prelude::*;
use fred::types::RespVersion;

const HOUR: Duration = Duration::from_secs(3600);

/// Waits until every live gateway connection is authenticated as `user`, or fails after 10 s.
async fn all_connections_on(harness: &RedisHarness, user: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let connections = harness.connections();
        if !connections.is_empty() && connections.iter().all(|c| c.user.as_deref() == Some(user)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "connections not all on {user}: {:?}",
            connections
                .iter()
                .map(|c| c.user.clone())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the adapter has pushed the manager's current token (to whoever is attached).
async fn pushed_current(auth: &EntraIdAuth) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let current = auth.manager().current().map(|t| t.username().to_owned());
        let pushed = auth.pushed_token().map(|t| t.username().to_owned());
        if let Some(current) = current
            && Some(&current) == pushed.as_ref()
        {
            return current;
        }
        assert!(tokio::time::Instant::now() < deadline, "never pushed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Polls `condition` every 10 ms until it holds; fails the test, saying `what` (and `detail()`), after `within`.
async fn wait_until(
    what: &str,
    within: Duration,
    mut condition: impl FnMut() -> bool,
    detail: impl Fn() -> String,
) {
    let deadline = tokio::time::Instant::now() + within;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: {}",
            detail()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_attached_after_a_rotation_gets_the_newer_token() {
    let harness = RedisHarness::standalone().await.unwrap();
    let provider = MintingProvider::new("late", HOUR);
    let manager = TokenManager::start(provider.clone(), manager_options()).unwrap();
    let auth = EntraIdAuth::new(manager.clone());
    let client = builder(&harness, &auth, RespVersion::RESP3)
        .build()
        .unwrap();
    client.init().await.unwrap(); // connects with late-1
    all_connections_on(&harness, "late-1").await;

    // A rotation while the client is not attached yet: nobody pushes late-2 to it.
    manager.refresh_now().await.unwrap();
    assert_eq!(pushed_current(&auth).await, "late-2");
    all_connections_on(&harness, "late-1").await;

    // Attached after it: the adapter must not assume the client already holds late-2.
    let _attached = auth.attach(&client);
    all_connections_on(&harness, "late-2").await;
    let _: () = client.set("k", 1, None, None, false).await.unwrap();
    client.quit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_published_while_the_adapter_starts_is_pushed() {
    // The manager gets its first token, then a second one, before the adapter's task has run at all: the adapter
    // reads the manager's own stream of generations, so it starts from the newest one and cannot miss it.
    let harness = RedisHarness::standalone().await.unwrap();
    let provider = MintingProvider::new("early", HOUR);
    let manager = TokenManager::start(provider.clone(), manager_options()).unwrap();
    manager.ready().await.unwrap();
    let auth = EntraIdAuth::new(manager.clone());
    // Before the adapter's task first runs (this thread does not yield in between).
    let second = manager.refresh_now();
    let client = builder(&harness, &auth, RespVersion::RESP3)
        .build()
        .unwrap();
    let _attached = auth.attach(&client);
    second.await.unwrap();
    client.init().await.unwrap();
    assert_eq!(pushed_current(&auth).await, "early-2");
    all_connections_on(&harness, "early-2").await;
    client.quit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_comes_up_with_an_older_token_is_reauthenticated() {
    // The window: fred reconnects with a token fetched just before a newer one was published, after that token's
    // fan-out skipped the client (it was not connected). Modelled exactly: a client whose reconnects always AUTH
    // with an older token of its own (a static password); the adapter must re-apply the newest token whenever a
    // connection of an attached client comes up.
    let harness = RedisHarness::standalone().await.unwrap();
    let provider = MintingProvider::new("fresh", HOUR);
    let manager = TokenManager::start(provider.clone(), manager_options()).unwrap();
    manager.ready().await.unwrap();
    let auth = EntraIdAuth::new(manager.clone());
    let mut config = common::config(&harness, &auth, RespVersion::RESP3);
    config.credential_provider = None;
    config.username = Some("stale".into());
    config.password = Some(entraid_testkit::redis::token("stale", HOUR));
    let mut builder = Builder::from_config(config);
    builder.set_policy(ReconnectPolicy::new_constant(0, 50));
    let client = builder.build().unwrap();
    client.init().await.unwrap();
    all_connections_on(&harness, "stale").await;
    let _attached = auth.attach(&client);
    all_connections_on(&harness, "fresh-1").await;

    client.force_reconnection().await.unwrap();
    // It came up on "stale" again; the adapter puts it back on the newest token without a rotation.
    all_connections_on(&harness, "fresh-1").await;
    let closed = harness.stats().closed;
    assert!(
        closed.iter().any(|c| c.user.as_deref() == Some("fresh-1")),
        "the first connection was replaced: {closed:?}"
    );
    assert_eq!(provider.calls(), 1, "no extra identity request");
    client.quit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_pool_member_is_the_only_one_reconnected() {
    let harness = RedisHarness::standalone().await.unwrap();
    let provider = MintingProvider::new("pool", Duration::from_secs(4));
    let manager = TokenManager::start(provider.clone(), manager_options()).unwrap();
    let auth = EntraIdAuth::new(manager.clone());
    let pool = builder(&harness, &auth, RespVersion::RESP3)
        .build_pool(4)
        .unwrap();
    pool.init().await.unwrap();
    let _attached = auth.attach(&pool);
    let bad = pool.clients()[2].id().to_owned();
    // Member 2's connection refuses every re-AUTH: it can only be reconnected before its token expires.
    harness.set_refuse_reauth_named(Some(bad.clone()));
    let before: Vec<u64> = harness.connections().iter().map(|c| c.id).collect();
    common::wait_rotations(&manager, 2).await;
    common::settle(&auth).await;
    harness.set_refuse_reauth_named(None);

    let stats = harness.stats();
    assert!(
        stats.expired().next().is_none(),
        "closed by expiry: {stats:?}"
    );
    let replaced: Vec<_> = stats
        .closed
        .iter()
        .filter(|c| before.contains(&c.id))
        .map(|c| c.client_name.clone())
        .collect();
    assert!(
        !replaced.is_empty(),
        "the failing member was never reconnected"
    );
    assert!(
        replaced
            .iter()
            .all(|name| name.as_deref() == Some(bad.as_str())),
        "a healthy member was reconnected too: {replaced:?} (bad: {bad})"
    );
    pool.quit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnected_subscriber_gets_no_stray_reply() {
    // fred 10.1's `resubscribe_all` sends `PSUBSCRIBE` with no pattern when only channels are subscribed; the
    // server's error to it is taken as the reply of the connection's next command. The adapter reconnects a
    // subscriber whose re-AUTH keeps failing; afterwards its next commands (the adapter's AUTH, a PING) must get
    // their own replies.
    let harness = RedisHarness::standalone().await.unwrap();
    let provider = MintingProvider::new("stray", Duration::from_secs(4));
    let manager = TokenManager::start(provider.clone(), manager_options()).unwrap();
    let auth = EntraIdAuth::new(manager.clone());
    let mut errors = auth.subscribe_errors();
    let subscriber = builder(&harness, &auth, RespVersion::RESP2)
        .build_subscriber_client()
        .unwrap();
    subscriber.init().await.unwrap();
    subscriber.subscribe("events").await.unwrap();
    let _attached = auth.attach(&subscriber);
    // Every re-AUTH of the subscriber is refused: only a reconnect before its token expires saves it.
    harness.set_refuse_reauth_named(Some(subscriber.id().to_owned()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while auth.stats().reconnects == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never reconnected");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    harness.set_refuse_reauth_named(None);
    common::wait_rotations(&manager, 1).await;
    common::settle(&auth).await;
    for _ in 0..3 {
        let pong = subscriber.ping::<Value>(None).await;
        assert!(pong.is_ok(), "a stray reply: {pong:?}");
    }
    let publisher = builder(&harness, &auth, RespVersion::RESP3)
        .build()
        .unwrap();
    publisher.init().await.unwrap();
    let mut messages = subscriber.message_rx();
    let _: i64 = publisher.publish("events", "after").await.unwrap();
    let message = tokio::time::timeout(Duration::from_secs(5), messages.recv())
        .await
        .expect("still subscribed after the reconnect")
        .unwrap();
    assert_eq!(message.value.as_str().as_deref(), Some("after"));
    while let Ok(error) = errors.try_recv() {
        assert!(
            !error.message.contains("wrong number of arguments"),
            "a stray reply reached the adapter: {error}"
        );
    }
    assert!(
        harness.stats().expired().next().is_none(),
        "closed by expiry: {:?}",
        harness.stats()
    );
    subscriber.quit().await.unwrap();
}

/// `BLPOP queue 0` until `"end"`; returns how many times it came back empty (interrupted).
fn blocked_forever(client: Client) -> tokio::task::JoinHandle<u64> {
    blocked_forever_on(client, "queue")
}

/// `BLPOP <key> 0` until `"end"`; returns how many times it came back empty (interrupted).
fn blocked_forever_on(client: Client, key: &'static str) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut interrupted = 0;
        loop {
            match client.blpop::<Option<(String, String)>, _>(key, 0.0).await {
                Ok(Some((_, item))) if item == "end" => return interrupted,
                Ok(_) => interrupted += 1,
                Err(e) if *e.kind() == ErrorKind::Timeout => interrupted += 1,
                Err(e) => panic!("BLPOP failed: {e}"),
            }
        }
    })
}

/// Waits until the adapter has interrupted more than `than` blocking commands.
async fn unblocks_above(auth: &EntraIdAuth, than: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let unblocks = auth.stats().unblocks;
        if unblocks > than {
            return unblocks;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no CLIENT UNBLOCK: {:?}",
            auth.stats()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A standalone harness under Data Owner (`CLIENT UNBLOCK` allowed) and an adapter over 4 s tokens `<prefix>-N`.
async fn unblocking_setup(
    prefix: &str,
) -> (
    RedisHarness,
    std::sync::Arc<MintingProvider>,
    TokenManager,
    EntraIdAuth,
) {
    let harness = RedisHarness::standalone_with(AccessPolicy::DataOwner)
        .await
        .unwrap();
    let provider = MintingProvider::new(prefix, Duration::from_secs(4));
    let manager = TokenManager::start(provider.clone(), manager_options()).unwrap();
    let auth = EntraIdAuth::new(manager.clone());
    (harness, provider, manager, auth)
}

/// No connection was closed by expiry, and each token took exactly one identity request.
fn nothing_expired_one_request_per_token(
    harness: &RedisHarness,
    provider: &MintingProvider,
    manager: &TokenManager,
) {
    let stats = harness.stats();
    assert!(
        stats.expired().next().is_none(),
        "closed by expiry: {:?}",
        stats.expired().collect::<Vec<_>>()
    );
    assert_eq!(provider.calls(), manager.status().refreshes);
}

/// The (id, name) of every named server connection that belongs to none of `clients`: the control clients.
async fn control_connections(harness: &RedisHarness, clients: &[&str]) -> Vec<(String, String)> {
    let mut admin = harness.servers()[0].connect().await.unwrap();
    let list = admin
        .command(&["CLIENT", "LIST"])
        .await
        .unwrap()
        .as_text()
        .unwrap();
    list.lines()
        .filter_map(|line| {
            let field = |k: &str| {
                line.split(' ')
                    .find_map(|f| f.strip_prefix(k))
                    .map(str::to_owned)
            };
            Some((field("id=")?, field("name=")?))
        })
        .filter(|(_, name)| !name.is_empty() && !clients.contains(&name.as_str()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_clients_of_one_deployment_share_one_control_client() {
    // Three attached clients of one Redis, each blocked in `BLPOP` with no timeout: every rotation interrupts all
    // three, from one control connection (not one per attached client: a thousand attached clients would
    // otherwise open a thousand more connections, each re-authenticated at every rotation).
    let (harness, provider, manager, auth) = unblocking_setup("shared").await;
    let mut clients = Vec::new();
    let mut attachments = Vec::new();
    let mut blocked = Vec::new();
    for key in ["q0", "q1", "q2"] {
        let client = builder(&harness, &auth, RespVersion::RESP3)
            .build()
            .unwrap();
        client.init().await.unwrap();
        attachments.push(auth.attach(&client));
        blocked.push((key, blocked_forever_on(client.clone(), key)));
        clients.push(client);
    }
    // Two rotations: each interrupts the three BLPOPs.
    let unblocks = unblocks_above(&auth, 5).await;
    let names: Vec<&str> = clients.iter().map(|c| c.id()).collect();
    let control = control_connections(&harness, &names).await;
    assert_eq!(
        control.len(),
        1,
        "one shared control connection: {control:?}"
    );
    let unblocks = unblocks_above(&auth, unblocks + 2).await;
    assert_eq!(
        control_connections(&harness, &names).await,
        control,
        "the same control connection, re-authenticated, after {unblocks} interruptions"
    );
    common::settle(&auth).await;
    let pusher = builder(&harness, &auth, RespVersion::RESP3)
        .build()
        .unwrap();
    pusher.init().await.unwrap();
    for (key, handle) in blocked {
        let _: i64 = pusher.rpush(key, "end").await.unwrap();
        let interrupted = tokio::time::timeout(Duration::from_secs(10), handle)
            .await
            .unwrap()
            .unwrap();
        assert!(
            interrupted >= 2,
            "{key}: BLPOP interrupted {interrupted} times"
        );
    }
    nothing_expired_one_request_per_token(&harness, &provider, &manager);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_control_client_recovers_and_the_next_rotation_still_unblocks() {
    let (harness, provider, manager, auth) = unblocking_setup("ctl").await;
    let client = builder(&harness, &auth, RespVersion::RESP3)
        .build()
        .unwrap();
    client.init().await.unwrap();
    let _attached = auth.attach(&client);
    let blpop = blocked_forever(client.clone());
    // The first rotation interrupts the BLPOP from a control client built for it.
    let unblocks = unblocks_above(&auth, 0).await;

    // Kill the control client's connection on the server (its name is neither the client's nor empty).
    let mut admin = harness.servers()[0].connect().await.unwrap();
    let control = control_connections(&harness, &[client.id()]).await;
    assert_eq!(control.len(), 1, "one control connection: {control:?}");
    let (id, name) = control[0].clone();
    let reply = admin.command(&["CLIENT", "KILL", "ID", &id]).await.unwrap();
    assert_eq!(reply, entraid_testkit::redis::RespValue::Integer(1));
    harness.gateways()[0]
        .wait_for(Duration::from_secs(5), |s| {
            s.closed
                .iter()
                .any(|c| c.client_name.as_deref() == Some(name.as_str()))
        })
        .await
        .unwrap();

    // The next two rotations still interrupt the BLPOP, and nothing expires.
    let unblocks = unblocks_above(&auth, unblocks).await;
    unblocks_above(&auth, unblocks).await;
    common::settle(&auth).await;
    let pusher = builder(&harness, &auth, RespVersion::RESP3)
        .build()
        .unwrap();
    pusher.init().await.unwrap();
    let _: i64 = pusher.rpush("queue", "end").await.unwrap();
    let interrupted = tokio::time::timeout(Duration::from_secs(10), blpop)
        .await
        .unwrap()
        .unwrap();
    assert!(interrupted >= 3, "BLPOP interrupted {interrupted} times");
    nothing_expired_one_request_per_token(&harness, &provider, &manager);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_during_a_failover_reaches_the_connections_fred_kept() {
    // A primary dies: fred's cluster client goes into its reconnect loop (`Connecting`) until a replica takes the
    // slots over, and keeps its connections to the healthy primaries, on the token they hold. A token published in
    // that window must reach them once the client is back, not be counted as applied to a client that was not
    // connected (that skip left them to expire at the old token's expiry after every failover).
    let mut harness = RedisHarness::start(HarnessOptions {
        topology: Topology::Cluster { masters: 3 },
        replicas_per_master: 1,
        cluster_node_timeout: Some(Duration::from_millis(1500)),
        access_policy: AccessPolicy::DataContributor,
        ..HarnessOptions::default()
    })
    .await
    .unwrap();
    let provider = MintingProvider::new("failing", HOUR);
    let manager = TokenManager::start(provider.clone(), manager_options()).unwrap();
    let auth = EntraIdAuth::new(manager.clone());
    let client = builder(&harness, &auth, RespVersion::RESP3)
        .build()
        .unwrap();
    client.init().await.unwrap();
    let _attached = auth.attach(&client);
    common::settle(&auth).await;
    let on = |harness: &RedisHarness, user: &str| {
        let principals: Vec<_> = harness
            .connections()
            .into_iter()
            .filter_map(|c| c.user)
            .filter(|u| u.starts_with("failing-"))
            .collect();
        !principals.is_empty() && principals.iter().all(|u| u == user)
    };
    assert!(on(&harness, "failing-1"));

    let primary = harness.cluster_nodes().unwrap().primaries().await.unwrap()[0];
    harness.cluster_nodes_mut().unwrap().kill(primary);
    // Published during the failover (the node timeout alone is 1.5 s), while fred notices the dead node and
    // reconnects: the client's fan-out must not count it as applied to connections that still hold failing-1.
    manager.refresh_now().await.unwrap();
    assert_eq!(pushed_current(&auth).await, "failing-2");

    // The replica takes over; fred comes back with its kept connections still on failing-1, then the adapter
    // moves every connection to failing-2.
    wait_until(
        "connections left on the old token after fred reconnected",
        Duration::from_secs(20),
        || client.state() == ClientState::Connected && on(&harness, "failing-2"),
        || {
            format!(
                "{:?}",
                harness
                    .connections()
                    .iter()
                    .map(|c| c.user.clone())
                    .collect::<Vec<_>>()
            )
        },
    )
    .await;
    assert_eq!(provider.calls(), 2, "one identity request per token");
    client.quit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_waits_for_every_attached_client_and_no_longer_for_a_detached_one() {
    // Under Data Contributor a client blocked in `BLPOP` with no timeout cannot be interrupted: with one-hour tokens
    // its worker waits for the blocking call until shortly before the held token expires, so the fan-out is not
    // complete. Detaching that client completes it at once (the measuring task no longer waits for it), while a
    // second, idle client was re-authenticated all along.
    let harness = RedisHarness::standalone_with(AccessPolicy::DataContributor)
        .await
        .unwrap();
    let provider = MintingProvider::new("detach", HOUR);
    let manager = TokenManager::start(provider.clone(), manager_options()).unwrap();
    let auth = EntraIdAuth::new(manager.clone());
    let idle = builder(&harness, &auth, RespVersion::RESP3)
        .build()
        .unwrap();
    idle.init().await.unwrap();
    let blocked = builder(&harness, &auth, RespVersion::RESP3)
        .build()
        .unwrap();
    blocked.init().await.unwrap();
    let _idle_attached = auth.attach(&idle);
    let blocked_attached = auth.attach(&blocked);
    common::settle(&auth).await;
    let blpop = blocked_forever_on(blocked.clone(), "detach-queue");
    // The BLPOP is blocked on the server before the rotation.
    let mut admin = harness.servers()[0].connect().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let list = admin.command(&["CLIENT", "LIST"]).await.unwrap();
        if list.as_text().unwrap().contains("cmd=blpop") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "BLPOP never blocked"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    manager.refresh_now().await.unwrap();
    assert_eq!(pushed_current(&auth).await, "detach-2");
    // The idle client's connection moves to the new token; the blocked one cannot, so the fan-out stays open.
    wait_until(
        "idle client not re-authenticated",
        Duration::from_secs(10),
        || {
            harness
                .connections()
                .iter()
                .any(|c| c.user.as_deref() == Some("detach-2"))
        },
        || format!("{:?}", auth.stats()),
    )
    .await;
    // Longer than the blocked client's unblock attempt (50 ms, refused under Data Contributor): it now waits.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = auth.stats();
    assert_eq!(
        stats.fanouts_completed + 1,
        stats.rotations,
        "the fan-out waits for the blocked client: {stats:?}"
    );

    drop(blocked_attached);
    common::settle(&auth).await;
    // The blocked call ends with an item (fred's `quit` would wait behind it).
    let _: i64 = idle.rpush("detach-queue", "end").await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), blpop)
        .await
        .unwrap()
        .unwrap();
    blocked.quit().await.unwrap();
    idle.quit().await.unwrap();
}
