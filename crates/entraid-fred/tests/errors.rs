//! Typed errors end to end: a token endpoint that refuses the credential with an AADSTS code (the emulator's fault
//! injection) reaches the application through fred as the same `entraid_core::Error`, with its code, whether it
//! looks at `auth.manager().ready()`, at the fred error of `client.init()`, or at `subscribe_errors()`.

#![cfg(feature = "identity")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::time::Duration;

use entraid_core::Error;
use entraid_fred::entraid_identity::{AuthorityHost, ClientSecretCredential, HttpOptions};
use entraid_fred::fred::prelude::*;
use entraid_fred::fred::types::config::{Config, ServerConfig};
use entraid_fred::{EntraIdAuth, ReauthErrorKind, RetryOptions, TokenManagerOptions, token_error};
use entraid_testkit::emulator::{App, Emulator, Endpoint, Fault};
use entraid_testkit::redis::RedisHarness;

const CLIENT_ID: &str = "7000215a-0000-0000-0000-000000000001";
const AADSTS: i64 = 7_000_215;

/// What Entra answers for a wrong client secret.
fn invalid_secret() -> Fault {
    Fault::Custom {
        status: 401,
        content_type: "application/json; charset=utf-8".into(),
        body: serde_json::json!({
            "error": "invalid_client",
            "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in \
                the request is the client secret value, not the client secret ID.",
            "error_codes": [AADSTS],
            "trace_id": "00000000-0000-0000-0000-0000000000aa",
            "correlation_id": "00000000-0000-0000-0000-0000000000bb"
        })
        .to_string(),
    }
}

/// A client-secret identity against the emulator, whose token endpoint refuses every request (the fault script
/// outlasts the test), and an adapter over it.
async fn refused_identity() -> (Emulator, EntraIdAuth) {
    let emulator = Emulator::start().await.unwrap();
    emulator
        .add_app(App::new(CLIENT_ID).secret("right"))
        .unwrap();
    emulator
        .faults(Endpoint::Token)
        .push_n(invalid_secret(), 1000);
    let http = HttpOptions::new()
        .add_root_certificates_pem(emulator.ca_cert_pem().as_bytes())
        .unwrap()
        .build()
        .unwrap();
    let credential = ClientSecretCredential::builder()
        .authority_host(AuthorityHost::custom(emulator.https_url()).unwrap())
        .http_client(http)
        .tenant_id(emulator.tenant_id())
        .client_id(CLIENT_ID)
        .secret("right".into())
        .build()
        .unwrap();
    let options = TokenManagerOptions {
        retry: RetryOptions {
            initial_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
            ..RetryOptions::default()
        },
        ..TokenManagerOptions::default()
    };
    let auth = EntraIdAuth::from_provider(credential, options).unwrap();
    (emulator, auth)
}

fn assert_aadsts(error: &Error) {
    let entra = error.entra_error().expect("Entra's error body");
    assert!(entra.has_code(AADSTS), "{entra:?}");
    assert!(
        !error.is_retryable(),
        "a refused secret is not retryable: {error:?}"
    );
    assert!(
        matches!(error, Error::AuthenticationFailed { .. }),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aadsts_refusal_reaches_the_application_through_fred_typed() {
    let harness = RedisHarness::standalone().await.unwrap();
    let (emulator, auth) = refused_identity().await;
    let mut errors = auth.subscribe_errors();

    // The documented fail-fast: `ready()` before `init()` gives the identity error itself.
    let ready = auth.manager().ready().await.unwrap_err();
    assert_aadsts(&ready);

    // Without it, `init()` fails inside fred, and the fred error gives the same error back.
    let addr = harness.addrs()[0];
    let config = Config {
        server: ServerConfig::new_centralized(addr.ip().to_string(), addr.port()),
        ..Config::default()
    };
    let client = auth.fred_builder(config).build().unwrap();
    let init = tokio::time::timeout(Duration::from_secs(30), client.init())
        .await
        .expect("init returns")
        .unwrap_err();
    assert_eq!(*init.kind(), ErrorKind::Auth, "{init:?}");
    assert!(init.details().contains("AADSTS7000215"), "{init:?}");
    let typed = token_error(&init).expect("the fred error carries the manager's error");
    assert_aadsts(&typed);
    // No secret in any of it.
    assert!(!format!("{init:?} {init} {typed:?}").contains("right"));

    // `subscribe_errors()` reports the manager's failures with the same typed error.
    let reported = tokio::time::timeout(Duration::from_secs(30), errors.recv())
        .await
        .expect("a refresh failure is reported")
        .unwrap();
    assert_eq!(reported.kind, ReauthErrorKind::Refresh, "{reported:?}");
    assert!(
        reported.entra_error().is_some_and(|e| e.has_code(AADSTS)),
        "{reported:?}"
    );
    assert!(!reported.is_retryable());
    assert_aadsts(reported.token_error().unwrap());
    assert!(emulator.faults(Endpoint::Token).remaining() < 1000);
    let _ = client.quit().await;
}
