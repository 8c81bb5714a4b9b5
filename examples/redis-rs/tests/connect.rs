//! The example's `connect` against the testkit's enforcing gateway over TLS, through two rotations of 4 s tokens:
//! no failed command, no connection closed by expiry.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use entraid_core::{BoxFuture, Error, IdentityProvider, IdentityProviderResponse};
use entraid_manager::{TokenEvent, TokenManagerOptions};
use entraid_redis::EntraIdAuth;
use entraid_redis::redis;
use entraid_testkit::redis::{HarnessOptions, RedisHarness};
use entraid_testkit::tls::TestCa;

/// Gateway-valid 4 s tokens with a new `oid` each.
#[derive(Debug, Default)]
struct Minting(AtomicU64);

impl IdentityProvider for Minting {
    fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
        Box::pin(async move {
            let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            let jwt =
                entraid_testkit::redis::token(&format!("example-{n}"), Duration::from_secs(4));
            Ok(IdentityProviderResponse::raw_token(jwt))
        })
    }

    fn name(&self) -> &str {
        "Minting"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_over_tls_and_survives_rotations() {
    let ca = TestCa::new().unwrap();
    let harness = RedisHarness::start(HarnessOptions {
        tls: Some(ca.clone()),
        ..HarnessOptions::default()
    })
    .await
    .unwrap();
    let provider = Arc::new(Minting::default());
    let auth =
        EntraIdAuth::from_provider(provider.clone(), TokenManagerOptions::default()).unwrap();
    let url = format!("{}/?protocol=resp3", harness.url());
    assert!(url.starts_with("rediss://"), "{url}");
    let (mut manager, _attachment) =
        entraid_example_redis_rs::connect(&auth, &url, Some(ca.ca_cert_pem().as_bytes().to_vec()))
            .await
            .unwrap();
    assert_eq!(
        entraid_example_redis_rs::ping(&mut manager).await.unwrap(),
        "PONG"
    );

    let mut tokens = auth.manager().subscribe();
    let mut rotations = 0;
    let mut commands = 0u64;
    while rotations < 2 {
        let _: () = redis::cmd("INCR")
            .arg("n")
            .query_async(&mut manager)
            .await
            .unwrap();
        commands += 1;
        if let Some(TokenEvent::Token(_)) = tokens.try_recv() {
            rotations += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let n: u64 = redis::cmd("GET")
        .arg("n")
        .query_async(&mut manager)
        .await
        .unwrap();
    assert_eq!(n, commands);
    let stats = harness.stats();
    assert_eq!(stats.closed_by_expiry, 0, "{stats:?}");
    assert_eq!(stats.auth_failed, 0, "{stats:?}");
    assert!(stats.reauths >= 2, "{stats:?}");
    assert_eq!(
        provider.0.load(Ordering::SeqCst),
        3,
        "one identity request per rotation"
    );
}
