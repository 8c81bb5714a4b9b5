//! The environment credential against the emulator: secret, certificate file (PEM and PFX), and the deprecated
//! username/password grant with its seed errors.

use entraid_core::Error;
use entraid_identity::{Env, EnvironmentCredential, EnvironmentCredentialKind};
use entraid_testkit::emulator::{App, Endpoint, User};
use entraid_testkit::keys::TestKey;
use entraid_testkit::tls::ClientCertificate as TestCert;

use crate::common::{Ctx, TempDir, expect_error, fixture};

fn credential(ctx: &Ctx, extra: &[(&str, &str)]) -> EnvironmentCredential {
    let host = ctx.emu.https_url().to_owned();
    let mut vars: Vec<(String, String)> = vec![
        ("AZURE_TENANT_ID".into(), ctx.emu.tenant_id().into()),
        ("AZURE_AUTHORITY_HOST".into(), host),
    ];
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    EnvironmentCredential::builder()
        .env(Env::from_map(vars))
        .http_client(ctx.http.clone())
        .build()
        .unwrap()
}

#[tokio::test]
async fn client_secret_from_the_environment() {
    let ctx = Ctx::start().await;
    let app = ctx
        .emu
        .add_app(App::new("env-app").secret("env-secret"))
        .unwrap();
    let c = credential(
        &ctx,
        &[
            ("AZURE_CLIENT_ID", "env-app"),
            ("AZURE_CLIENT_SECRET", "env-secret"),
        ],
    );
    assert_eq!(c.kind(), EnvironmentCredentialKind::ClientSecret);
    ctx.expect_token(&c, &app.oid).await;
    let c = credential(
        &ctx,
        &[
            ("AZURE_CLIENT_ID", "env-app"),
            ("AZURE_CLIENT_SECRET", "wrong"),
        ],
    );
    let err = expect_error(&c).await;
    assert!(err.entra_error().unwrap().has_code(50012), "{err}");
}

#[tokio::test]
async fn certificate_files_from_the_environment() {
    let ctx = Ctx::start().await;
    let dir = TempDir::new("env-cert");
    let cert = TestCert::self_signed(TestKey::client_app(), "client-app").unwrap();
    let pem_path = dir.path().join("client.pem");
    std::fs::write(&pem_path, cert.pem_bundle()).unwrap();
    let app = ctx
        .emu
        .add_app(App::new("env-cert-app").certificate(&cert))
        .unwrap();
    let c = credential(
        &ctx,
        &[
            ("AZURE_CLIENT_ID", "env-cert-app"),
            ("AZURE_CLIENT_CERTIFICATE_PATH", pem_path.to_str().unwrap()),
            ("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN", "TRUE"),
        ],
    );
    assert_eq!(c.kind(), EnvironmentCredentialKind::ClientCertificate);
    ctx.expect_token(&c, &app.oid).await;

    let leaf = std::fs::read_to_string(fixture("client-app-leaf.pem")).unwrap();
    let app = ctx
        .emu
        .add_app(App::new("env-pfx-app").certificate_pem(leaf))
        .unwrap();
    let pfx = fixture("client-app-chain-aes.pfx");
    let c = credential(
        &ctx,
        &[
            ("AZURE_CLIENT_ID", "env-pfx-app"),
            ("AZURE_CLIENT_CERTIFICATE_PATH", pfx.to_str().unwrap()),
            ("AZURE_CLIENT_CERTIFICATE_PASSWORD", "fixture-password"),
        ],
    );
    ctx.expect_token(&c, &app.oid).await;
}

#[tokio::test]
async fn username_and_password_with_the_seed_errors() {
    let ctx = Ctx::start().await;
    ctx.emu
        .add_app(App::new("ropc-app").public_client())
        .unwrap();
    let user = ctx
        .emu
        .add_user(User::new("dev@contoso.com", "p@ss"))
        .unwrap();
    ctx.emu
        .add_user(User::new("mfa@contoso.com", "p@ss").mfa_required(true))
        .unwrap();
    let c = credential(
        &ctx,
        &[
            ("AZURE_CLIENT_ID", "ropc-app"),
            ("AZURE_USERNAME", "dev@contoso.com"),
            ("AZURE_PASSWORD", "p@ss"),
        ],
    );
    assert_eq!(c.kind(), EnvironmentCredentialKind::UsernamePassword);
    ctx.expect_token(&c, &user.oid).await;
    let r = ctx.emu.requests_to(Endpoint::Token).pop().unwrap();
    assert_eq!(r.grant_type(), Some("password"));
    assert_eq!(r.param("username"), Some("dev@contoso.com"));

    let mfa = credential(
        &ctx,
        &[
            ("AZURE_CLIENT_ID", "ropc-app"),
            ("AZURE_USERNAME", "mfa@contoso.com"),
            ("AZURE_PASSWORD", "p@ss"),
        ],
    );
    let err = expect_error(&mfa).await;
    assert!(matches!(err, Error::AuthenticationFailed { .. }), "{err}");
    let entra = err.entra_error().unwrap();
    assert_eq!(entra.error, "invalid_grant");
    assert!(entra.has_code(50076), "{entra:?}");
}
