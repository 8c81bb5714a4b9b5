//! The client secret credential against the emulator: success, the seeds' errors, every transport fault, and the
//! request's shape (headers, form, no redirects).

use std::time::Duration;

use entraid_core::{Error, Secret};
use entraid_identity::{Authority, ClientSecretCredential, USER_AGENT};
use entraid_testkit::emulator::{App, Endpoint, Fault};

use crate::common::{Ctx, TIMEOUT, expect_error};

fn credential(ctx: &Ctx, client_id: &str, secret: &str) -> ClientSecretCredential {
    ClientSecretCredential::builder()
        .tenant_id(ctx.emu.tenant_id())
        .client_id(client_id)
        .secret(Secret::new(secret))
        .authority_host(ctx.host())
        .http_client(ctx.http.clone())
        .build()
        .unwrap()
}

#[tokio::test]
async fn gets_a_token_with_the_right_request() {
    let ctx = Ctx::start().await;
    let app = ctx
        .emu
        .add_app(App::new("secret-app").secret("right-secret"))
        .unwrap();
    let c = credential(&ctx, "secret-app", "right-secret");
    ctx.expect_token(&c, &app.oid).await;
    // A second request gets a second token.
    ctx.expect_token(&c, &app.oid).await;
    assert_eq!(ctx.emu.tokens_issued(&app.oid), 2);

    let requests = ctx.emu.requests_to(Endpoint::Token);
    let r = requests.last().unwrap();
    assert_eq!(r.grant_type(), Some("client_credentials"));
    assert_eq!(r.param("client_id"), Some("secret-app"));
    assert_eq!(r.param("scope"), Some("https://redis.azure.com/.default"));
    assert_eq!(r.header("user-agent"), Some(USER_AGENT));
    assert_eq!(r.header("return-client-request-id"), Some("false"));
    assert_eq!(r.header("x-client-sku"), Some("entraid-identity"));
    let id = r.header("client-request-id").unwrap();
    assert_eq!(id.len(), 36);
    assert_ne!(Some(id), requests[0].header("client-request-id"));
}

#[tokio::test]
async fn a_custom_authority_and_scope_work() {
    let ctx = Ctx::start().await;
    let app = ctx
        .emu
        .add_app(App::new("custom-auth").secret("s"))
        .unwrap();
    let authority =
        Authority::custom(&format!("{}/v2.0", ctx.emu.authority(ctx.emu.tenant_id()))).unwrap();
    let c = ClientSecretCredential::builder()
        .authority(authority)
        .client_id("custom-auth")
        .secret("s".into())
        .scope("acca5fbb-b7e4-4009-81f1-37e38fd66d78/.default")
        .http_client(ctx.http.clone())
        .build()
        .unwrap();
    ctx.expect_token(&c, &app.oid).await;
}

