//! End to end on a 3-primary, 3-replica cluster under Azure's Data Contributor policy, with 4 s tokens: every kind
//! of fred client attached at once (a single client, a pool of 8, a RESP2 and a RESP3 subscriber, a client blocked
//! in `BLPOP`), through a topology change in the middle of at least five rotations:
//!
//! - `a_killed_primary_is_replaced_and_nothing_expires`: primary 0 is killed (SIGKILL) after two rotations and its
//!   replica takes over;
//! - `a_new_primary_with_migrated_slots_and_nothing_expires`: a fourth primary is added and 300 of primary 0's slots
//!   (with their keys) are migrated to it while the writers run;
//! - `unblocking_goes_on_past_a_removed_node` (Data Owner, a blocked client only): a node joins, takes slots, gives
//!   them back and is removed; the adapter's `CLIENT UNBLOCK` still interrupts the `BLPOP` at every rotation.
//!
//! The first two cover both protocols: the single and blocked clients speak one, the pool the other (the first test RESP3 /
//! RESP2, the second the reverse). Asserted: no connection closed by expiry (before, during or after the change:
//! the adapter converges again by itself), no refused AUTH, every acknowledged SET read back at the end, every
//! acknowledged list item popped in order, both subscribers still receiving, one identity request per token at the
//! refresh cadence.
//!
//! Two things the test arranges, because they are the server's guarantees and not the adapter's: Redis replicates
//! asynchronously, so a write acknowledged by a primary in the last milliseconds before it is killed can be lost;
//! the writers pause for the few milliseconds of a `WAIT` on the doomed primary before the kill, so no
//! acknowledged write is in flight. And the list the `BLPOP` client reads lives on primary 2, not on the killed
//! one (a popped item whose reply was on a killed connection is lost, by Redis's semantics). Under Data Contributor
//! `CLIENT UNBLOCK` is refused and fred 10.1 cannot close one connection of a clustered client, so the blocked
//! client uses the documented workaround: a `BLPOP` timeout shorter than the refresh-to-expiry window.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "tests: a failed step is a failed test; measurements are printed"
)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{MintingProvider, builder, manager_options, settle, wait_rotations};
use entraid_fred::EntraIdAuth;
use entraid_manager::TokenManager;
use entraid_testkit::redis::{
    AccessPolicy, Failure, HarnessOptions, RedisHarness, RespValue, Topology, slot_range,
};
use fred::clients::{Client, Pool, SubscriberClient};
use fred::error::ErrorKind;
use fred::prelude::*;
use fred::types::RespVersion;
use tokio::sync::RwLock;
use tokio::task::JoinHandle;

const LIFETIME: Duration = Duration::from_secs(4);
/// Rotations before the change, and after it.
const BEFORE: usize = 2;
/// The cluster's node timeout. fred 10.1's router runs no command while it reconnects, so the `AUTH` of a token
/// published during a failover reaches even the healthy primaries' connections only once the replica has taken
/// over: the failover (detection after the node timeout, then the replica's election, 0.5-1 s) must end before
/// the token those connections hold expires. The primary is killed just after a refresh, 2.8 s before the next
/// one and 4 s before that token's expiry; with a 1.5 s node timeout the failover took 2.3-3.5 s here and often
/// outlasted it (every client's connections to the two healthy primaries closed at once). With Azure's one-hour
/// tokens, refreshed minutes before expiry, a failover of seconds fits many times over.
const NODE_TIMEOUT: Duration = Duration::from_millis(600);
const AFTER: usize = 3;
/// A blocking timeout well inside the window between a 4 s token's refresh (2.8 s) and its reconnect deadline.
const SHORT_BLOCK: f64 = 0.2;
const END: u64 = 1_000_000_000;
/// Slots of primary 0 migrated to the new primary.
const MIGRATED: u16 = 300;

type Stop = Arc<AtomicBool>;
/// Writers hold it shared for each write; the test takes it to have no write in flight.
type Gate = Arc<RwLock<()>>;

fn stopped(stop: &Stop) -> bool {
    stop.load(Ordering::SeqCst)
}

/// What one writer did: the keys whose SET was acknowledged, and the errors fred returned.
#[derive(Debug, Default)]
struct Written {
    name: String,
    acked: Vec<String>,
    failed: Vec<String>,
}

