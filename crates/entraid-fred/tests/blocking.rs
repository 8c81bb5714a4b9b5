//! End-to-end: a client blocked in `BLPOP` with no timeout across token rotations, under each of Azure's access
//! policies.
//!
//! The gateway moves a connection's deadline only when the server has processed the `AUTH`, which a blocked
//! connection cannot do until its blocking command returns.
//! - Data Owner allows `CLIENT UNBLOCK`: the adapter interrupts the `BLPOP` (`CLIENT UNBLOCK ... TIMEOUT`) so the
//!   `AUTH` runs. The application sees its `BLPOP` time out now and then (fred reports a blocking command's
//!   timeout, a nil reply, as an error of kind `Timeout`), issues it again, and loses no item.
//! - Data Contributor refuses it (`NOPERM`): the adapter waits for the `BLPOP` to end by itself until the held
//!   token is about to expire, then reconnects the client; fred re-sends the `BLPOP` on the new connection.
//!   A `BLPOP` with a timeout shorter than that window causes no reconnect at all.
//! - With the fallback switched off, the server closes the blocked connection at expiry (the test that proves the
//!   others can fail).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{MintingProvider, builder, manager_options, settle, wait_rotations};
use entraid_fred::{EntraIdAuth, ReauthOptions};
use entraid_manager::TokenManager;
use entraid_testkit::redis::{AccessPolicy, RedisHarness};
use fred::error::ErrorKind;
use fred::prelude::*;
use fred::types::RespVersion;

const LIFETIME: Duration = Duration::from_secs(4);
/// The end-of-stream marker.
const END: u64 = 1_000_000_000;
const ROTATIONS: usize = 5;
/// What fred answers a command that was re-sent on `max_command_attempts` (default 3) connections in a row.
const ATTEMPTS_USED_UP: &str = "Too many failed write attempts";

struct Run {
    policy: AccessPolicy,
    version: RespVersion,
    /// The `BLPOP` timeout (0: block forever).
    blpop_timeout: f64,
    /// How often the pusher pushes (rarely: the consumer stays blocked across rotations).
    push_every: Duration,
    options: ReauthOptions,
}

struct Outcome {
    harness: RedisHarness,
    auth: EntraIdAuth,
    items: Vec<u64>,
    pushed: u64,
    /// Calls that returned nothing (a nil or fred's `Timeout` for a blocking command's nil reply).
    nils: u64,
    errors: Vec<String>,
    provider_calls: u64,
    /// Tokens the manager received, and attempts it made.
    refreshes: u64,
    attempts: u64,
    elapsed: Duration,
}

async fn run(prefix: &str, run: Run) -> Outcome {
    let harness = RedisHarness::standalone_with(run.policy).await.unwrap();
    let started = tokio::time::Instant::now();
    let provider = MintingProvider::new(prefix, LIFETIME);
    let manager = TokenManager::start(provider.clone(), manager_options()).unwrap();
    let auth = EntraIdAuth::with_options(manager.clone(), run.options).unwrap();

    let blocked = builder(&harness, &auth, run.version.clone())
        .build()
        .unwrap();
    blocked.init().await.unwrap();
    let _attached = auth.attach(&blocked);
    let pusher = builder(&harness, &auth, run.version).build().unwrap();
    pusher.init().await.unwrap();
    let _attached_pusher = auth.attach(&pusher);

    let stop = Arc::new(AtomicBool::new(false));
    let consumer = {
        let (blocked, stop, timeout) = (blocked.clone(), stop.clone(), run.blpop_timeout);
        tokio::spawn(async move {
            let (mut items, mut nils, mut errors) = (Vec::new(), 0u64, Vec::new());
            loop {
                match blocked
                    .blpop::<Option<(String, u64)>, _>("queue", timeout)
                    .await
                {
                    Ok(Some((_, n))) if n == END => break,
                    Ok(Some((_, n))) => items.push(n),
                    Ok(None) => nils += 1,
                    // fred turns a blocking command's nil (timeout) reply into a `Timeout` error.
                    Err(e) if *e.kind() == ErrorKind::Timeout => nils += 1,
                    Err(e) => errors.push(e.to_string()),
                }
                if stop.load(Ordering::SeqCst) && errors.len() > 100 {
                    break;
                }
            }
            (items, nils, errors)
        })
    };

    let pushed = {
        let (pusher, stop, every) = (pusher.clone(), stop.clone(), run.push_every);
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(every).await;
                let _: i64 = pusher.rpush("queue", n).await.expect("RPUSH never fails");
                n += 1;
            }
            n
        })
    };

    wait_rotations(&manager, ROTATIONS).await;
    settle(&auth).await;
    stop.store(true, Ordering::SeqCst);
    let pushed = pushed.await.unwrap();
    let _: i64 = pusher.rpush("queue", END).await.unwrap();
    let (items, nils, errors) = tokio::time::timeout(Duration::from_secs(10), consumer)
        .await
        .expect("the consumer gets the end marker")
        .unwrap();
    blocked.quit().await.unwrap();
    pusher.quit().await.unwrap();
    let status = manager.status();
    Outcome {
        harness,
        refreshes: status.refreshes,
        attempts: status.attempts,
        elapsed: started.elapsed(),
        auth,
        items,
        pushed,
        nils,
        errors,
        provider_calls: provider.calls(),
    }
}

