//! End-to-end: a client blocked in `BLPOP` with no timeout across token rotations.
//!
//! The gateway moves a connection's deadline only when the server has processed the `AUTH`, which a blocked
//! connection cannot do; the adapter interrupts the `BLPOP` (`CLIENT UNBLOCK ... TIMEOUT`) so the `AUTH` runs. The
//! application sees its `BLPOP` time out now and then (fred reports a blocking command's timeout, a nil reply, as
//! an error of kind `Timeout`), issues it again, and loses no item.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{MintingProvider, builder, settle, start_auth, wait_rotations};
use entraid_testkit::redis::RedisHarness;
use fred::error::ErrorKind;
use fred::prelude::*;
use fred::types::RespVersion;

const LIFETIME: Duration = Duration::from_secs(4);
/// The end-of-stream marker.
const END: u64 = 1_000_000_000;
const ROTATIONS: usize = 5;

async fn run(version: RespVersion, prefix: &str) {
    let harness = RedisHarness::standalone().await.unwrap();
    let provider = MintingProvider::new(prefix, LIFETIME);
    let (manager, auth) = start_auth(&provider);

    let blocked = builder(&harness, &auth, version.clone()).build().unwrap();
    blocked.init().await.unwrap();
    let _attached = auth.attach(&blocked);
    let pusher = builder(&harness, &auth, version).build().unwrap();
    pusher.init().await.unwrap();
    let _attached_pusher = auth.attach(&pusher);

    let stop = Arc::new(AtomicBool::new(false));
    let consumer = {
        let (blocked, stop) = (blocked.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut items, mut nils, mut errors) = (Vec::new(), 0u64, Vec::new());
            loop {
                match blocked
                    .blpop::<Option<(String, u64)>, _>("queue", 0.0)
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

    // Push rarely (less often than a token lives), so the connection is
    // blocked across rotations and only an interrupted BLPOP lets the AUTH run in time.
    let pushed = {
        let (pusher, stop) = (pusher.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_secs(6)).await;
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
        .unwrap()
        .unwrap();

    assert!(errors.is_empty(), "BLPOP failed: {errors:?}");
    assert_eq!(
        items,
        (0..pushed).collect::<Vec<_>>(),
        "lost or reordered items"
    );
    let stats = harness.stats();
    let expired: Vec<_> = stats.expired().collect();
    assert!(
        expired.is_empty(),
        "connections closed by expiry: {expired:?}"
    );
    assert_eq!(stats.auth_failed, 0, "{stats:?}");
    let reauth = auth.stats();
    assert!(reauth.unblocks >= 1, "no BLPOP was interrupted: {reauth:?}");
    assert_eq!(
        nils, reauth.unblocks,
        "every interruption shows as one timeout: {reauth:?}"
    );
    blocked.quit().await.unwrap();
    pusher.quit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blpop_without_timeout_survives_rotations_resp3() {
    run(RespVersion::RESP3, "blpop3").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blpop_without_timeout_survives_rotations_resp2() {
    run(RespVersion::RESP2, "blpop2").await;
}
