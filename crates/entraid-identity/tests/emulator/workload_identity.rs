//! Workload identity and the generic client-assertion credential against the emulator, with Kubernetes
//! service-account tokens it signs and federated identity credentials it checks.

use std::time::Duration;

use entraid_core::Error;
use entraid_identity::{ClientAssertionCredential, Env, WorkloadIdentityCredential};
use entraid_testkit::emulator::{App, Endpoint, Fault, FederatedCredential, KUBERNETES_ISSUER};

use crate::common::{Ctx, TempDir, expect_error};

const SUBJECT: &str = "system:serviceaccount:redis:client";

fn workload(ctx: &Ctx, file: &std::path::Path, reread: Duration) -> WorkloadIdentityCredential {
    let host = ctx.emu.https_url().to_owned();
    WorkloadIdentityCredential::builder()
        .env(Env::from_map([
            ("AZURE_TENANT_ID", ctx.emu.tenant_id()),
            ("AZURE_CLIENT_ID", "wi-app"),
            ("AZURE_FEDERATED_TOKEN_FILE", file.to_str().unwrap()),
            ("AZURE_AUTHORITY_HOST", host.as_str()),
        ]))
        .file_reread_interval(reread)
        .http_client(ctx.http.clone())
        .build()
        .unwrap()
}

#[tokio::test]
async fn exchanges_the_projected_token_and_rereads_the_file() {
    let ctx = Ctx::start().await;
    let app = ctx
        .emu
        .add_app(App::new("wi-app").federated(FederatedCredential::new(KUBERNETES_ISSUER, SUBJECT)))
        .unwrap();
    let dir = TempDir::new("wi");
    let file = dir.path().join("azure-identity-token");
    std::fs::write(
        &file,
        ctx.emu
            .kubernetes_token("redis", "client", Duration::from_secs(3600)),
    )
    .unwrap();

    let c = workload(&ctx, &file, Duration::from_secs(600));
    ctx.expect_token(&c, &app.oid).await;
    let r = ctx.emu.requests_to(Endpoint::Token).pop().unwrap();
    assert_eq!(r.grant_type(), Some("client_credentials"));
    assert_eq!(
        r.param("client_assertion_type"),
        Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    );
    assert_eq!(r.param("client_id"), Some("wi-app"));

    // Within the re-read interval the file is not read again (garbage there now changes nothing) ...
    std::fs::write(&file, "not-a-token").unwrap();
    ctx.expect_token(&c, &app.oid).await;
    // ... and with a zero interval every request reads it: a token for another service account is refused
    // with the seed's AADSTS70021.
    let eager = workload(&ctx, &file, Duration::ZERO);
    std::fs::write(
        &file,
        ctx.emu
            .kubernetes_token("redis", "intruder", Duration::from_secs(3600)),
    )
    .unwrap();
    let err = expect_error(&eager).await;
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
    assert!(err.entra_error().unwrap().has_code(70021), "{err}");
    std::fs::write(
        &file,
        ctx.emu
            .kubernetes_token("redis", "client", Duration::from_secs(3600)),
    )
    .unwrap();
    ctx.expect_token(&eager, &app.oid).await;
}

#[tokio::test]
async fn an_expired_projected_token_is_refused_and_faults_fail_cleanly() {
    let ctx = Ctx::start().await;
    ctx.emu
        .add_app(App::new("wi-app").federated(FederatedCredential::new(KUBERNETES_ISSUER, SUBJECT)))
        .unwrap();
    let dir = TempDir::new("wi-exp");
    let file = dir.path().join("token");
    std::fs::write(
        &file,
        ctx.emu
            .kubernetes_token("redis", "client", Duration::from_secs(60)),
    )
    .unwrap();
    let c = workload(&ctx, &file, Duration::ZERO);
    ctx.emu.set_clock_skew(7200);
    let err = expect_error(&c).await;
    assert!(matches!(err, Error::AuthenticationFailed { .. }), "{err}");
    ctx.emu.set_clock_skew(0);
    ctx.emu
        .faults(Endpoint::Token)
        .push(Fault::Status(429).retry_after(5))
        .push(Fault::Html(500))
        .push(Fault::ResetConnection);
    assert_eq!(
        expect_error(&c).await.retry_after(),
        Some(Duration::from_secs(5))
    );
    assert!(matches!(
        expect_error(&c).await,
        Error::Http {
            status: 500,
            entra: None,
            ..
        }
    ));
    assert!(matches!(expect_error(&c).await, Error::Transport { .. }));
    // A missing file: unavailable.
    std::fs::remove_file(&file).unwrap();
    assert!(expect_error(&c).await.is_unavailable());
}

#[tokio::test]
async fn a_callback_supplies_any_federated_assertion() {
    let ctx = Ctx::start().await;
    let app = ctx
        .emu
        .add_app(App::new("cb-app").federated(FederatedCredential::new(KUBERNETES_ISSUER, SUBJECT)))
        .unwrap();
    let token = ctx
        .emu
        .kubernetes_token("redis", "client", Duration::from_secs(3600));
    let c = ClientAssertionCredential::builder()
        .tenant_id(ctx.emu.tenant_id())
        .client_id("cb-app")
        .authority_host(ctx.host())
        .http_client(ctx.http.clone())
        .assertion_callback(move || {
            let token = token.clone();
            async move { Ok::<_, std::io::Error>(token) }
        })
        .build()
        .unwrap();
    ctx.expect_token(&c, &app.oid).await;

    let failing = ClientAssertionCredential::builder()
        .tenant_id(ctx.emu.tenant_id())
        .client_id("cb-app")
        .authority_host(ctx.host())
        .http_client(ctx.http.clone())
        .assertion_callback(|| async { Err::<String, _>(std::io::Error::other("issuer down")) })
        .build()
        .unwrap();
    let err = expect_error(&failing).await;
    assert!(
        matches!(
            err,
            Error::Custom {
                retryable: true,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("issuer down"));
}