impl Outcome {
    fn assert_nothing_lost(&self) {
        assert_eq!(
            self.items,
            (0..self.pushed).collect::<Vec<_>>(),
            "lost or reordered items"
        );
        let stats = self.harness.stats();
        let expired: Vec<_> = stats.expired().collect();
        assert!(
            expired.is_empty(),
            "connections closed by expiry: {expired:?}"
        );
        assert_eq!(stats.auth_failed, 0, "{stats:?}");
        // One identity request per token, and tokens only at the refresh cadence: 0.7 of the lifetime, which is
        // whole seconds of wall time, so between LIFETIME - 1 s and LIFETIME as the client sees it.
        assert_eq!(self.provider_calls, self.refreshes, "one request per token");
        assert_eq!(self.attempts, self.refreshes, "no failed attempt");
        let cadence = (LIFETIME - Duration::from_secs(1)).mul_f64(0.7);
        let most = (self.elapsed.as_secs_f64() / cadence.as_secs_f64()).floor() as u64 + 1;
        assert!(
            self.refreshes <= most,
            "{} tokens in {:?}: more than one request per rotation",
            self.refreshes,
            self.elapsed
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_owner_interrupts_blpop_resp3() {
    data_owner_interrupts(RespVersion::RESP3, "owner-blpop3").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_owner_interrupts_blpop_resp2() {
    data_owner_interrupts(RespVersion::RESP2, "owner-blpop2").await;
}

async fn data_owner_interrupts(version: RespVersion, prefix: &str) {
    let outcome = run(
        prefix,
        Run {
            policy: AccessPolicy::DataOwner,
            version,
            blpop_timeout: 0.0,
            push_every: Duration::from_secs(6),
            options: ReauthOptions::default(),
        },
    )
    .await;
    assert!(
        outcome.errors.is_empty(),
        "BLPOP failed: {:?}",
        outcome.errors
    );
    outcome.assert_nothing_lost();
    let reauth = outcome.auth.stats();
    assert!(reauth.unblocks >= 1, "no BLPOP was interrupted: {reauth:?}");
    assert_eq!(reauth.blocked_reconnects, 0, "{reauth:?}");
    assert_eq!(
        outcome.nils, reauth.unblocks,
        "every interruption shows as one timeout: {reauth:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_contributor_reconnects_a_blocked_client_before_expiry_resp3() {
    data_contributor_reconnects(RespVersion::RESP3, "contrib-blpop3").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_contributor_reconnects_a_blocked_client_before_expiry_resp2() {
    data_contributor_reconnects(RespVersion::RESP2, "contrib-blpop2").await;
}

async fn data_contributor_reconnects(version: RespVersion, prefix: &str) {
    let outcome = run(
        prefix,
        Run {
            policy: AccessPolicy::DataContributor,
            version,
            blpop_timeout: 0.0,
            push_every: Duration::from_secs(6),
            options: ReauthOptions::default(),
        },
    )
    .await;
    outcome.assert_nothing_lost();
    let reauth = outcome.auth.stats();
    assert_eq!(reauth.unblocks, 0, "CLIENT UNBLOCK is refused: {reauth:?}");
    assert!(
        reauth.blocked_reconnects >= 1,
        "the blocked client was never reconnected: {reauth:?}"
    );
    // The documented exception: fred re-sends the BLPOP on each new connection, and fails it once it has been
    // written `max_command_attempts` times; at most one such error per rotation.
    assert!(
        outcome.errors.iter().all(|e| e.contains(ATTEMPTS_USED_UP)),
        "unexpected BLPOP errors: {:?}",
        outcome.errors
    );
    assert!(
        outcome.errors.len() as u64 <= reauth.blocked_reconnects,
        "{:?} {reauth:?}",
        outcome.errors
    );
    assert_eq!(outcome.nils, 0, "nothing interrupts the BLPOP as a timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_contributor_needs_no_reconnect_for_a_blpop_with_a_short_timeout() {
    // 4 s tokens: refreshed at 2.8 s, reconnect deadline at 3.2 s (expiry - a fifth of the lifetime). A BLPOP that
    // times out every 200 ms lets the queued AUTH run well before that.
    let outcome = run(
        "contrib-short",
        Run {
            policy: AccessPolicy::DataContributor,
            version: RespVersion::RESP3,
            blpop_timeout: 0.2,
            push_every: Duration::from_millis(700),
            options: ReauthOptions::default(),
        },
    )
    .await;
    assert!(
        outcome.errors.is_empty(),
        "BLPOP failed: {:?}",
        outcome.errors
    );
    outcome.assert_nothing_lost();
    let reauth = outcome.auth.stats();
    assert_eq!(reauth.blocked_reconnects, 0, "{reauth:?}");
    assert_eq!(reauth.reconnects, 0, "{reauth:?}");
    assert!(outcome.nils > 0, "the BLPOP timed out by itself");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_fallback_data_contributor_loses_the_blocked_connection() {
    let outcome = run(
        "contrib-nofallback",
        Run {
            policy: AccessPolicy::DataContributor,
            version: RespVersion::RESP3,
            blpop_timeout: 0.0,
            push_every: Duration::from_secs(6),
            options: ReauthOptions {
                reconnect_blocked: false,
                // Retries and the reconnect margin would otherwise reconnect it as a client whose AUTH fails.
                reconnect_margin: Duration::ZERO,
                ..ReauthOptions::default()
            },
        },
    )
    .await;
    let stats = outcome.harness.stats();
    assert!(
        stats.closed_by_expiry >= 1,
        "with the fallback off the blocked connection must be closed by expiry: {stats:?}"
    );
}

/// Measures what the Data Contributor fallback can lose: an item pushed at the very moment a blocked client is
/// reconnected. fred closes the blocked connection and re-sends the `BLPOP` on the new one; an item the server
/// hands to the old connection after fred closed it (before redis-server has read the close) is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_pushed_during_a_blocked_reconnect_is_received_once_or_counted_lost() {
    const RECONNECTS: u64 = 60;
    let harness = RedisHarness::standalone().await.unwrap(); // Data Contributor
    let provider = MintingProvider::new("window", Duration::from_secs(3600));
    let manager = TokenManager::start(provider.clone(), manager_options()).unwrap();
    let auth = EntraIdAuth::new(manager.clone());
    let blocked = builder(&harness, &auth, RespVersion::RESP3)
        .build()
        .unwrap();
    blocked.init().await.unwrap();
    let pusher = builder(&harness, &auth, RespVersion::RESP3)
        .build()
        .unwrap();
    pusher.init().await.unwrap();
    let consumer = {
        let blocked = blocked.clone();
        tokio::spawn(async move {
            let mut items = Vec::new();
            loop {
                match blocked
                    .blpop::<Option<(String, u64)>, _>("window", 0.0)
                    .await
                {
                    Ok(Some((_, n))) if n == END => break,
                    Ok(Some((_, n))) => items.push(n),
                    Ok(None) => {}
                    Err(e) if *e.kind() == ErrorKind::Timeout => {}
                    // Re-sent too often in a row: issue it again.
                    Err(e) => assert!(e.details().contains(ATTEMPTS_USED_UP), "{e}"),
                }
            }
            items
        })
    };
    let mut pushed = 0u64;
    let mut lost_at = Vec::new();
    for i in 0..RECONNECTS {
        // Let the consumer block again, then push and reconnect at the same moment, a little apart each time.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let offset = Duration::from_micros((i % 10) * 50);
        let (reconnect, push) = tokio::join!(blocked.force_reconnection(), async {
            tokio::time::sleep(offset).await;
            pusher.rpush::<i64, _, _>("window", i).await
        });
        reconnect.unwrap();
        push.unwrap();
        pushed += 1;
        lost_at.push(i);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _: i64 = pusher.rpush("window", END).await.unwrap();
    let items = tokio::time::timeout(Duration::from_secs(10), consumer)
        .await
        .unwrap()
        .unwrap();
    let remaining: Vec<u64> = pusher.lrange("window", 0, -1).await.unwrap();
    lost_at.retain(|n| !items.contains(n) && !remaining.contains(n));
    let lost = lost_at.len() as u64;
    assert_eq!(
        items.len() as u64 + remaining.len() as u64 + lost,
        pushed,
        "every item is received, still queued, or lost"
    );
    assert!(
        items.windows(2).all(|w| w[0] < w[1]),
        "received out of order or twice: {items:?}"
    );
    assert!(
        remaining.iter().all(|n| !items.contains(n)),
        "an item was both received and left in the list"
    );
    #[allow(clippy::print_stderr, reason = "the measurement is the point")]
    {
        eprintln!(
            "blocked reconnect window: {lost} of {pushed} items pushed within 0-450 us of a reconnect were lost (at {lost_at:?})"
        );
    }
    blocked.quit().await.unwrap();
    pusher.quit().await.unwrap();
}
