//! No secret in any log line, `Debug`, `Display` or error: every flow runs (successes and failures) under a
//! subscriber that captures every tracing event, and the secrets are searched for everywhere.

use std::time::Duration;

use entraid_core::{IdentityProvider, Secret};
use entraid_identity::{
    ClientCertificate, ClientCertificateCredential, ClientSecretCredential, Env,
    EnvironmentCredential, ManagedIdentityCredential, WorkloadIdentityCredential,
};
use entraid_testkit::emulator::{
    App, Endpoint, Fault, FederatedCredential, KUBERNETES_ISSUER, ManagedIdentity,
};
use entraid_testkit::keys::TestKey;
use entraid_testkit::tls::ClientCertificate as TestCert;

use crate::common::{CapturedLogs, Ctx, TempDir, token_of};

#[tokio::test(flavor = "current_thread")]
async fn no_secret_reaches_logs_debug_or_errors() {
    let logs = CapturedLogs::default();
    let _guard = tracing::subscriber::set_default(logs.clone());

    let ctx = Ctx::start().await;
    let client_secret = "client-secret-VALUE-1234";
    ctx.emu
        .add_app(App::new("app").secret(client_secret))
        .unwrap();
    let cert = TestCert::self_signed(TestKey::client_app(), "client-app").unwrap();
    ctx.emu
        .add_app(App::new("cert-app").certificate(&cert))
        .unwrap();
    ctx.emu
        .add_app(App::new("wi-app").federated(FederatedCredential::new(
            KUBERNETES_ISSUER,
            "system:serviceaccount:ns:sa",
        )))
        .unwrap();
    ctx.emu
        .add_managed_identity(ManagedIdentity::system_assigned())
        .unwrap();

    let dir = TempDir::new("redaction");
    let federated = ctx
        .emu
        .kubernetes_token("ns", "sa", Duration::from_secs(3600));
    let file = dir.path().join("token");
    std::fs::write(&file, &federated).unwrap();

    let host = ctx.emu.https_url().to_owned();
    let providers: Vec<Box<dyn IdentityProvider>> = vec![
        Box::new(
            ClientSecretCredential::builder()
                .tenant_id(ctx.emu.tenant_id())
                .client_id("app")
                .secret(Secret::new(client_secret))
                .authority_host(ctx.host())
                .http_client(ctx.http.clone())
                .build()
                .unwrap(),
        ),
        Box::new(
            ClientCertificateCredential::builder()
                .tenant_id(ctx.emu.tenant_id())
                .client_id("cert-app")
                .certificate(ClientCertificate::from_pem(cert.pem_bundle().as_bytes()).unwrap())
                .authority_host(ctx.host())
                .http_client(ctx.http.clone())
                .build()
                .unwrap(),
        ),
        Box::new(
            WorkloadIdentityCredential::builder()
                .env(Env::from_map([
                    ("AZURE_TENANT_ID", ctx.emu.tenant_id()),
                    ("AZURE_CLIENT_ID", "wi-app"),
                    ("AZURE_FEDERATED_TOKEN_FILE", file.to_str().unwrap()),
                    ("AZURE_AUTHORITY_HOST", host.as_str()),
                ]))
                .http_client(ctx.http.clone())
                .build()
                .unwrap(),
        ),
        Box::new(
            ManagedIdentityCredential::builder()
                .env(Env::from_map([
                    ("IDENTITY_ENDPOINT", format!("{host}/msi/token")),
                    ("IDENTITY_HEADER", ctx.emu.app_service_secret().to_owned()),
                ]))
                .http_client(ctx.http.clone())
                .build()
                .unwrap(),
        ),
        Box::new(
            EnvironmentCredential::builder()
                .env(Env::from_map([
                    ("AZURE_TENANT_ID", ctx.emu.tenant_id()),
                    ("AZURE_CLIENT_ID", "app"),
                    ("AZURE_CLIENT_SECRET", client_secret),
                    ("AZURE_AUTHORITY_HOST", host.as_str()),
                ]))
                .http_client(ctx.http.clone())
                .build()
                .unwrap(),
        ),
    ];

    let mut tokens = Vec::new();
    let mut shown = Vec::new();
    for provider in &providers {
        shown.push(format!("{provider:?} {:#?}", provider));
        let response = provider.request_token().await.unwrap();
        shown.push(format!("{response:?}"));
        tokens.push(token_of(response));
        // And a failure of each kind, with its Display and Debug.
        for endpoint in [Endpoint::Token, Endpoint::AppService] {
            ctx.emu.faults(endpoint).push_n(Fault::Status(400), 2);
        }
        let err = provider.request_token().await.unwrap_err();
        shown.push(format!("{err} {err:?}"));
        for endpoint in [Endpoint::Token, Endpoint::AppService] {
            ctx.emu.faults(endpoint).clear();
        }
    }
    // A refused secret, too.
    let wrong = ClientSecretCredential::builder()
        .tenant_id(ctx.emu.tenant_id())
        .client_id("app")
        .secret(Secret::new("wrong-secret-VALUE-5678"))
        .authority_host(ctx.host())
        .http_client(ctx.http.clone())
        .build()
        .unwrap();
    let err = wrong.request_token().await.unwrap_err();
    shown.push(format!("{err} {err:?} {wrong:?}"));

    let lines = logs.lines();
    assert!(
        lines.iter().any(|l| l.contains("identity request")),
        "the capture saw no log line: {lines:?}"
    );
    let key_body: String = TestKey::client_app()
        .private_key_pem()
        .lines()
        .nth(1)
        .unwrap()
        .to_owned();
    let mut secrets: Vec<String> = vec![
        client_secret.to_owned(),
        "wrong-secret-VALUE-5678".to_owned(),
        ctx.emu.app_service_secret().to_owned(),
        federated.clone(),
        key_body,
    ];
    secrets.extend(tokens.iter().cloned());
    // Each JWT's signature alone must not appear either.
    secrets.extend(
        tokens
            .iter()
            .filter_map(|t| t.rsplit('.').next().map(str::to_owned)),
    );
    for secret in &secrets {
        for line in lines.iter().filter(|l| !l.contains(" entraid_testkit")) {
            assert!(
                !line.contains(secret.as_str()),
                "a secret is in a log line: {line}"
            );
        }
        for text in &shown {
            assert!(
                !text.contains(secret.as_str()),
                "a secret is in Debug/Display: {text}"
            );
        }
    }
}
