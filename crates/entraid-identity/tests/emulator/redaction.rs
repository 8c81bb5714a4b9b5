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

/// The part-2 credentials: user flows (password, refresh tokens, device codes, browser codes and verifiers), on-
/// behalf-of, CI federation (request tokens, OIDC tokens), the developer tools' tokens and the default chain.
#[tokio::test(flavor = "current_thread")]
async fn no_secret_of_the_user_flows_ci_or_developer_tools_reaches_logs_debug_or_errors() {
    use entraid_identity::{
        AzureCliCredential, AzurePipelinesCredential, DefaultAzureCredential, DeviceCodeCredential,
        GitHubActionsCredential, InteractiveBrowserCredential, OnBehalfOfCredential,
        RefreshTokenCredential, UsernamePasswordCredential,
    };
    use entraid_testkit::emulator::{
        DeviceCodePolicy, Emulator, GITHUB_ISSUER, PIPELINES_ISSUER, REDIS_RESOURCE, User,
    };

    use crate::common::FakeTools;

    let logs = CapturedLogs::default();
    let _guard = tracing::subscriber::set_default(logs.clone());
    let ctx = Ctx::start().await;
    let emu = ctx.emu.clone();
    let password = "user-PASSWORD-9876";
    let alice = emu
        .add_user(User::new("alice@contoso.com", password))
        .unwrap();
    let api_secret = "api-SECRET-5432";
    emu.add_app(App::new("api-app").secret(api_secret)).unwrap();
    emu.add_app(App::new("gh-app").federated(FederatedCredential::new(
        GITHUB_ISSUER,
        emu.github_subject(),
    )))
    .unwrap();
    emu.add_app(App::new("ado-app").federated(FederatedCredential::new(
        PIPELINES_ISSUER,
        Emulator::pipelines_subject("conn-1"),
    )))
    .unwrap();
    emu.set_device_code_policy(DeviceCodePolicy {
        interval: Duration::from_secs(1),
        ..DeviceCodePolicy::approve_after(1, "alice@contoso.com")
    });
    let incoming = emu.issue_token(&alice.oid, "api://api-app").unwrap();
    let cli_token = emu.issue_token(&alice.oid, REDIS_RESOURCE).unwrap();
    let tools = FakeTools::new();
    tools.prints(
        "az",
        &format!(
            r#"{{"accessToken": "{cli_token}", "expires_on": 4102444800, "tokenType": "Bearer"}}"#
        ),
    );
    let host = emu.https_url().to_owned();

    // A refresh token from a first password sign-in, for the refresh-token credential.
    let rt = emu
        .client()
        .post_form(
            &emu.token_url(emu.tenant_id()),
            &[
                ("grant_type", "password"),
                ("client_id", entraid_identity::AZURE_CLI_CLIENT_ID),
                ("username", "alice@contoso.com"),
                ("password", password),
                ("scope", "https://redis.azure.com/.default offline_access"),
            ],
            &[],
        )
        .await
        .unwrap()
        .json()
        .unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let browser_emu = emu.clone();
    let providers: Vec<Box<dyn IdentityProvider>> = vec![
        Box::new(
            UsernamePasswordCredential::builder()
                .tenant_id(emu.tenant_id())
                .username("alice@contoso.com")
                .password(Secret::new(password))
                .authority_host(ctx.host())
                .http_client(ctx.http.clone())
                .build()
                .unwrap(),
        ),
        Box::new(
            RefreshTokenCredential::builder()
                .tenant_id(emu.tenant_id())
                .refresh_token(Secret::new(rt.clone()))
                .authority_host(ctx.host())
                .http_client(ctx.http.clone())
                .build()
                .unwrap(),
        ),
        Box::new(
            DeviceCodeCredential::builder()
                .tenant_id(emu.tenant_id())
                .authority_host(ctx.host())
                .http_client(ctx.http.clone())
                .callback(|_| {})
                .build()
                .unwrap(),
        ),
        Box::new(
            InteractiveBrowserCredential::builder()
                .tenant_id(emu.tenant_id())
                .authority_host(ctx.host())
                .http_client(ctx.http.clone())
                .browser_opener(move |url: String| {
                    let emu = browser_emu.clone();
                    async move {
                        tokio::spawn(async move {
                            let authorize = emu.client().get(&url, &[]).await.unwrap();
                            let location = authorize
                                .header("location")
                                .unwrap()
                                .replace("//localhost:", "//127.0.0.1:");
                            emu.client().get(&location, &[]).await.unwrap();
                        });
                        Ok::<_, std::io::Error>(())
                    }
                })
                .build()
                .unwrap(),
        ),
        Box::new(
            OnBehalfOfCredential::builder()
                .tenant_id(emu.tenant_id())
                .client_id("api-app")
                .client_secret(Secret::new(api_secret))
                .user_assertion(Secret::new(incoming.clone()))
                .authority_host(ctx.host())
                .http_client(ctx.http.clone())
                .build()
                .unwrap(),
        ),
        Box::new(
            GitHubActionsCredential::builder()
                .env(Env::from_map([
                    ("AZURE_TENANT_ID", emu.tenant_id().to_owned()),
                    ("AZURE_CLIENT_ID", "gh-app".to_owned()),
                    ("AZURE_AUTHORITY_HOST", host.clone()),
                    ("ACTIONS_ID_TOKEN_REQUEST_URL", emu.github_oidc_url()),
                    (
                        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
                        emu.github_request_token().to_owned(),
                    ),
                ]))
                .http_client(ctx.http.clone())
                .build()
                .unwrap(),
        ),
        Box::new(
            AzurePipelinesCredential::builder()
                .env(Env::from_map([
                    ("AZURESUBSCRIPTION_TENANT_ID", emu.tenant_id().to_owned()),
                    ("AZURESUBSCRIPTION_CLIENT_ID", "ado-app".to_owned()),
                    (
                        "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID",
                        "conn-1".to_owned(),
                    ),
                    ("AZURE_AUTHORITY_HOST", host.clone()),
                    ("SYSTEM_OIDCREQUESTURI", emu.pipelines_oidc_url()),
                    (
                        "SYSTEM_ACCESSTOKEN",
                        emu.pipelines_request_token().to_owned(),
                    ),
                ]))
                .http_client(ctx.http.clone())
                .build()
                .unwrap(),
        ),
        Box::new(
            AzureCliCredential::builder()
                .search_path(tools.search_path())
                .build()
                .unwrap(),
        ),
        Box::new(
            DefaultAzureCredential::builder()
                .env(Env::from_map([
                    ("AZURE_TENANT_ID", emu.tenant_id().to_owned()),
                    ("AZURE_CLIENT_ID", "api-app".to_owned()),
                    ("AZURE_CLIENT_SECRET", api_secret.to_owned()),
                    ("AZURE_AUTHORITY_HOST", host.clone()),
                ]))
                .http_client(ctx.http.clone())
                .cli_search_path(tools.search_path())
                .build()
                .unwrap(),
        ),
    ];

    let mut tokens = vec![incoming.clone(), cli_token.clone()];
    let mut shown = Vec::new();
    for provider in &providers {
        let response = provider.request_token().await.unwrap();
        shown.push(format!("{response:?}"));
        if let entraid_core::IdentityProviderResponse::TokenResponse(r) = &response {
            tokens.extend(r.refresh_token.iter().map(|t| t.expose_secret().to_owned()));
            tokens.extend(r.id_token.iter().map(|t| t.expose_secret().to_owned()));
        }
        // The second request of a user flow redeems the refresh token it holds.
        let again = provider.request_token().await.unwrap();
        shown.push(format!("{provider:?} {provider:#?} {again:?}"));
        let token = match again {
            entraid_core::IdentityProviderResponse::AccessToken(a) => {
                a.token.expose_secret().to_owned()
            }
            other => token_of(other),
        };
        tokens.push(token);
    }
    // Failures: a refused refresh token, a refused password, a CLI printing garbage with a token in it.
    emu.revoke_refresh_tokens(&alice.oid);
    let err = providers[1].request_token().await.unwrap_err();
    shown.push(format!("{err} {err:?}"));
    let wrong = UsernamePasswordCredential::builder()
        .tenant_id(emu.tenant_id())
        .username("alice@contoso.com")
        .password(Secret::new("wrong-PASSWORD-1111"))
        .authority_host(ctx.host())
        .http_client(ctx.http.clone())
        .build()
        .unwrap();
    let err = wrong.request_token().await.unwrap_err();
    shown.push(format!("{err} {err:?} {wrong:?}"));
    tools.prints("az", &format!("garbage {cli_token}"));
    let err = providers[7].request_token().await.unwrap_err();
    shown.push(format!("{err} {err:?}"));

    let mut secrets = vec![
        password.to_owned(),
        "wrong-PASSWORD-1111".to_owned(),
        api_secret.to_owned(),
        rt,
        emu.github_request_token().to_owned(),
        emu.pipelines_request_token().to_owned(),
    ];
    secrets.extend(tokens.iter().cloned());
    secrets.extend(
        tokens
            .iter()
            .filter_map(|t| t.rsplit('.').next().map(str::to_owned)),
    );
    let lines = logs.lines();
    assert!(
        lines.iter().any(|l| l.contains("identity request")),
        "{lines:?}"
    );
    for secret in secrets.iter().filter(|s| s.len() >= 8) {
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