/// SETs `w:{name}:{i}` = `i` (keys spread over every slot) until stopped.
fn writer(name: String, client: Client, stop: Stop, gate: Gate) -> JoinHandle<Written> {
    tokio::spawn(async move {
        let mut written = Written {
            name,
            ..Written::default()
        };
        let mut i = 0u64;
        while !stopped(&stop) {
            i += 1;
            let key = format!("w:{}:{i}", written.name);
            let result = {
                let _open = gate.read().await;
                client
                    .set::<(), _, _>(key.as_str(), i, None, None, false)
                    .await
            };
            match result {
                Ok(()) => written.acked.push(key),
                Err(e) => written.failed.push(e.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        written
    })
}

/// Reads every acknowledged key back (pipelines of 200) and returns the ones missing or wrong.
async fn missing(client: &Client, written: &Written) -> Vec<String> {
    let mut missing = Vec::new();
    for chunk in written.acked.chunks(200) {
        let pipeline = client.pipeline();
        for key in chunk {
            let () = pipeline.get(key.as_str()).await.unwrap();
        }
        let values: Vec<Option<u64>> = pipeline.all().await.unwrap();
        for (key, value) in chunk.iter().zip(values) {
            let expected: u64 = key.rsplit(':').next().unwrap().parse().unwrap();
            if value != Some(expected) {
                missing.push(key.clone());
            }
        }
    }
    missing
}

/// Pushes `0, 1, ...` onto `queue` (primary 2) every 400 ms, then the end marker; returns the acknowledged pushes.
fn pusher(client: Client, stop: Stop, gate: Gate) -> JoinHandle<Vec<u64>> {
    tokio::spawn(async move {
        let (mut n, mut acked) = (0u64, Vec::new());
        while !stopped(&stop) {
            tokio::time::sleep(Duration::from_millis(400)).await;
            let result = {
                let _open = gate.read().await;
                client.rpush::<i64, _, _>("queue", n).await
            };
            if result.is_ok() {
                acked.push(n);
            }
            n += 1;
        }
        let _: i64 = client.rpush("queue", END).await.expect("RPUSH of the end");
        acked
    })
}

/// `BLPOP queue 0.2` until the end marker; returns the items and the errors.
fn blpop_consumer(client: Client) -> JoinHandle<(Vec<u64>, Vec<String>)> {
    tokio::spawn(async move {
        let (mut items, mut failed) = (Vec::new(), Vec::new());
        loop {
            match client
                .blpop::<Option<(String, u64)>, _>("queue", SHORT_BLOCK)
                .await
            {
                Ok(Some((_, n))) if n == END => break,
                Ok(Some((_, n))) => items.push(n),
                Ok(None) => {}
                Err(e) if *e.kind() == ErrorKind::Timeout => {}
                Err(e) => failed.push(e.to_string()),
            }
            assert!(failed.len() < 100, "BLPOP keeps failing: {failed:?}");
        }
        (items, failed)
    })
}

/// Publishes on `events` every 10 ms until stopped, then the end marker (until one subscriber saw it).
fn publisher(client: Client, stop: Stop) -> JoinHandle<u64> {
    tokio::spawn(async move {
        let mut n = 0u64;
        while !stopped(&stop) {
            let _ = client.publish::<i64, _, _>("events", n).await;
            n += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        n
    })
}

/// What fred's `manage_subscriptions` does, without its stray reply: fred 10.1's `resubscribe_all` sends
/// `PSUBSCRIBE` with no pattern, and the server's error to it becomes the reply of the connection's next command.
fn resubscribe_on_reconnect(subscriber: &SubscriberClient) {
    let mut reconnects = subscriber.reconnect_rx();
    let subscriber = subscriber.clone();
    tokio::spawn(async move {
        while reconnects.recv().await.is_ok() {
            let channels: Vec<String> = subscriber
                .tracked_channels()
                .into_iter()
                .map(|c| c.to_string())
                .collect();
            if !channels.is_empty()
                && let Err(e) = subscriber.subscribe(channels).await
            {
                eprintln!("resubscribing failed: {e}");
            }
        }
    });
}

/// Collects what `subscriber` receives on `events` until `END`.
fn receiver(subscriber: &SubscriberClient) -> JoinHandle<Vec<u64>> {
    let mut messages = subscriber.message_rx();
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Ok(message) = messages.recv().await {
            let n: u64 = message.value.convert().unwrap();
            if n == END {
                break;
            }
            seen.push(n);
        }
        seen
    })
}

async fn new_client(harness: &RedisHarness, auth: &EntraIdAuth, version: RespVersion) -> Client {
    let client = builder(harness, auth, version).build().unwrap();
    client.init().await.unwrap();
    client
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    KillPrimary,
    AddPrimary,
}

async fn run(prefix: &'static str, change: Change, single_version: RespVersion) {
    let pool_version = match single_version {
        RespVersion::RESP3 => RespVersion::RESP2,
        _ => RespVersion::RESP3,
    };
    let mut harness = RedisHarness::start(HarnessOptions {
        topology: Topology::Cluster { masters: 3 },
        replicas_per_master: 1,
        cluster_node_timeout: Some(NODE_TIMEOUT),
        access_policy: AccessPolicy::DataContributor,
        ..HarnessOptions::default()
    })
    .await
    .unwrap();
    let started = tokio::time::Instant::now();
    let provider = MintingProvider::new(prefix, LIFETIME);
    let manager = TokenManager::start(provider.clone(), manager_options()).unwrap();
    let auth = EntraIdAuth::new(manager.clone());
    let mut errors = auth.subscribe_errors();
    let stop: Stop = Arc::new(AtomicBool::new(false));
    let gate: Gate = Arc::new(RwLock::new(()));
    let mut roles: HashMap<String, String> = HashMap::new();
    let mut attachments = Vec::new();

    let single = new_client(&harness, &auth, single_version.clone()).await;
    roles.insert(single.id().to_owned(), "single".into());
    attachments.push(auth.attach(&single));
    let pool: Pool = builder(&harness, &auth, pool_version.clone())
        .build_pool(8)
        .unwrap();
    pool.init().await.unwrap();
    attachments.push(auth.attach(&pool));
    let mut writers = vec![writer(
        format!("{prefix}-single"),
        single.clone(),
        stop.clone(),
        gate.clone(),
    )];
    for (i, member) in pool.clients().iter().enumerate() {
        roles.insert(member.id().to_owned(), format!("pool member {i}"));
        writers.push(writer(
            format!("{prefix}-pool{i}"),
            member.clone(),
            stop.clone(),
            gate.clone(),
        ));
    }
    let blocked = new_client(&harness, &auth, single_version.clone()).await;
    roles.insert(blocked.id().to_owned(), "blpop".into());
    attachments.push(auth.attach(&blocked));
    let blpop = blpop_consumer(blocked.clone());
    let pushes = pusher(single.clone(), stop.clone(), gate.clone());
    let mut subscribers = Vec::new();
    for version in [RespVersion::RESP2, RespVersion::RESP3] {
        let sub = builder(&harness, &auth, version.clone())
            .build_subscriber_client()
            .unwrap();
        sub.init().await.unwrap();
        resubscribe_on_reconnect(&sub);
        sub.subscribe("events").await.unwrap();
        roles.insert(sub.id().to_owned(), format!("{version:?} subscriber"));
        attachments.push(auth.attach(&sub));
        subscribers.push((version, receiver(&sub), sub));
    }
    let publishing = new_client(&harness, &auth, RespVersion::RESP3).await;
    roles.insert(publishing.id().to_owned(), "publisher".into());
    attachments.push(auth.attach(&publishing));
    let published = publisher(publishing.clone(), stop.clone());

    wait_rotations(&manager, BEFORE).await;
    let rotations_before = auth.stats().rotations;
    let nodes = harness.cluster_nodes_mut().unwrap();
    match change {
        Change::KillPrimary => {
            // No acknowledged write in flight to primary 0 (see the module docs): a WAIT behind the writes so far.
            let paused = gate.write().await;
            let mut admin = nodes.admin(0).await.unwrap();
            let (first, _) = slot_range(0, 3);
            let key = (0..)
                .map(|i| format!("fence{i}"))
                .find(|k| fred::util::redis_keyslot(k.as_bytes()) == first)
                .unwrap_or_else(|| "fence".into());
            let _ = admin.command(&["SET", &key, "1"]).await.unwrap();
            let replicated = admin.command(&["WAIT", "1", "5000"]).await.unwrap();
            assert_eq!(replicated, RespValue::Integer(1), "the replica is in sync");
            let promoted = nodes.fail_primary(0, Failure::Kill).await;
            drop(paused);
            let promoted = promoted.unwrap();
            eprintln!("{prefix}: primary 0 killed, node {promoted} took over");
        }
        Change::AddPrimary => {
            let new = nodes.add_primary().await.unwrap();
            let moved = nodes.migrate_slots(0, new, 0..=MIGRATED - 1).await.unwrap();
            eprintln!("{prefix}: node {new} added, {moved} keys migrated with {MIGRATED} slots");
        }
    }
    // How long the change takes depends on the machine's load, which is not what is tested: reported only.
    eprintln!(
        "{prefix}: the change spanned {} rotations",
        auth.stats().rotations - rotations_before
    );
    wait_rotations(&manager, AFTER).await;
    settle(&auth).await;
    stop.store(true, Ordering::SeqCst);

    // Writes: every acknowledged SET is there.
    let mut failed_writes = 0;
    for writer in writers {
        let written = writer.await.unwrap();
        assert!(
            !written.acked.is_empty(),
            "{}: nothing written",
            written.name
        );
        let missing = missing(&single, &written).await;
        assert!(
            missing.is_empty(),
            "{}: {} of {} acknowledged writes lost: {:?}",
            written.name,
            missing.len(),
            written.acked.len(),
            &missing[..missing.len().min(10)]
        );
        if !written.failed.is_empty() {
            eprintln!(
                "{prefix}: {} had {} failed writes (not acknowledged), first: {}",
                written.name,
                written.failed.len(),
                written.failed[0]
            );
        }
        failed_writes += written.failed.len();
    }
    // The list: every acknowledged push popped, in order.
    let acked_pushes = pushes.await.unwrap();
    let (items, blpop_failed) = tokio::time::timeout(Duration::from_secs(15), blpop)
        .await
        .expect("BLPOP gets the end marker")
        .unwrap();
    assert!(
        items.windows(2).all(|w| w[0] < w[1]),
        "list items out of order: {items:?}"
    );
    let lost: Vec<_> = acked_pushes.iter().filter(|n| !items.contains(n)).collect();
    assert!(lost.is_empty(), "acknowledged list items lost: {lost:?}");
    // The subscribers: still receiving after the change, in order.
    let published = published.await.unwrap();
    let end = new_client(&harness, &auth, RespVersion::RESP3).await;
    let mut received = Vec::new();
    for (version, seen, _sub) in subscribers {
        let seen = loop {
            let _ = end.publish::<i64, _, _>("events", END).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            if seen.is_finished() {
                break seen.await.unwrap();
            }
        };
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "{version:?} subscriber: out of order or duplicated"
        );
        assert!(
            seen.last().is_some_and(|&n| n + 200 > published),
            "{version:?} subscriber stopped receiving: last {:?} of {published}",
            seen.last()
        );
        received.push((version, published - seen.len() as u64));
    }

    let stats = harness.stats();
    let expired: Vec<_> = stats
        .expired()
        .map(|c| {
            let role = c.client_name.as_ref().map_or("unnamed", |n| {
                roles.get(n).map_or("unknown (control?)", String::as_str)
            });
            format!(
                "{role}: {} ({:?} old, last {})",
                c.user.as_deref().unwrap_or("-"),
                c.age,
                c.last_command
            )
        })
        .collect();
    assert!(
        expired.is_empty(),
        "{prefix}: connections closed by expiry: {expired:?}"
    );
    assert_eq!(stats.auth_failed, 0, "{prefix}: refused AUTHs: {stats:?}");
    let status = manager.status();
    assert_eq!(
        provider.calls(),
        status.refreshes,
        "one identity request per token"
    );
    assert_eq!(
        status.attempts, status.refreshes,
        "no failed identity request"
    );
    assert!(status.refreshes as usize > BEFORE + AFTER);
    let cadence = (LIFETIME - Duration::from_secs(1)).mul_f64(0.7);
    let most = (started.elapsed().as_secs_f64() / cadence.as_secs_f64()).floor() as u64 + 1;
    assert!(
        status.refreshes <= most,
        "{} tokens in {:?}: more than one request per rotation",
        status.refreshes,
        started.elapsed()
    );
    // Up to date: every authenticated connection on every gateway (the replaced primary's and the new one's
    // included) holds the newest token.
    let newest = manager.current().unwrap().username().to_owned();
    let behind: Vec<_> = harness
        .connections()
        .into_iter()
        .filter(|c| c.user.as_ref().is_some_and(|u| *u != newest))
        .collect();
    assert!(
        behind.is_empty(),
        "{prefix}: connections not on the newest token {newest}: {behind:?}"
    );
    let changed_node = match change {
        Change::KillPrimary => 3,
        Change::AddPrimary => 6,
    };
    let on_changed = harness.gateways()[changed_node]
        .connections()
        .into_iter()
        .filter(|c| c.user.is_some())
        .count();
    assert!(
        on_changed >= 9,
        "{prefix}: only {on_changed} client connections on node {changed_node}"
    );
    let mut reported = Vec::new();
    while let Ok(error) = errors.try_recv() {
        reported.push(error.to_string());
    }
    // A rotation during the failover may find the dead primary still in a client's routing table (its AUTH there
    // fails and is retried); a scale-out gives no reason for any failure.
    if change == Change::AddPrimary {
        assert!(
            reported.is_empty(),
            "{prefix}: re-auth failures: {reported:?}"
        );
    }
    eprintln!(
        "{prefix}: {:?}; {failed_writes} failed writes, {} BLPOP errors, subscribers missed {received:?}, \
         re-auth errors reported: {reported:?}",
        auth.stats(),
        blpop_failed.len()
    );
    drop(attachments);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_is_replaced_and_nothing_expires() {
    run("fo-kill", Change::KillPrimary, RespVersion::RESP3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_primary_with_migrated_slots_and_nothing_expires() {
    run("fo-add", Change::AddPrimary, RespVersion::RESP2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unblocking_goes_on_past_a_removed_node() {
    // A node joins (the blocked client connects to it), gets slots, gives them back and is removed while a client
    // is blocked in `BLPOP key 0` on another node (Data Owner, so CLIENT UNBLOCK is allowed): every later rotation
    // still interrupts the BLPOP, and nothing expires. fred 10.1 keeps a removed node's connection id until the
    // client's next cluster sync (it rebuilds the ids from its live connections at each sync); a rotation in
    // between makes the adapter's CLIENT UNBLOCK loop meet the dead server, which it passes over (the loop goes
    // on). Whether the id was still there at the rotation is printed.
    let mut harness = RedisHarness::start(HarnessOptions {
        topology: Topology::Cluster { masters: 3 },
        access_policy: AccessPolicy::DataOwner,
        ..HarnessOptions::default()
    })
    .await
    .unwrap();
    let provider = MintingProvider::new("fo-removed", LIFETIME);
    let manager = TokenManager::start(provider.clone(), manager_options()).unwrap();
    let auth = EntraIdAuth::new(manager.clone());
    let blocked = new_client(&harness, &auth, RespVersion::RESP3).await;
    let _attached = auth.attach(&blocked);
    // `BLPOP queue 0` (primary 2) until the end marker.
    let consumer = {
        let client = blocked.clone();
        tokio::spawn(async move {
            loop {
                match client.blpop::<Option<(String, u64)>, _>("queue", 0.0).await {
                    Ok(Some((_, n))) if n == END => return,
                    Ok(_) => {}
                    Err(e) if *e.kind() == ErrorKind::Timeout => {}
                    Err(e) => panic!("BLPOP failed: {e}"),
                }
            }
        })
    };
    // A fourth primary with some of primary 0's slots: the blocked client learns it at its next cluster sync (after
    // the next re-AUTH) and connects to it.
    let nodes = harness.cluster_nodes_mut().unwrap();
    let new = nodes.add_primary().await.unwrap();
    nodes.migrate_slots(0, new, 0..=99).await.unwrap();
    let new_addr = nodes.gateways()[new].addr();
    let knows_new = |client: &Client| {
        client
            .connection_ids()
            .keys()
            .any(|s| s.port == new_addr.port())
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !knows_new(&blocked) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never connected to the new node"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The slots go back and the node is removed.
    let nodes = harness.cluster_nodes_mut().unwrap();
    nodes.migrate_slots(new, 0, 0..=99).await.unwrap();
    nodes.remove_node(new).await.unwrap();
    let unblocks = auth.stats().unblocks;
    wait_rotations(&manager, 3).await;
    settle(&auth).await;
    let stats = auth.stats();
    eprintln!(
        "removed node still among the connection ids: {}; {stats:?}",
        knows_new(&blocked)
    );
    assert!(
        stats.unblocks >= unblocks + 2,
        "the BLPOP was not interrupted at every rotation: {stats:?}"
    );
    let end = new_client(&harness, &auth, RespVersion::RESP3).await;
    let _: i64 = end.rpush("queue", END).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), consumer)
        .await
        .expect("BLPOP gets the end marker")
        .unwrap();
    let expired: Vec<_> = harness
        .stats()
        .expired()
        .map(|c| format!("{:?} last {}", c.client_name, c.last_command))
        .collect();
    assert!(expired.is_empty(), "closed by expiry: {expired:?}");
    assert_eq!(provider.calls(), manager.status().refreshes);
}
