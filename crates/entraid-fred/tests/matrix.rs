//! End-to-end: every kind of fred client attached at once, as an application attaches them, under Azure's access
//! policies, on a standalone server and on a 3-master cluster, through at least five rotations of 4 s tokens.
//!
//! Attached together on one [`EntraIdAuth`]: a single client (SET/GET/INCR and pipelines in flight at once), a
//! pool of 8 (SET/GET/INCR), a client running `MULTI`/`EXEC`, a RESP2 and a RESP3 subscriber, a client blocked in
//! `BLPOP key 0` and one blocked in `XREAD BLOCK 0`, plus the publisher and the pushers feeding them. Under Data
//! Reader only what its rules allow runs: reads, and `XREAD BLOCK 0`.
//!
//! Asserted for every case: no connection closed by expiry, no refused AUTH, no failed command, one identity
//! request per token and tokens only at the refresh cadence, every pushed list item and stream entry received in
//! order, every message received by the RESP3 subscriber. The documented exceptions: a RESP2 subscriber is
//! reconnected each rotation and misses what is published meanwhile; under Data Contributor a `BLPOP`/`XREAD`
//! that blocks across a rotation is re-sent by fred on a new connection, and fails with fred's "Too many failed
//! write attempts" once it has been written `max_command_attempts` (3) times, at most once per reconnect.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "tests: a failed step is a failed test; measurements are printed"
)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{MintingProvider, builder, manager_options, settle, wait_rotations};
use entraid_fred::EntraIdAuth;
use entraid_manager::TokenManager;
use entraid_testkit::redis::{AccessPolicy, HarnessOptions, RedisHarness, Topology};
use fred::clients::{Client, Pool, SubscriberClient};
use fred::error::ErrorKind;
use fred::prelude::*;
use fred::types::RespVersion;
use fred::types::streams::XReadResponse;
use tokio::task::JoinHandle;

const LIFETIME: Duration = Duration::from_secs(4);
const ROTATIONS: usize = 5;
/// The end-of-stream marker for lists, streams and channels.
const END: u64 = 1_000_000_000;
/// What fred answers a command that was re-sent on `max_command_attempts` (default 3) connections in a row.
const ATTEMPTS_USED_UP: &str = "Too many failed write attempts";
/// A blocking timeout well inside the window between a 4 s token's refresh (2.8 s) and its reconnect deadline
/// (3.2 s).
const SHORT_BLOCK: Duration = Duration::from_millis(200);

/// What one workload did.
#[derive(Debug, Default)]
struct Report {
    name: &'static str,
    ok: u64,
    failed: Vec<String>,
    /// Blocking calls that fred failed after re-sending them on reconnects (the documented exception).
    attempts_used_up: u64,
}

impl Report {
    fn record(&mut self, result: Result<(), Error>) {
        match result {
            Ok(()) => self.ok += 1,
            Err(e) if e.details().contains(ATTEMPTS_USED_UP) => self.attempts_used_up += 1,
            Err(e) => self.failed.push(e.to_string()),
        }
    }
}

type Stop = Arc<AtomicBool>;

fn stopped(stop: &Stop) -> bool {
    stop.load(Ordering::SeqCst)
}

