//! End-to-end through every layer: the emulator's managed-identity endpoint (IMDS) -> `ManagedIdentityCredential`
//! -> token manager -> fred, through the enforcing gateway, with emulator-signed tokens rotating every few seconds.
//! Plus the convenience constructors' construction errors (which need no network).

#![cfg(feature = "identity")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{config, load, manager_options, settle, wait_rotations};
use entraid_core::Error;
use entraid_fred::EntraIdAuth;
use entraid_identity::{Env, ManagedIdentityCredential};
use entraid_testkit::emulator::{Emulator, ManagedIdentity};
use entraid_testkit::redis::RedisHarness;
use fred::prelude::*;
use fred::types::RespVersion;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_identity_from_the_emulator_keeps_a_client_authenticated() {
    let emulator = Emulator::start().await.unwrap();
    let principal = emulator
        .add_managed_identity(
            ManagedIdentity::system_assigned().token_lifetime(Duration::from_secs(4)),
        )
        .unwrap();
    let harness = RedisHarness::standalone().await.unwrap();

    let credential = ManagedIdentityCredential::builder()
        .env(Env::from_map(std::iter::empty::<(String, String)>()))
        .imds_endpoint(emulator.imds_endpoint())
        .build()
        .unwrap();
    let auth = EntraIdAuth::from_provider(credential, manager_options()).unwrap();
    let client = auth
        .fred_builder(config(&harness, &auth, RespVersion::RESP3))
        .build()
        .unwrap();
    client.init().await.unwrap();
    let _attached = auth.attach(&client);

    let stop = Arc::new(AtomicBool::new(false));
    let worker = tokio::spawn(load(client.clone(), stop.clone(), vec!["mi".to_owned()]));
    wait_rotations(auth.manager(), 3).await;
    settle(&auth).await;
    stop.store(true, Ordering::SeqCst);
    let (ok, failed, first) = worker.await.unwrap();
    assert_eq!(failed, 0, "failed commands (first: {first:?})");
    assert!(ok > 10);

    let stats = harness.stats();
    assert_eq!(stats.closed_by_expiry, 0, "{stats:?}");
    assert_eq!(stats.auth_failed, 0, "{stats:?}");
    // The username is the managed identity's object id, taken from each token.
    let users: Vec<_> = harness
        .connections()
        .into_iter()
        .filter_map(|c| c.user)
        .collect();
    assert!(users.iter().all(|u| *u == principal.oid), "{users:?}");
    // One IMDS request for the first token and one per rotation.
    let issued = emulator.tokens_issued(&principal.oid);
    assert!((4..=5).contains(&issued), "tokens issued: {issued}");
    client.quit().await.unwrap();
}

#[tokio::test]
async fn constructors_refuse_bad_configuration_before_any_request() {
    let err =
        EntraIdAuth::client_secret("common", "00000000-0000-0000-0000-000000000001", "s".into())
            .unwrap_err();
    assert!(matches!(err, Error::Configuration { .. }), "{err:?}");
    assert!(err.to_string().contains("tenant"), "{err}");
    let err = EntraIdAuth::client_secret("bad tenant!", "client", "s".into()).unwrap_err();
    assert!(matches!(err, Error::Configuration { .. }), "{err:?}");
}
