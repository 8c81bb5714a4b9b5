//! Managed identity against the emulator over HTTPS with its CA: IMDS (system- and user-assigned by all three
//! ids, the retry policy against 410/429/500/timeouts/resets, every fault), App Service, Azure Arc (the key-file
//! challenge and its checks), Cloud Shell, Azure ML, and Service Fabric's pinned certificate.

use std::path::Path;
use std::time::Duration;

use entraid_core::Error;
use entraid_identity::{
    Env, ImdsRetryPolicy, ManagedIdentityCredential, ManagedIdentitySource, UserAssignedId,
};
use entraid_testkit::emulator::{Emulator, Endpoint, Fault, ManagedIdentity};

use crate::common::{Ctx, TIMEOUT, TempDir, expect_error};

/// A retry policy like the default one, with short delays (the schedule itself is tested with paused time in
/// the crate's unit tests).
fn fast() -> ImdsRetryPolicy {
    ImdsRetryPolicy::new(6, Duration::from_millis(10), Duration::from_secs(2))
}

fn imds(
    ctx: &Ctx,
    id: Option<UserAssignedId>,
    policy: ImdsRetryPolicy,
) -> ManagedIdentityCredential {
    let mut b = ManagedIdentityCredential::builder()
        .env(Env::from_map::<&str, &str>([]))
        .arc_himds_path("/nonexistent/himds")
        .imds_endpoint(format!(
            "{}/metadata/identity/oauth2/token",
            ctx.emu.https_url()
        ))
        .imds_retry_policy(policy)
        .http_client(ctx.http.clone());
    if let Some(id) = id {
        b = b.user_assigned(id);
    }
    let c = b.build().unwrap();
    assert_eq!(c.source(), ManagedIdentitySource::Imds);
    c
}

fn from_env(
    ctx: &Ctx,
    vars: &[(&str, &str)],
    id: Option<UserAssignedId>,
) -> ManagedIdentityCredential {
    let mut b = ManagedIdentityCredential::builder()
        .env(Env::from_map(
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        ))
        .arc_himds_path("/nonexistent/himds")
        .http_client(ctx.http.clone());
    if let Some(id) = id {
        b = b.user_assigned(id);
    }
    b.build().unwrap()
}