/// SET/GET/INCR on `client` until stopped.
fn data_load(name: &'static str, client: Client, stop: Stop, key: String) -> JoinHandle<Report> {
    tokio::spawn(async move {
        let mut report = Report {
            name,
            ..Report::default()
        };
        let mut i = 0u64;
        while !stopped(&stop) {
            i += 1;
            let result = async {
                client
                    .set::<(), _, _>(key.as_str(), i, None, None, false)
                    .await?;
                let value: u64 = client.get(key.as_str()).await?;
                assert_eq!(value, i, "{name}: read back a different value");
                client.incr::<i64, _>(format!("{key}:n")).await?;
                Ok(())
            }
            .await;
            report.record(result);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        report
    })
}

/// GET on `client` until stopped (Data Reader).
fn read_load(name: &'static str, client: Client, stop: Stop, key: String) -> JoinHandle<Report> {
    tokio::spawn(async move {
        let mut report = Report {
            name,
            ..Report::default()
        };
        while !stopped(&stop) {
            let result = client.get::<Option<String>, _>(key.as_str()).await;
            report.record(result.map(|_| ()));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        report
    })
}

/// Pipelines of INCR + GET (same slot) until stopped.
fn pipelines(client: Client, stop: Stop) -> JoinHandle<Report> {
    tokio::spawn(async move {
        let mut report = Report {
            name: "pipelines",
            ..Report::default()
        };
        while !stopped(&stop) {
            let result = async {
                let pipeline = client.pipeline();
                let () = pipeline.incr("{pipe}:a").await?;
                let () = pipeline.incr("{pipe}:b").await?;
                let () = pipeline.get("{pipe}:a").await?;
                let (a, b, read): (i64, i64, i64) = pipeline.all().await?;
                assert!(a > 0 && b > 0 && read == a, "pipeline replies out of order");
                Ok(())
            }
            .await;
            report.record(result);
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        report
    })
}

/// MULTI/EXEC transactions (same slot) until stopped; each must run whole.
fn transactions(client: Client, stop: Stop) -> JoinHandle<Report> {
    tokio::spawn(async move {
        let mut report = Report {
            name: "transactions",
            ..Report::default()
        };
        while !stopped(&stop) {
            let result = async {
                let tx = client.multi();
                let () = tx.incr("{tx}:a").await?;
                let () = tx.incr("{tx}:b").await?;
                let (a, b): (i64, i64) = tx.exec(true).await?;
                assert_eq!(a, b, "a transaction did not run whole");
                Ok(())
            }
            .await;
            report.record(result);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        report
    })
}

/// Pushes `0, 1, ...` onto `queue` every `every`, then the end marker; returns how many it pushed.
fn pusher(client: Client, stop: Stop, every: Duration) -> JoinHandle<u64> {
    tokio::spawn(async move {
        let mut n = 0u64;
        while !stopped(&stop) {
            tokio::time::sleep(every).await;
            let _: i64 = client.rpush("queue", n).await.expect("RPUSH never fails");
            n += 1;
        }
        let _: i64 = client.rpush("queue", END).await.expect("RPUSH never fails");
        n
    })
}

/// `BLPOP queue 0` until the end marker; returns the report and the items.
fn blpop_consumer(client: Client, block_for: Option<Duration>) -> JoinHandle<(Report, Vec<u64>)> {
    let timeout = block_for.map_or(0.0, |d| d.as_secs_f64());
    tokio::spawn(async move {
        let mut report = Report {
            name: "blpop",
            ..Report::default()
        };
        let mut items = Vec::new();
        loop {
            match client
                .blpop::<Option<(String, u64)>, _>("queue", timeout)
                .await
            {
                Ok(Some((_, n))) if n == END => break,
                Ok(Some((_, n))) => {
                    items.push(n);
                    report.ok += 1;
                }
                // A nil (an interrupted BLPOP, Data Owner): fred reports it as a `Timeout`.
                Ok(None) => {}
                Err(e) if *e.kind() == ErrorKind::Timeout => {}
                Err(e) => report.record(Err(e)),
            }
            assert!(report.failed.len() < 100, "BLPOP keeps failing: {report:?}");
        }
        (report, items)
    })
}

/// Adds entries `n = 0, 1, ...` to `stream` every `every`, then the end marker; returns how many it added.
fn xadder(client: Client, stop: Stop, every: Duration) -> JoinHandle<u64> {
    tokio::spawn(async move {
        let mut n = 0u64;
        while !stopped(&stop) {
            tokio::time::sleep(every).await;
            let _: String = client
                .xadd("stream", false, None, "*", ("n", n))
                .await
                .expect("XADD never fails");
            n += 1;
        }
        let _: String = client
            .xadd("stream", false, None, "*", ("n", END))
            .await
            .expect("XADD never fails");
        n
    })
}

/// `XREAD BLOCK 0 STREAMS stream <last id>` until the end marker (or until stopped, when nothing is ever added).
fn xread_consumer(
    client: Client,
    stop: Stop,
    until_end: bool,
    block_for: Option<Duration>,
) -> JoinHandle<(Report, Vec<u64>)> {
    let block = block_for.map_or(0, |d| u64::try_from(d.as_millis()).unwrap());
    tokio::spawn(async move {
        let mut report = Report {
            name: "xread",
            ..Report::default()
        };
        let (mut items, mut last) = (Vec::new(), "0-0".to_owned());
        'read: loop {
            let call = client.xread::<Value, _, _>(None, Some(block), "stream", last.clone());
            let result = if until_end {
                call.await
            } else {
                tokio::select! {
                    r = call => r,
                    () = async { while !stopped(&stop) { tokio::time::sleep(Duration::from_millis(20)).await } } => break 'read,
                }
            };
            match result {
                // An interrupted XREAD (CLIENT UNBLOCK ... TIMEOUT) answers nil, like a timeout.
                Ok(Value::Null) => {}
                Ok(value) => {
                    let streams: XReadResponse<String, String, String, u64> =
                        value.into_xread_response().unwrap();
                    for (_, entries) in streams {
                        for (id, fields) in entries {
                            last = id;
                            let n = fields["n"];
                            if n == END {
                                break 'read;
                            }
                            items.push(n);
                            report.ok += 1;
                        }
                    }
                }
                Err(e) if *e.kind() == ErrorKind::Timeout => {}
                Err(e) => report.record(Err(e)),
            }
            assert!(report.failed.len() < 100, "XREAD keeps failing: {report:?}");
        }
        (report, items)
    })
}

/// Publishes `0, 1, ...` on `events` every 10 ms, then the end marker; returns how many it published.
fn publisher(client: Client, stop: Stop) -> JoinHandle<u64> {
    tokio::spawn(async move {
        let mut n = 0u64;
        while !stopped(&stop) {
            let _: i64 = client
                .publish("events", n)
                .await
                .expect("PUBLISH never fails");
            n += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Give the RESP2 subscriber time to come back from a reconnect before the end marker.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _: i64 = client
            .publish("events", END)
            .await
            .expect("PUBLISH never fails");
        n
    })
}

/// Collects what `subscriber` receives on `events` until the end marker.
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

struct Case {
    prefix: &'static str,
    cluster: bool,
    /// How long the blocked clients block: `None` forever (`BLPOP key 0`, `XREAD BLOCK 0`).
    block_for: Option<Duration>,
    /// The protocol of the data clients (the subscribers use both).
    version: RespVersion,
    policy: AccessPolicy,
}

async fn subscriber(
    harness: &RedisHarness,
    auth: &EntraIdAuth,
    version: RespVersion,
) -> SubscriberClient {
    let subscriber = builder(harness, auth, version)
        .build_subscriber_client()
        .unwrap();
    subscriber.init().await.unwrap();
    let _resubscribe = subscriber.manage_subscriptions();
    subscriber.subscribe("events").await.unwrap();
    subscriber
}

async fn run(case: Case) {
    let topology = if case.cluster {
        Topology::Cluster { masters: 3 }
    } else {
        Topology::Standalone
    };
    let harness = RedisHarness::start(HarnessOptions {
        topology,
        access_policy: case.policy.clone(),
        ..HarnessOptions::default()
    })
    .await
    .unwrap();
    let reader_only = case.policy == AccessPolicy::DataReader;
    let started = tokio::time::Instant::now();
    let provider = MintingProvider::new(case.prefix, LIFETIME);
    let manager = TokenManager::start(provider.clone(), manager_options()).unwrap();
    let auth = EntraIdAuth::new(manager.clone());
    let mut errors = auth.subscribe_errors();
    let version = case.version;

    let client = || async {
        let client = builder(&harness, &auth, version.clone()).build().unwrap();
        client.init().await.unwrap();
        client
    };
    let mut attachments = Vec::new();
    let stop: Stop = Arc::new(AtomicBool::new(false));
    let mut loads = Vec::new();

    // Which fred client each connection name (its client id) belongs to, for the expiry report.
    let mut roles: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let single = client().await;
    roles.insert(single.id().to_owned(), "single".into());
    attachments.push(auth.attach(&single));
    let pool = {
        let pool: Pool = builder(&harness, &auth, version.clone())
            .build_pool(8)
            .unwrap();
        pool.init().await.unwrap();
        for member in pool.clients() {
            roles.insert(member.id().to_owned(), "pool".into());
        }
        pool
    };
    attachments.push(auth.attach(&pool));
    if reader_only {
        loads.push(read_load(
            "single",
            single.clone(),
            stop.clone(),
            "r:1".into(),
        ));
        for (i, member) in pool.clients().iter().enumerate() {
            loads.push(read_load(
                "pool",
                member.clone(),
                stop.clone(),
                format!("r:{i}"),
            ));
        }
    } else {
        loads.push(data_load(
            "single",
            single.clone(),
            stop.clone(),
            "k:single".into(),
        ));
        loads.push(pipelines(single.clone(), stop.clone()));
        for (i, member) in pool.clients().iter().enumerate() {
            loads.push(data_load(
                "pool",
                member.clone(),
                stop.clone(),
                format!("k:pool:{i}"),
            ));
        }
        let tx = client().await;
        roles.insert(tx.id().to_owned(), "transactions".into());
        attachments.push(auth.attach(&tx));
        loads.push(transactions(tx, stop.clone()));
    }

    // Blocked clients: XREAD BLOCK 0 always (a read); BLPOP and the subscribers where the policy allows them.
    let xread_client = client().await;
    roles.insert(xread_client.id().to_owned(), "xread".into());
    attachments.push(auth.attach(&xread_client));
    let xread = xread_consumer(
        xread_client.clone(),
        stop.clone(),
        !reader_only,
        case.block_for,
    );
    let feeders = (!reader_only).then(|| {
        let feeder = single.clone();
        (
            xadder(feeder.clone(), stop.clone(), Duration::from_secs(5)),
            pusher(feeder, stop.clone(), Duration::from_secs(5)),
        )
    });
    let blpop = if reader_only {
        None
    } else {
        let blpop_client = client().await;
        roles.insert(blpop_client.id().to_owned(), "blpop".into());
        attachments.push(auth.attach(&blpop_client));
        Some((
            blpop_consumer(blpop_client.clone(), case.block_for),
            blpop_client,
        ))
    };
    let mut subscribers = Vec::new();
    let publishing = if reader_only {
        None
    } else {
        for sub_version in [RespVersion::RESP2, RespVersion::RESP3] {
            let sub = subscriber(&harness, &auth, sub_version.clone()).await;
            roles.insert(sub.id().to_owned(), format!("{sub_version:?} subscriber"));
            attachments.push(auth.attach(&sub));
            subscribers.push((sub_version, receiver(&sub), sub));
        }
        let publisher_client = client().await;
        roles.insert(publisher_client.id().to_owned(), "publisher".into());
        attachments.push(auth.attach(&publisher_client));
        Some(publisher(publisher_client, stop.clone()))
    };

    wait_rotations(&manager, ROTATIONS).await;
    settle(&auth).await;
    stop.store(true, Ordering::SeqCst);

    let mut reports = Vec::new();
    for load in loads {
        reports.push(load.await.unwrap());
    }
    let reauth = auth.stats();
    if let Some((xadded, pushed)) = feeders {
        let (xadded, pushed) = (xadded.await.unwrap(), pushed.await.unwrap());
        let (report, items) = tokio::time::timeout(Duration::from_secs(15), xread)
            .await
            .expect("XREAD gets the end marker")
            .unwrap();
        assert_eq!(
            items,
            (0..xadded).collect::<Vec<_>>(),
            "stream entries lost"
        );
        reports.push(report);
        let (blpop, _client) = blpop.unwrap();
        let (report, items) = tokio::time::timeout(Duration::from_secs(15), blpop)
            .await
            .expect("BLPOP gets the end marker")
            .unwrap();
        assert_eq!(items, (0..pushed).collect::<Vec<_>>(), "list items lost");
        reports.push(report);
    } else {
        reports.push(xread.await.unwrap().0);
    }
    if let Some(publishing) = publishing {
        let published = publishing.await.unwrap();
        assert!(published > 100, "too few messages: {published}");
        for (sub_version, received, _sub) in subscribers {
            let received = tokio::time::timeout(Duration::from_secs(10), received)
                .await
                .expect("the subscriber gets the end marker")
                .unwrap();
            assert!(
                received.windows(2).all(|w| w[0] < w[1]),
                "{sub_version:?} subscriber: out of order or duplicated"
            );
            if sub_version == RespVersion::RESP3 {
                assert_eq!(
                    received,
                    (0..published).collect::<Vec<_>>(),
                    "the RESP3 subscriber lost messages"
                );
            } else {
                let lost = published - received.len() as u64;
                eprintln!(
                    "{}: RESP2 subscriber lost {lost} of {published}",
                    case.prefix
                );
                assert!(
                    lost <= 20 * reauth.reconnects.max(1),
                    "RESP2 subscriber lost {lost} of {published} over {} reconnects",
                    reauth.reconnects
                );
            }
        }
    }

    // What every case must show.
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
        "{}: connections closed by expiry: {expired:?}",
        case.prefix
    );
    assert_eq!(
        stats.auth_failed, 0,
        "{}: refused AUTHs: {stats:?}",
        case.prefix
    );
    let mut used_up = 0;
    for report in &reports {
        assert!(
            report.failed.is_empty(),
            "{}: {} failed: {:?}",
            case.prefix,
            report.name,
            report.failed
        );
        assert!(
            report.ok > 0 || report.name == "xread",
            "{}: {} did nothing",
            case.prefix,
            report.name
        );
        used_up += report.attempts_used_up;
    }
    assert!(
        used_up <= reauth.blocked_reconnects,
        "{}: blocking calls failed more often than blocked clients were reconnected: {used_up}, {reauth:?}",
        case.prefix
    );
    if case.policy == AccessPolicy::DataContributor {
        assert_eq!(reauth.unblocks, 0, "CLIENT UNBLOCK is refused: {reauth:?}");
    }
    assert!(
        errors.try_recv().is_err(),
        "{}: a re-authentication failure was reported",
        case.prefix
    );
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
    let cadence = (LIFETIME - Duration::from_secs(1)).mul_f64(0.7);
    let most = (started.elapsed().as_secs_f64() / cadence.as_secs_f64()).floor() as u64 + 1;
    assert!(
        status.refreshes <= most,
        "{} tokens in {:?}: more than one request per rotation",
        status.refreshes,
        started.elapsed()
    );
    eprintln!("{}: {reauth:?}", case.prefix);
    drop(attachments);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_data_contributor_resp3() {
    run(Case {
        prefix: "m-s-dc3",
        cluster: false,
        block_for: None,
        version: RespVersion::RESP3,
        policy: AccessPolicy::DataContributor,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_data_contributor_resp2() {
    run(Case {
        prefix: "m-s-dc2",
        cluster: false,
        block_for: None,
        version: RespVersion::RESP2,
        policy: AccessPolicy::DataContributor,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_data_contributor_resp3() {
    run(Case {
        prefix: "m-c-dc3",
        cluster: true,
        // fred cannot close one connection of a clustered client (see the module docs): under a policy that
        // refuses CLIENT UNBLOCK the blocked clients block for less than the refresh-to-expiry window.
        block_for: Some(SHORT_BLOCK),
        version: RespVersion::RESP3,
        policy: AccessPolicy::DataContributor,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_data_contributor_resp2() {
    run(Case {
        prefix: "m-c-dc2",
        cluster: true,
        // fred cannot close one connection of a clustered client (see the module docs): under a policy that
        // refuses CLIENT UNBLOCK the blocked clients block for less than the refresh-to-expiry window.
        block_for: Some(SHORT_BLOCK),
        version: RespVersion::RESP2,
        policy: AccessPolicy::DataContributor,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_data_owner_resp3() {
    run(Case {
        prefix: "m-s-do3",
        cluster: false,
        block_for: None,
        version: RespVersion::RESP3,
        policy: AccessPolicy::DataOwner,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_data_owner_resp2() {
    run(Case {
        prefix: "m-c-do2",
        cluster: true,
        block_for: None,
        version: RespVersion::RESP2,
        policy: AccessPolicy::DataOwner,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_data_reader_resp3() {
    run(Case {
        prefix: "m-s-dr3",
        cluster: false,
        block_for: None,
        version: RespVersion::RESP3,
        policy: AccessPolicy::DataReader,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_data_reader_resp2() {
    run(Case {
        prefix: "m-c-dr2",
        cluster: true,
        block_for: None,
        version: RespVersion::RESP2,
        policy: AccessPolicy::DataReader,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_contributor_with_client_unblock_resp3() {
    // The custom policy Azure users add for blocked clients: Data Contributor + `+client|unblock`. Blocking calls
    // without a timeout are interrupted like under Data Owner.
    run(Case {
        prefix: "m-c-dcu3",
        cluster: true,
        block_for: None,
        version: RespVersion::RESP3,
        policy: AccessPolicy::data_contributor_with_unblock(),
    })
    .await;
}
