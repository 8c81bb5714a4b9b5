//! Every layer at once: the emulator's token endpoint or managed-identity endpoint -> an `entraid-identity`
//! credential -> the token manager -> fred through `entraid-fred` -> the enforcing gateway, with emulator-signed
//! tokens of a few seconds rotating under load. Each test asserts zero failed commands, zero connections closed by
//! expiry, no refused AUTH, the principal's `oid` as the username, and one token request per rotation.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use entraid_fred::EntraIdAuth;
use entraid_fred::fred::prelude::*;
use entraid_fred::fred::types::RespVersion;
use entraid_fred::fred::types::config::{
    Config, ReconnectPolicy, ServerConfig, TlsConfig, TlsConnector,
};
use entraid_identity::{
    AuthorityHost, ClientCertificate, ClientCertificateCredential, DefaultAzureCredential, Env,
    HttpClient, HttpOptions, ManagedIdentityCredential,
};
use entraid_manager::{RetryOptions, TokenEvent, TokenManagerOptions};
use entraid_testkit::emulator::{App, Emulator, ManagedIdentity};
use entraid_testkit::keys::TestKey;
use entraid_testkit::redis::{HarnessOptions, RedisHarness};
use entraid_testkit::tls::TestCa;

const LIFETIME: Duration = Duration::from_secs(4);
const ROTATIONS: usize = 3;

fn options() -> TokenManagerOptions {
    TokenManagerOptions {
        retry: RetryOptions {
            initial_delay: Duration::from_millis(50),
            ..RetryOptions::default()
        },
        ..TokenManagerOptions::default()
    }
}

/// An HTTP client trusting the emulator's test CA.
fn http(emulator: &Emulator) -> HttpClient {
    HttpOptions::new()
        .add_root_certificates_pem(emulator.ca_cert_pem().as_bytes())
        .unwrap()
        .build()
        .unwrap()
}

fn fred_config(harness: &RedisHarness, version: RespVersion) -> Config {
    let addrs = harness.addrs();
    let server = if addrs.len() > 1 {
        ServerConfig::new_clustered(
            addrs
                .iter()
                .map(|a| (a.ip().to_string(), a.port()))
                .collect(),
        )
    } else {
        ServerConfig::new_centralized(addrs[0].ip().to_string(), addrs[0].port())
    };
    let tls = harness
        .tls_client_config()
        .map(|c| TlsConfig::from(TlsConnector::from((*c).clone())));
    Config {
        server,
        version,
        tls,
        ..Config::default()
    }
}