#[tokio::test]
async fn a_wrong_secret_is_an_authentication_failure_with_the_entra_error() {
    let ctx = Ctx::start().await;
    ctx.emu
        .add_app(App::new("secret-app").secret("right"))
        .unwrap();
    let err = expect_error(&credential(&ctx, "secret-app", "wrong-secret")).await;
    assert!(
        matches!(
            err,
            Error::AuthenticationFailed {
                status: Some(401),
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.is_retryable() && !err.is_unavailable());
    let entra = err.entra_error().unwrap();
    assert_eq!(entra.error, "invalid_client");
    assert!(entra.has_code(70002) && entra.has_code(50012), "{entra:?}");
    assert!(entra.trace_id.is_some());
    // The correlation id is the client-request-id we sent.
    let sent = ctx.emu.requests_to(Endpoint::Token)[0]
        .header("client-request-id")
        .unwrap()
        .to_owned();
    assert_eq!(entra.correlation_id.as_deref(), Some(sent.as_str()));
    let text = err.to_string();
    assert!(
        text.contains("AADSTS50012") && !text.contains("wrong-secret"),
        "{text}"
    );
}

#[tokio::test]
async fn unknown_client_and_tenant_are_refused() {
    let ctx = Ctx::start().await;
    let err = expect_error(&credential(&ctx, "nobody", "s")).await;
    assert!(err.entra_error().unwrap().has_code(700016), "{err}");
    let c = ClientSecretCredential::builder()
        .tenant_id("no-such-tenant")
        .client_id("nobody")
        .secret("s".into())
        .authority_host(ctx.host())
        .http_client(ctx.http.clone())
        .build()
        .unwrap();
    let err = expect_error(&c).await;
    assert!(err.entra_error().unwrap().has_code(90002), "{err}");
}

/// Pushes one fault on the token endpoint and returns the error a request gets.
async fn fault(ctx: &Ctx, fault: Fault) -> Error {
    ctx.emu.faults(Endpoint::Token).push(fault);
    expect_error(&credential(ctx, "secret-app", "s")).await
}

#[tokio::test]
async fn every_fault_fails_cleanly_and_the_next_request_works() {
    let ctx = Ctx::start().await;
    let app = ctx.emu.add_app(App::new("secret-app").secret("s")).unwrap();

    let err = fault(&ctx, Fault::Status(429).retry_after(7)).await;
    assert!(matches!(err, Error::Http { status: 429, .. }), "{err}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    assert!(err.is_retryable());

    let err = fault(&ctx, Fault::Status(500)).await;
    assert!(
        matches!(err, Error::Http { status: 500, .. }) && err.is_retryable(),
        "{err}"
    );
    assert!(err.entra_error().is_some());

    let err = fault(&ctx, Fault::Html(502)).await;
    assert!(
        matches!(
            err,
            Error::Http {
                status: 502,
                entra: None,
                ..
            }
        ),
        "{err}"
    );

    let err = fault(&ctx, Fault::MalformedJson).await;
    assert!(matches!(err, Error::InvalidResponse { .. }), "{err}");
    assert!(err.to_string().contains("malformed JSON"), "{err}");

    let err = fault(
        &ctx,
        Fault::Custom {
            status: 200,
            content_type: "text/html".into(),
            body: "<html><body>Sign in</body></html>".into(),
        },
    )
    .await;
    assert!(err.to_string().contains("HTML"), "{err}");

    let err = fault(&ctx, Fault::OversizedBody).await;
    assert!(matches!(err, Error::InvalidResponse { .. }), "{err}");
    assert!(err.to_string().contains("1048576 byte limit"), "{err}");

    let err = fault(&ctx, Fault::ResetConnection).await;
    assert!(
        matches!(err, Error::Transport { .. }) && err.is_retryable(),
        "{err}"
    );

    let err = fault(&ctx, Fault::TruncatedBody).await;
    assert!(matches!(err, Error::Transport { .. }), "{err}");

    let started = std::time::Instant::now();
    let err = fault(&ctx, Fault::Delay(Duration::from_secs(30))).await;
    assert!(
        matches!(err, Error::Timeout { after, .. } if after == TIMEOUT),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // A redirect is returned as an error, never followed.
    let err = fault(
        &ctx,
        Fault::Custom {
            status: 302,
            content_type: "text/plain".into(),
            body: "moved".into(),
        },
    )
    .await;
    assert!(matches!(err, Error::Http { status: 302, .. }), "{err}");

    // Nothing was left broken.
    ctx.expect_token(&credential(&ctx, "secret-app", "s"), &app.oid)
        .await;
}

#[tokio::test]
async fn plain_http_is_refused_for_a_remote_authority_but_the_emulator_needs_its_ca() {
    let ctx = Ctx::start().await;
    ctx.emu.add_app(App::new("secret-app").secret("s")).unwrap();
    // A client that does not trust the test CA fails the TLS handshake.
    let untrusting = entraid_identity::HttpOptions::new()
        .native_roots(false)
        .build()
        .unwrap();
    let c = ClientSecretCredential::builder()
        .tenant_id(ctx.emu.tenant_id())
        .client_id("secret-app")
        .secret("s".into())
        .authority_host(ctx.host())
        .http_client(untrusting)
        .build()
        .unwrap();
    let err = expect_error(&c).await;
    assert!(matches!(err, Error::Transport { .. }), "{err}");
    assert!(entraid_identity::AuthorityHost::custom("http://login.example.com").is_err());
}