#[tokio::test]
async fn imds_system_and_user_assigned_by_every_id() {
    let ctx = Ctx::start().await;
    let system = ctx
        .emu
        .add_managed_identity(ManagedIdentity::system_assigned())
        .unwrap();
    let user = ctx
        .emu
        .add_managed_identity(ManagedIdentity::user_assigned())
        .unwrap();
    ctx.expect_token(&imds(&ctx, None, fast()), &system.oid)
        .await;
    let r = ctx.emu.requests_to(Endpoint::Imds).pop().unwrap();
    assert!(r.tls);
    assert_eq!(r.header("metadata"), Some("true"));
    assert_eq!(r.param("api-version"), Some("2018-02-01"));
    assert_eq!(r.param("resource"), Some("https://redis.azure.com"));
    for id in [
        UserAssignedId::ClientId(user.client_id.clone().unwrap()),
        UserAssignedId::ObjectId(user.oid.clone()),
        UserAssignedId::ResourceId(user.resource_id.clone().unwrap()),
    ] {
        ctx.expect_token(&imds(&ctx, Some(id), fast()), &user.oid)
            .await;
    }
    let names: Vec<String> = ctx
        .emu
        .requests_to(Endpoint::Imds)
        .iter()
        .skip(1)
        .flat_map(|r| {
            r.query
                .iter()
                .map(|(k, _)| k.clone())
                .skip(2)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(names, ["client_id", "object_id", "msi_res_id"]);
}

#[tokio::test]
async fn imds_unknown_identity_is_the_entra_error() {
    let ctx = Ctx::start().await;
    ctx.emu
        .add_managed_identity(ManagedIdentity::system_assigned())
        .unwrap();
    let err = expect_error(&imds(
        &ctx,
        Some(UserAssignedId::ClientId("nobody".into())),
        fast(),
    ))
    .await;
    assert!(
        matches!(
            err,
            Error::AuthenticationFailed {
                status: Some(400),
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("Identity not found"), "{err}");
    assert_eq!(
        ctx.emu.requests_to(Endpoint::Imds).len(),
        1,
        "a 400 is not retried"
    );
}

#[tokio::test]
async fn imds_retries_410_then_succeeds() {
    let ctx = Ctx::start().await;
    let system = ctx
        .emu
        .add_managed_identity(ManagedIdentity::system_assigned())
        .unwrap();
    ctx.emu.faults(Endpoint::Imds).push_n(Fault::Status(410), 3);
    ctx.expect_token(&imds(&ctx, None, fast()), &system.oid)
        .await;
    assert_eq!(ctx.emu.requests_to(Endpoint::Imds).len(), 4);
}

#[tokio::test]
async fn imds_honours_retry_after_on_429() {
    let ctx = Ctx::start().await;
    let system = ctx
        .emu
        .add_managed_identity(ManagedIdentity::system_assigned())
        .unwrap();
    ctx.emu
        .faults(Endpoint::Imds)
        .push(Fault::Status(429).retry_after(1));
    let started = std::time::Instant::now();
    ctx.expect_token(&imds(&ctx, None, fast()), &system.oid)
        .await;
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(ctx.emu.requests_to(Endpoint::Imds).len(), 2);
    // A Retry-After beyond the cap stops the retries; the error carries it for the caller.
    ctx.emu
        .faults(Endpoint::Imds)
        .push(Fault::Status(429).retry_after(60));
    let err = expect_error(&imds(&ctx, None, fast())).await;
    assert!(matches!(err, Error::Http { status: 429, .. }), "{err}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(60)));
}

#[tokio::test]
async fn imds_500_until_the_retries_run_out() {
    let ctx = Ctx::start().await;
    ctx.emu
        .add_managed_identity(ManagedIdentity::system_assigned())
        .unwrap();
    ctx.emu
        .faults(Endpoint::Imds)
        .push_n(Fault::Status(500), 10);
    let err = expect_error(&imds(&ctx, None, fast())).await;
    assert!(
        matches!(err, Error::Http { status: 500, .. }) && err.is_retryable(),
        "{err}"
    );
    assert_eq!(
        ctx.emu.requests_to(Endpoint::Imds).len(),
        7,
        "1 try + 6 retries"
    );
}

#[tokio::test]
async fn imds_timeouts_and_resets_are_retried_or_reported() {
    let ctx = Ctx::start().await;
    let system = ctx
        .emu
        .add_managed_identity(ManagedIdentity::system_assigned())
        .unwrap();
    ctx.emu
        .faults(Endpoint::Imds)
        .push(Fault::Delay(Duration::from_secs(30)))
        .push(Fault::ResetConnection);
    ctx.expect_token(&imds(&ctx, None, fast()), &system.oid)
        .await;

    ctx.emu
        .faults(Endpoint::Imds)
        .push(Fault::Delay(Duration::from_secs(30)));
    let err = expect_error(&imds(&ctx, None, ImdsRetryPolicy::none())).await;
    assert!(
        matches!(err, Error::Timeout { after, .. } if after == TIMEOUT),
        "{err}"
    );
    ctx.emu.faults(Endpoint::Imds).push(Fault::ResetConnection);
    let err = expect_error(&imds(&ctx, None, ImdsRetryPolicy::none())).await;
    assert!(matches!(err, Error::Transport { .. }), "{err}");
}

#[tokio::test]
async fn imds_bad_bodies_fail_cleanly() {
    let ctx = Ctx::start().await;
    ctx.emu
        .add_managed_identity(ManagedIdentity::system_assigned())
        .unwrap();
    let c = imds(&ctx, None, ImdsRetryPolicy::none());
    ctx.emu
        .faults(Endpoint::Imds)
        .push(Fault::MalformedJson)
        .push(Fault::Html(502))
        .push(Fault::OversizedBody)
        .push(Fault::TruncatedBody);
    let err = expect_error(&c).await;
    assert!(err.to_string().contains("malformed JSON"), "{err}");
    let err = expect_error(&c).await;
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
    let err = expect_error(&c).await;
    assert!(err.to_string().contains("byte limit"), "{err}");
    let err = expect_error(&c).await;
    assert!(matches!(err, Error::Transport { .. }), "{err}");
}

#[tokio::test]
async fn imds_nobody_listening_is_unavailable() {
    let ctx = Ctx::start().await;
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let c = ManagedIdentityCredential::builder()
        .env(Env::from_map::<&str, &str>([]))
        .arc_himds_path("/nonexistent/himds")
        .imds_endpoint(format!(
            "http://127.0.0.1:{port}/metadata/identity/oauth2/token"
        ))
        .http_client(ctx.http.clone())
        .build()
        .unwrap();
    let err = expect_error(&c).await;
    assert!(err.is_unavailable(), "{err}");
}

#[tokio::test]
async fn app_service_with_its_header_and_parameter_names() {
    let ctx = Ctx::start().await;
    let system = ctx
        .emu
        .add_managed_identity(ManagedIdentity::system_assigned())
        .unwrap();
    let user = ctx
        .emu
        .add_managed_identity(ManagedIdentity::user_assigned())
        .unwrap();
    let endpoint = format!("{}/msi/token", ctx.emu.https_url());
    let vars = [
        ("IDENTITY_ENDPOINT", endpoint.as_str()),
        ("IDENTITY_HEADER", ctx.emu.app_service_secret()),
    ];
    let c = from_env(&ctx, &vars, None);
    assert_eq!(c.source(), ManagedIdentitySource::AppService);
    ctx.expect_token(&c, &system.oid).await;
    let resource_id = UserAssignedId::ResourceId(user.resource_id.clone().unwrap());
    ctx.expect_token(&from_env(&ctx, &vars, Some(resource_id)), &user.oid)
        .await;
    let r = ctx.emu.requests_to(Endpoint::AppService).pop().unwrap();
    assert_eq!(r.param("api-version"), Some("2019-08-01"));
    assert!(r.param("mi_res_id").is_some() && r.param("msi_res_id").is_none());
    assert_eq!(r.header("x-identity-header"), Some("[redacted]"));

    let wrong = [
        ("IDENTITY_ENDPOINT", endpoint.as_str()),
        ("IDENTITY_HEADER", "wrong"),
    ];
    let err = expect_error(&from_env(&ctx, &wrong, None)).await;
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

    ctx.emu
        .faults(Endpoint::AppService)
        .push(Fault::Status(500))
        .push(Fault::Status(429).retry_after(3));
    let err = expect_error(&c).await;
    assert!(matches!(err, Error::Http { status: 500, .. }), "{err}");
    let err = expect_error(&c).await;
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
    assert_eq!(
        ctx.emu.requests_to(Endpoint::AppService).len(),
        5,
        "App Service is not retried here"
    );
}

async fn arc_ctx(dir: &Path) -> Ctx {
    Ctx::with(Emulator::builder().arc_key_dir(dir).start().await.unwrap())
}

fn arc(ctx: &Ctx, tokens_dir: &Path, id: Option<UserAssignedId>) -> ManagedIdentityCredential {
    let endpoint = format!("{}/arc/metadata/identity/oauth2/token", ctx.emu.https_url());
    let mut b = ManagedIdentityCredential::builder()
        .env(Env::from_map([
            ("IDENTITY_ENDPOINT", endpoint.as_str()),
            ("IMDS_ENDPOINT", "http://127.0.0.1:40342"),
        ]))
        .arc_himds_path("/nonexistent/himds")
        .arc_tokens_dir(tokens_dir)
        .http_client(ctx.http.clone());
    if let Some(id) = id {
        b = b.user_assigned(id);
    }
    let c = b.build().unwrap();
    assert_eq!(c.source(), ManagedIdentitySource::AzureArc);
    c
}

#[tokio::test]
async fn azure_arc_answers_its_challenge_from_the_tokens_folder() {
    let dir = TempDir::new("arc");
    let ctx = arc_ctx(dir.path()).await;
    let system = ctx
        .emu
        .add_managed_identity(ManagedIdentity::system_assigned())
        .unwrap();
    ctx.expect_token(&arc(&ctx, dir.path(), None), &system.oid)
        .await;
    let requests = ctx.emu.requests_to(Endpoint::AzureArc);
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].status, 401);
    assert_eq!(
        requests[1].header("authorization"),
        Some("Basic [redacted]")
    );
    assert_eq!(requests[1].param("api-version"), Some("2020-06-01"));

    // A challenge naming a file outside the configured folder is refused before anything is read.
    let other = TempDir::new("arc-other");
    let err = expect_error(&arc(&ctx, other.path(), None)).await;
    assert!(matches!(err, Error::AuthenticationFailed { .. }), "{err}");
    assert!(err.to_string().contains("not directly inside"), "{err}");
}

#[tokio::test]
async fn azure_arc_user_assigned_fails_closed_unless_confirmed() {
    let dir = TempDir::new("arc-ua");
    let ctx = arc_ctx(dir.path()).await;
    ctx.emu
        .add_managed_identity(ManagedIdentity::system_assigned())
        .unwrap();
    let user = ctx
        .emu
        .add_managed_identity(ManagedIdentity::user_assigned())
        .unwrap();
    let by_client = || UserAssignedId::ClientId(user.client_id.clone().unwrap());
    // Real Arc ignores the selector and answers for the system identity: refused.
    let err = expect_error(&arc(&ctx, dir.path(), Some(by_client()))).await;
    assert!(err.to_string().contains("another identity"), "{err}");
    // An Arc that honours it (and says so) is accepted, by client id and by object id (the token's oid).
    ctx.emu.set_arc_honours_selectors(true);
    ctx.expect_token(&arc(&ctx, dir.path(), Some(by_client())), &user.oid)
        .await;
    ctx.expect_token(
        &arc(
            &ctx,
            dir.path(),
            Some(UserAssignedId::ObjectId(user.oid.clone())),
        ),
        &user.oid,
    )
    .await;
}

#[tokio::test]
async fn azure_arc_bad_challenges_and_faults() {
    let dir = TempDir::new("arc-bad");
    let ctx = arc_ctx(dir.path()).await;
    ctx.emu
        .add_managed_identity(ManagedIdentity::system_assigned())
        .unwrap();
    // A 401 without a WWW-Authenticate header names no key file.
    ctx.emu.faults(Endpoint::AzureArc).push(Fault::Custom {
        status: 401,
        content_type: "application/json".into(),
        body: "{}".into(),
    });
    let err = expect_error(&arc(&ctx, dir.path(), None)).await;
    assert!(err.to_string().contains("WWW-Authenticate"), "{err}");
    // A 200 without the challenge is not trusted.
    ctx.emu.faults(Endpoint::AzureArc).push(Fault::Custom {
        status: 200,
        content_type: "application/json".into(),
        body: r#"{"access_token":"x"}"#.into(),
    });
    let err = expect_error(&arc(&ctx, dir.path(), None)).await;
    assert!(err.to_string().contains("401 challenge"), "{err}");
    // Faults on the first request and on the answer to the challenge.
    ctx.emu.faults(Endpoint::AzureArc).push(Fault::Status(500));
    let err = expect_error(&arc(&ctx, dir.path(), None)).await;
    assert!(matches!(err, Error::Http { status: 500, .. }), "{err}");
    ctx.emu
        .faults(Endpoint::AzureArc)
        .push(Fault::OversizedBody);
    let err = expect_error(&arc(&ctx, dir.path(), None)).await;
    assert!(err.to_string().contains("byte limit"), "{err}");
}

#[tokio::test]
async fn cloud_shell_posts_the_resource() {
    let ctx = Ctx::start().await;
    let system = ctx
        .emu
        .add_managed_identity(ManagedIdentity::system_assigned())
        .unwrap();
    let endpoint = format!("{}/cloudshell/oauth2/token", ctx.emu.https_url());
    let c = from_env(&ctx, &[("MSI_ENDPOINT", endpoint.as_str())], None);
    assert_eq!(c.source(), ManagedIdentitySource::CloudShell);
    ctx.expect_token(&c, &system.oid).await;
    let r = ctx.emu.requests_to(Endpoint::CloudShell).pop().unwrap();
    assert_eq!(r.method, "POST");
    assert_eq!(r.param("resource"), Some("https://redis.azure.com"));
    assert_eq!(r.header("metadata"), Some("true"));
    ctx.emu
        .faults(Endpoint::CloudShell)
        .push(Fault::MalformedJson);
    assert!(matches!(
        expect_error(&c).await,
        Error::InvalidResponse { .. }
    ));
}

#[tokio::test]
async fn azure_ml_with_its_secret_and_client_id() {
    let ctx = Ctx::start().await;
    let system = ctx
        .emu
        .add_managed_identity(ManagedIdentity::system_assigned())
        .unwrap();
    let user = ctx
        .emu
        .add_managed_identity(ManagedIdentity::user_assigned())
        .unwrap();
    let endpoint = format!("{}/azureml/msi/token", ctx.emu.https_url());
    let vars = [
        ("MSI_ENDPOINT", endpoint.as_str()),
        ("MSI_SECRET", ctx.emu.azure_ml_secret()),
    ];
    let c = from_env(&ctx, &vars, None);
    assert_eq!(c.source(), ManagedIdentitySource::AzureMl);
    ctx.expect_token(&c, &system.oid).await;
    let client_id = user.client_id.clone().unwrap();
    ctx.expect_token(
        &from_env(
            &ctx,
            &vars,
            Some(UserAssignedId::ClientId(client_id.clone())),
        ),
        &user.oid,
    )
    .await;
    // DEFAULT_IDENTITY_CLIENT_ID picks the identity when none is configured.
    let mut with_default = vars.to_vec();
    with_default.push(("DEFAULT_IDENTITY_CLIENT_ID", client_id.as_str()));
    ctx.expect_token(&from_env(&ctx, &with_default, None), &user.oid)
        .await;
    let r = ctx.emu.requests_to(Endpoint::AzureMl).pop().unwrap();
    assert_eq!(r.param("clientid"), Some(client_id.as_str()));
    assert_eq!(r.param("api-version"), Some("2017-09-01"));

    let wrong = [("MSI_ENDPOINT", endpoint.as_str()), ("MSI_SECRET", "wrong")];
    let err = expect_error(&from_env(&ctx, &wrong, None)).await;
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
}

#[tokio::test]
async fn service_fabric_pins_the_server_certificate_thumbprint() {
    let ctx = Ctx::start().await;
    let system = ctx
        .emu
        .add_managed_identity(ManagedIdentity::system_assigned())
        .unwrap();
    // What the HTTPS listener presents (the request below succeeds only if it is).
    let thumbprint = ctx.emu.https_cert_thumbprint().to_owned();
    // The emulator has no Service Fabric endpoint: its App Service path answers with a scripted token, which is
    // enough to test the pinned TLS and the request.
    let endpoint = format!("{}/msi/token", ctx.emu.https_url());
    let sf = |thumbprint: &str| {
        from_env(
            &ctx,
            &[
                ("IDENTITY_ENDPOINT", endpoint.as_str()),
                ("IDENTITY_HEADER", "sf-secret"),
                ("IDENTITY_SERVER_THUMBPRINT", thumbprint),
            ],
            None,
        )
    };
    // A wrong thumbprint: the TLS handshake fails, no request is made.
    let wrong = sf(&"00".repeat(20));
    assert_eq!(wrong.source(), ManagedIdentitySource::ServiceFabric);
    let err = expect_error(&wrong).await;
    assert!(matches!(err, Error::Transport { .. }), "{err}");
    assert!(ctx.emu.requests_to(Endpoint::AppService).is_empty());

    let token = ctx
        .emu
        .issue_token(&system.oid, "https://redis.azure.com")
        .unwrap();
    let expires_on = ctx.emu.now_unix() + 3600;
    ctx.emu.faults(Endpoint::AppService).push(Fault::Custom {
        status: 200,
        content_type: "application/json".into(),
        body: format!(
            r#"{{"access_token":"{token}","expires_on":"{expires_on}","token_type":"Bearer","resource":"https://redis.azure.com"}}"#
        ),
    });
    // Upper-case with colons, as some tools print thumbprints, is accepted.
    let pretty = thumbprint
        .to_ascii_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":");
    ctx.expect_token(&sf(&pretty), &system.oid).await;
    let r = ctx.emu.requests_to(Endpoint::AppService).pop().unwrap();
    assert_eq!(r.param("api-version"), Some("2019-07-01-preview"));
    assert_eq!(r.header("secret"), Some("[redacted]"));
    assert_eq!(r.header("accept"), Some("application/json"));
}

/// The four answers that panicked a plain `request_token()` (issue 12), and the AM/PM `expires_on` that was
/// refused, through the whole pipeline: each gives a token whose expiry is the token's own `exp` (or the date).
#[tokio::test(flavor = "current_thread")]
async fn hostile_expiries_from_imds_fall_back_on_the_tokens_exp() {
    use entraid_core::{IdentityProvider as _, IdentityProviderResponse, Token};
    let logs = crate::common::CapturedLogs::default();
    let _guard = tracing::subscriber::set_default(logs.clone());
    let ctx = Ctx::start().await;
    let system = ctx
        .emu
        .add_managed_identity(ManagedIdentity::system_assigned())
        .unwrap();
    let token = ctx
        .emu
        .issue_token(&system.oid, "https://redis.azure.com")
        .unwrap();
    let exp = crate::common::exp_of(&token);
    let exp_at = std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(exp).unwrap());
    let credential = imds(&ctx, None, ImdsRetryPolicy::none());
    for (field, value) in [
        ("expires_on", r#""2025-06-17T14:30:00+1é1""#),
        ("expires_in", "1e300"),
        ("expires_on", r#""99999999999999999999""#),
        ("expires_on", r#""Sun, 06 Nov 300000000000 08:49:37 GMT""#),
    ] {
        ctx.emu.faults(Endpoint::Imds).push(Fault::Custom {
            status: 200,
            content_type: "application/json".into(),
            body: format!(
                r#"{{"access_token":"{token}","{field}":{value},"resource":"https://redis.azure.com","token_type":"Bearer"}}"#
            ),
        });
        let response = credential.request_token().await.unwrap();
        let IdentityProviderResponse::TokenResponse(r) = &response else {
            panic!("expected a token response");
        };
        assert_eq!(r.unreadable().len(), 1, "{value}");
        assert_eq!(r.unreadable()[0].field, field);
        let parsed = Token::from_response(response, std::time::SystemTime::now()).unwrap();
        assert_eq!(parsed.expires_on(), exp_at, "{value}");
        // The DEBUG note names the field, never the value or the token.
        let lines = logs.lines();
        assert!(
            lines
                .iter()
                .any(|l| l.contains("could not be read") && l.contains(&format!("field={field}"))),
            "no DEBUG note for {field}: {lines:#?}"
        );
        assert!(
            !lines
                .iter()
                .any(|l| l.contains(&token) || l.contains("300000000000"))
        );
    }
    // The 12-hour form older App Service and MSI_ENDPOINT hosts send is read, not passed over.
    ctx.emu.faults(Endpoint::Imds).push(Fault::Custom {
        status: 200,
        content_type: "application/json".into(),
        body: format!(
            r#"{{"access_token":"{token}","expires_on":"12/01/2030 09:30:00 PM +00:00","token_type":"Bearer"}}"#
        ),
    });
    match credential.request_token().await.unwrap() {
        IdentityProviderResponse::TokenResponse(r) => {
            assert!(r.unreadable().is_empty());
            // 2030-12-01T21:30:00Z
            assert_eq!(
                r.expires_on,
                Some(std::time::UNIX_EPOCH + Duration::from_secs(1_922_391_000))
            );
        }
        other => panic!("expected a token response, got {}", other.kind()),
    }
}

/// A 503 whose `Retry-After` HTTP date is in the year 300000000000 panicked the date parser (issue 12). Served by
/// a one-shot raw HTTP server, since the emulator only sends `Retry-After` in seconds.
#[tokio::test]
async fn a_retry_after_date_beyond_9999_is_ignored() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/metadata/identity/oauth2/token",
        listener.local_addr().unwrap()
    );
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = vec![0u8; 4096];
        let _ = stream.read(&mut request).await.unwrap();
        stream
            .write_all(
                b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: Sun, 06 Nov 300000000000 08:49:37 GMT\r\n\
                  Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
            )
            .await
            .unwrap();
    });
    let credential = ManagedIdentityCredential::builder()
        .env(Env::from_map::<&str, &str>([]))
        .arc_himds_path("/nonexistent/himds")
        .imds_endpoint(url)
        .imds_retry_policy(ImdsRetryPolicy::none())
        .build()
        .unwrap();
    let err = expect_error(&credential).await;
    assert!(matches!(err, Error::Http { status: 503, .. }), "{err}");
    assert_eq!(err.retry_after(), None);
    server.await.unwrap();
}