/// Runs SET/GET under rotations; returns after `ROTATIONS` new tokens and every fan-out, asserting the outcome.
async fn run(
    auth: EntraIdAuth,
    harness: &RedisHarness,
    version: RespVersion,
    oid: &str,
    issued: impl Fn() -> u64,
) {
    let mut builder = auth.fred_builder(fred_config(harness, version));
    builder.set_policy(ReconnectPolicy::new_constant(0, 50));
    let client = builder.build().unwrap();
    client.init().await.unwrap();
    let _attached = auth.attach(&client);
    let mut events = auth.manager().subscribe();

    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicU64::new(0));
    let worker = {
        let (client, stop, failed) = (client.clone(), stop.clone(), failed.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let key = format!("k{}", n % 32);
                let ok = client
                    .set::<(), _, _>(&key, n, None, None, false)
                    .await
                    .is_ok()
                    && client.get::<u64, _>(&key).await.is_ok_and(|v| v == n);
                if !ok {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            n
        })
    };
    let mut rotations = 0;
    while rotations < ROTATIONS {
        match tokio::time::timeout(Duration::from_secs(30), events.recv())
            .await
            .expect("a rotation within 30 s")
        {
            Some(TokenEvent::Token(token)) => {
                assert_eq!(token.username(), oid);
                rotations += 1;
            }
            Some(_) => {}
            None => panic!("manager stopped"),
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while auth.stats().fanouts_completed < auth.stats().rotations {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", auth.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let commands = worker.await.unwrap();

    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "failed commands out of {commands}"
    );
    let stats = harness.stats();
    assert_eq!(stats.closed_by_expiry, 0, "{stats:?}");
    assert_eq!(stats.auth_failed, 0, "{stats:?}");
    assert!(stats.reauths > 0, "{stats:?}");
    let users: Vec<_> = harness
        .connections()
        .into_iter()
        .filter_map(|c| c.user)
        .collect();
    assert!(
        !users.is_empty() && users.iter().all(|u| u == oid),
        "{users:?}"
    );
    // The first token plus one per rotation (a refresh may have just started).
    let issued = issued();
    assert!(
        (ROTATIONS as u64 + 1..=ROTATIONS as u64 + 2).contains(&issued),
        "tokens issued: {issued}"
    );
    client.quit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_identity_on_imds_standalone_resp3() {
    let emulator = Emulator::start().await.unwrap();
    let principal = emulator
        .add_managed_identity(ManagedIdentity::system_assigned().token_lifetime(LIFETIME))
        .unwrap();
    let harness = RedisHarness::standalone().await.unwrap();
    let credential = ManagedIdentityCredential::builder()
        .env(Env::from_map(std::iter::empty::<(String, String)>()))
        .imds_endpoint(emulator.imds_endpoint())
        .build()
        .unwrap();
    let auth = EntraIdAuth::from_provider(credential, options()).unwrap();
    run(auth, &harness, RespVersion::RESP3, &principal.oid, || {
        emulator.tokens_issued(&principal.oid)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_over_https_on_a_cluster() {
    let emulator = Emulator::start().await.unwrap();
    let certificate = emulator
        .ca()
        .issue_client_certificate(TestKey::client_app(), "entraid-tests")
        .unwrap();
    let principal = emulator
        .add_app(
            App::new("11111111-2222-3333-4444-555555555555")
                .certificate(&certificate)
                .token_lifetime(LIFETIME),
        )
        .unwrap();
    let harness = RedisHarness::cluster().await.unwrap();
    let credential = ClientCertificateCredential::builder()
        .authority_host(AuthorityHost::custom(emulator.https_url()).unwrap())
        .http_client(http(&emulator))
        .tenant_id(emulator.tenant_id())
        .client_id("11111111-2222-3333-4444-555555555555")
        .certificate(ClientCertificate::from_pem(certificate.pem_bundle().as_bytes()).unwrap())
        .build()
        .unwrap();
    let auth = EntraIdAuth::from_provider(credential, options()).unwrap();
    run(auth, &harness, RespVersion::RESP3, &principal.oid, || {
        emulator.tokens_issued(&principal.oid)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_chain_environment_secret_over_tls_resp2() {
    let emulator = Emulator::start().await.unwrap();
    let principal = emulator
        .add_app(
            App::new("66666666-7777-8888-9999-000000000000")
                .secret("chain-secret")
                .token_lifetime(LIFETIME),
        )
        .unwrap();
    let harness = RedisHarness::start(HarnessOptions {
        tls: Some(TestCa::new().unwrap()),
        ..HarnessOptions::default()
    })
    .await
    .unwrap();
    let env = Env::from_map([
        ("AZURE_TENANT_ID", emulator.tenant_id().to_owned()),
        (
            "AZURE_CLIENT_ID",
            "66666666-7777-8888-9999-000000000000".to_owned(),
        ),
        ("AZURE_CLIENT_SECRET", "chain-secret".to_owned()),
        ("AZURE_AUTHORITY_HOST", emulator.https_url().to_owned()),
    ]);
    let credential = DefaultAzureCredential::builder()
        .env(env)
        .http_client(http(&emulator))
        .build()
        .unwrap();
    let auth = EntraIdAuth::from_provider(credential, options()).unwrap();
    run(auth, &harness, RespVersion::RESP2, &principal.oid, || {
        emulator.tokens_issued(&principal.oid)
    })
    .await;
}
