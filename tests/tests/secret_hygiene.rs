//! Secret hygiene across every flow at once: each credential of `entraid-identity` against the emulator (every
//! managed-identity source the emulator serves, client secret, certificate, workload identity, GitHub Actions and
//! Azure Pipelines federation, username/password, device code, browser authorization code, refresh token,
//! on-behalf-of, fake `az` and `azd`), each also made to fail, and then the token manager and the fred adapter
//! through rotations, refused re-authentications and a RESP2 subscriber, all with every log line captured at
//! TRACE: `tracing` events and spans of every crate and `log` records (fred, rustls). No token, client secret,
//! private key, assertion, refresh token, device code, authorization code, password or endpoint secret may appear
//! in any captured line, nor in the `Debug`/`Display` of any credential, response or error produced.
//!
//! One test in this file: it installs the process-wide subscriber and logger (nextest runs each test in its own
//! process; under `cargo test` this binary holds only this test).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed unwrap fails the test"
)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use entraid_core::{IdentityProvider, IdentityProviderResponse, Secret};
use entraid_fred::fred::prelude::*;
use entraid_fred::fred::types::RespVersion;
use entraid_fred::fred::types::config::{Config, ServerConfig};
use entraid_fred::{EntraIdAuth, ReauthOptions};
use entraid_identity::{
    AuthorityHost, AzureCliCredential, AzureDeveloperCliCredential, AzurePipelinesCredential,
    ClientCertificate, ClientCertificateCredential, ClientSecretCredential, DeviceCodeCredential,
    Env, GitHubActionsCredential, HttpClient, HttpOptions, ImdsRetryPolicy,
    InteractiveBrowserCredential, ManagedIdentityCredential, OnBehalfOfCredential,
    RefreshTokenCredential, UsernamePasswordCredential, WorkloadIdentityCredential,
};
use entraid_manager::{RetryOptions, TokenEvent, TokenManager, TokenManagerOptions};
use entraid_testkit::emulator::{
    App, DeviceCodePolicy, Emulator, Endpoint, Fault, FederatedCredential, GITHUB_ISSUER,
    KUBERNETES_ISSUER, ManagedIdentity, PIPELINES_ISSUER, REDIS_RESOURCE, User,
};
use entraid_testkit::keys::TestKey;
use entraid_testkit::redis::{AccessPolicy, RedisHarness};
use entraid_testkit::tls::ClientCertificate as TestCert;

/// Every captured line: tracing events and spans, and `log` records.
static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn capture(line: String) {
    LINES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(line);
}

struct Visitor<'a>(&'a mut String);

impl tracing::field::Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push_str(&format!(" {}={value}", field.name()));
    }

    fn record_error(
        &mut self,
        field: &tracing::field::Field,
        value: &(dyn std::error::Error + 'static),
    ) {
        // The whole chain, as a formatting subscriber would print it.
        let mut text = format!(" {}={value} {value:?}", field.name());
        let mut source = value.source();
        while let Some(s) = source {
            text.push_str(&format!(" caused by: {s} {s:?}"));
            source = s.source();
        }
        self.0.push_str(&text);
    }
}

/// A subscriber that keeps every event and span at every level, with all fields.
struct Capture {
    next_span: std::sync::atomic::AtomicU64,
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }

    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut line = format!(
            "span {} {}",
            span.metadata().target(),
            span.metadata().name()
        );
        span.record(&mut Visitor(&mut line));
        capture(line);
        let id = self
            .next_span
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::span::Id::from_u64(id.max(1))
    }

    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut line = String::from("record");
        values.record(&mut Visitor(&mut line));
        capture(line);
    }

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = format!("{} {}", event.metadata().level(), event.metadata().target());
        event.record(&mut Visitor(&mut line));
        capture(line);
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

/// A `log` logger keeping every record (fred and rustls log through `log`).
struct LogCapture;

impl log::Log for LogCapture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        capture(format!(
            "log {} {} {}",
            record.level(),
            record.target(),
            record.args()
        ));
    }

    fn flush(&self) {}
}

fn install_capture() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        tracing::subscriber::set_global_default(Capture {
            next_span: std::sync::atomic::AtomicU64::new(1),
        })
        .expect("the only subscriber in this process");
        log::set_logger(&LogCapture).expect("the only logger in this process");
        log::set_max_level(log::LevelFilter::Trace);
    });
}

/// A temporary folder, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "entraid-hygiene-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fake tool in `dir` printing `stdout` and exiting 0.
fn fake_tool(dir: &Path, name: &str, stdout: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    assert!(!stdout.contains('\''));
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\nprintf '%s\\n' '{stdout}'\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn http(emu: &Emulator) -> HttpClient {
    HttpOptions::new()
        .native_roots(false)
        .timeout(Duration::from_secs(5))
        .add_root_certificates_pem(emu.ca_cert_pem().as_bytes())
        .unwrap()
        .build()
        .unwrap()
}

/// The access token (and refresh / id tokens) of a response.
fn tokens_of(response: &IdentityProviderResponse) -> Vec<String> {
    match response {
        IdentityProviderResponse::TokenResponse(r) => {
            let mut all = vec![r.access_token.expose_secret().to_owned()];
            all.extend(r.refresh_token.iter().map(|t| t.expose_secret().to_owned()));
            all.extend(r.id_token.iter().map(|t| t.expose_secret().to_owned()));
            all
        }
        IdentityProviderResponse::AccessToken(a) => vec![a.token.expose_secret().to_owned()],
        IdentityProviderResponse::RawToken(t) => vec![t.expose_secret().to_owned()],
        _ => Vec::new(),
    }
}

/// Every file's contents under `dir` (the Arc challenge keys the emulator wrote).
fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::too_many_lines,
    reason = "one inventory of every flow, read top to bottom"
)]
async fn no_secret_of_any_flow_or_the_fred_adapter_reaches_logs_debug_or_errors() {
    install_capture();
    let arc_dir = TempDir::new("arc");
    let emu = Emulator::builder()
        .arc_key_dir(arc_dir.path())
        .start()
        .await
        .unwrap();
    let http = http(&emu);
    let host = AuthorityHost::custom(emu.https_url()).unwrap();
    let https = emu.https_url().to_owned();
    let tenant = emu.tenant_id().to_owned();

    // Principals and their secrets.
    let client_secret = "hygiene-CLIENT-secret-0001";
    emu.add_app(App::new("secret-app").secret(client_secret))
        .unwrap();
    let cert = TestCert::self_signed(TestKey::client_app(), "hygiene-cert").unwrap();
    emu.add_app(App::new("cert-app").certificate(&cert))
        .unwrap();
    emu.add_app(App::new("wi-app").federated(FederatedCredential::new(
        KUBERNETES_ISSUER,
        "system:serviceaccount:ns:sa",
    )))
    .unwrap();
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
    let api_secret = "hygiene-API-secret-0002";
    emu.add_app(App::new("api-app").secret(api_secret)).unwrap();
    let password = "hygiene-PASSWORD-0003";
    let alice = emu
        .add_user(User::new("alice@contoso.com", password))
        .unwrap();
    emu.add_managed_identity(ManagedIdentity::system_assigned())
        .unwrap();
    emu.set_device_code_policy(DeviceCodePolicy {
        interval: Duration::from_secs(1),
        ..DeviceCodePolicy::approve_after(1, "alice@contoso.com")
    });

    let dir = TempDir::new("files");
    let k8s_token = emu.kubernetes_token("ns", "sa", Duration::from_secs(3600));
    let k8s_file = dir.path().join("k8s-token");
    std::fs::write(&k8s_file, &k8s_token).unwrap();
    let incoming = emu.issue_token(&alice.oid, "api://api-app").unwrap();
    let cli_token = emu.issue_token(&alice.oid, REDIS_RESOURCE).unwrap();
    let azd_token = emu.issue_token(&alice.oid, REDIS_RESOURCE).unwrap();
    let tools = TempDir::new("tools");
    fake_tool(
        tools.path(),
        "az",
        &format!(
            r#"{{"accessToken": "{cli_token}", "expires_on": 4102444800, "tokenType": "Bearer"}}"#
        ),
    );
    fake_tool(
        tools.path(),
        "azd",
        &format!(r#"{{"token": "{azd_token}", "expiresOn": "2027-06-01T00:00:00Z"}}"#),
    );
    // A refresh token from a password sign-in, for the refresh-token credential.
    let rt = emu
        .client()
        .post_form(
            &emu.token_url(&tenant),
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
    // The browser flow's authorization codes, as the "browser" sees them on the redirect.
    let auth_codes = Arc::new(Mutex::new(Vec::<String>::new()));

    let mi = |vars: Vec<(&str, String)>| {
        ManagedIdentityCredential::builder()
            .env(Env::from_map(
                vars.into_iter().map(|(k, v)| (k.to_owned(), v)),
            ))
            .arc_himds_path("/nonexistent/himds")
            .arc_tokens_dir(arc_dir.path())
            // Quick retries: the faults below would otherwise wait out IMDS's production backoff.
            .imds_retry_policy(ImdsRetryPolicy::new(
                1,
                Duration::from_millis(10),
                Duration::from_millis(50),
            ))
            .http_client(http.clone())
    };
    let providers: Vec<(&str, Box<dyn IdentityProvider>)> = vec![
        (
            "IMDS",
            Box::new(
                mi(vec![])
                    .imds_endpoint(format!("{https}/metadata/identity/oauth2/token"))
                    .build()
                    .unwrap(),
            ),
        ),
        (
            "App Service",
            Box::new(
                mi(vec![
                    ("IDENTITY_ENDPOINT", format!("{https}/msi/token")),
                    ("IDENTITY_HEADER", emu.app_service_secret().to_owned()),
                ])
                .build()
                .unwrap(),
            ),
        ),
        (
            "Azure Arc",
            Box::new(
                mi(vec![
                    (
                        "IDENTITY_ENDPOINT",
                        format!("{https}/arc/metadata/identity/oauth2/token"),
                    ),
                    ("IMDS_ENDPOINT", "http://127.0.0.1:40342".to_owned()),
                ])
                .build()
                .unwrap(),
            ),
        ),
        (
            "Cloud Shell",
            Box::new(
                mi(vec![(
                    "MSI_ENDPOINT",
                    format!("{https}/cloudshell/oauth2/token"),
                )])
                .build()
                .unwrap(),
            ),
        ),
        (
            "Azure ML",
            Box::new(
                mi(vec![
                    ("MSI_ENDPOINT", format!("{https}/azureml/msi/token")),
                    ("MSI_SECRET", emu.azure_ml_secret().to_owned()),
                ])
                .build()
                .unwrap(),
            ),
        ),
        (
            "client secret",
            Box::new(
                ClientSecretCredential::builder()
                    .tenant_id(&tenant)
                    .client_id("secret-app")
                    .secret(Secret::new(client_secret))
                    .authority_host(host.clone())
                    .http_client(http.clone())
                    .build()
                    .unwrap(),
            ),
        ),
        (
            "certificate",
            Box::new(
                ClientCertificateCredential::builder()
                    .tenant_id(&tenant)
                    .client_id("cert-app")
                    .certificate(ClientCertificate::from_pem(cert.pem_bundle().as_bytes()).unwrap())
                    .authority_host(host.clone())
                    .http_client(http.clone())
                    .build()
                    .unwrap(),
            ),
        ),
        (
            "workload identity",
            Box::new(
                WorkloadIdentityCredential::builder()
                    .env(Env::from_map([
                        ("AZURE_TENANT_ID", tenant.as_str()),
                        ("AZURE_CLIENT_ID", "wi-app"),
                        ("AZURE_FEDERATED_TOKEN_FILE", k8s_file.to_str().unwrap()),
                        ("AZURE_AUTHORITY_HOST", https.as_str()),
                    ]))
                    .http_client(http.clone())
                    .build()
                    .unwrap(),
            ),
        ),
        (
            "GitHub Actions",
            Box::new(
                GitHubActionsCredential::builder()
                    .env(Env::from_map([
                        ("AZURE_TENANT_ID", tenant.clone()),
                        ("AZURE_CLIENT_ID", "gh-app".to_owned()),
                        ("AZURE_AUTHORITY_HOST", https.clone()),
                        ("ACTIONS_ID_TOKEN_REQUEST_URL", emu.github_oidc_url()),
                        (
                            "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
                            emu.github_request_token().to_owned(),
                        ),
                    ]))
                    .http_client(http.clone())
                    .build()
                    .unwrap(),
            ),
        ),
        (
            "Azure Pipelines",
            Box::new(
                AzurePipelinesCredential::builder()
                    .env(Env::from_map([
                        ("AZURESUBSCRIPTION_TENANT_ID", tenant.clone()),
                        ("AZURESUBSCRIPTION_CLIENT_ID", "ado-app".to_owned()),
                        (
                            "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID",
                            "conn-1".to_owned(),
                        ),
                        ("AZURE_AUTHORITY_HOST", https.clone()),
                        ("SYSTEM_OIDCREQUESTURI", emu.pipelines_oidc_url()),
                        (
                            "SYSTEM_ACCESSTOKEN",
                            emu.pipelines_request_token().to_owned(),
                        ),
                    ]))
                    .http_client(http.clone())
                    .build()
                    .unwrap(),
            ),
        ),
        (
            "username/password",
            Box::new(
                UsernamePasswordCredential::builder()
                    .tenant_id(&tenant)
                    .username("alice@contoso.com")
                    .password(Secret::new(password))
                    .authority_host(host.clone())
                    .http_client(http.clone())
                    .build()
                    .unwrap(),
            ),
        ),
        (
            "device code",
            Box::new(
                DeviceCodeCredential::builder()
                    .tenant_id(&tenant)
                    .authority_host(host.clone())
                    .http_client(http.clone())
                    .callback(|_| {})
                    .build()
                    .unwrap(),
            ),
        ),
        ("browser", {
            let (emu, codes) = (emu.clone(), auth_codes.clone());
            Box::new(
                InteractiveBrowserCredential::builder()
                    .tenant_id(&tenant)
                    .authority_host(host.clone())
                    .http_client(http.clone())
                    .browser_opener(move |url: String| {
                        let (emu, codes) = (emu.clone(), codes.clone());
                        async move {
                            tokio::spawn(async move {
                                let authorize = emu.client().get(&url, &[]).await.unwrap();
                                let location = authorize
                                    .header("location")
                                    .unwrap()
                                    .replace("//localhost:", "//127.0.0.1:");
                                let code = location
                                    .split(['?', '&'])
                                    .find_map(|p| p.strip_prefix("code="))
                                    .unwrap()
                                    .to_owned();
                                codes.lock().unwrap().push(code);
                                emu.client().get(&location, &[]).await.unwrap();
                            });
                            Ok::<_, std::io::Error>(())
                        }
                    })
                    .build()
                    .unwrap(),
            )
        }),
        (
            "refresh token",
            Box::new(
                RefreshTokenCredential::builder()
                    .tenant_id(&tenant)
                    .refresh_token(Secret::new(rt.clone()))
                    .authority_host(host.clone())
                    .http_client(http.clone())
                    .build()
                    .unwrap(),
            ),
        ),
        (
            "on-behalf-of",
            Box::new(
                OnBehalfOfCredential::builder()
                    .tenant_id(&tenant)
                    .client_id("api-app")
                    .client_secret(Secret::new(api_secret))
                    .user_assertion(Secret::new(incoming.clone()))
                    .authority_host(host.clone())
                    .http_client(http.clone())
                    .build()
                    .unwrap(),
            ),
        ),
        (
            "az",
            Box::new(
                AzureCliCredential::builder()
                    .search_path(tools.path().as_os_str().to_owned())
                    .build()
                    .unwrap(),
            ),
        ),
        (
            "azd",
            Box::new(
                AzureDeveloperCliCredential::builder()
                    .search_path(tools.path().as_os_str().to_owned())
                    .build()
                    .unwrap(),
            ),
        ),
    ];

    let mut tokens = vec![
        incoming.clone(),
        cli_token.clone(),
        azd_token.clone(),
        k8s_token.clone(),
    ];
    let mut shown = Vec::new();
    let faulted = [
        Endpoint::Token,
        Endpoint::DeviceCode,
        Endpoint::Imds,
        Endpoint::AppService,
        Endpoint::AzureArc,
        Endpoint::CloudShell,
        Endpoint::AzureMl,
        Endpoint::GitHubOidc,
        Endpoint::PipelinesOidc,
    ];
    for (name, provider) in &providers {
        let response = provider
            .request_token()
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        tokens.extend(tokens_of(&response));
        shown.push(format!(
            "{name}: {provider:?} {provider:#?} {response:?} {response:#?}"
        ));
        // A second request (user flows redeem the refresh token they hold).
        if let Ok(again) = provider.request_token().await {
            tokens.extend(tokens_of(&again));
            shown.push(format!("{again:?}"));
        }
        // Failures with an Entra error body, an HTML page, a body that is not JSON and a reset connection.
        for fault in [
            Fault::Status(400),
            Fault::Html(502),
            Fault::MalformedJson,
            Fault::ResetConnection,
        ] {
            for endpoint in faulted {
                emu.faults(endpoint).push_n(fault.clone(), 8);
            }
            if let Err(e) = provider.request_token().await {
                shown.push(format!("{name}: {e} {e:?} {e:#?}"));
            }
            for endpoint in faulted {
                emu.faults(endpoint).clear();
            }
        }
    }
    // Service Fabric: the emulator has no endpoint of its own, so its App Service path answers with scripted
    // bodies (a token, then the four faults) over the HTTPS listener whose certificate the credential pins.
    let sf_secret = "hygiene-SF-secret-0006";
    let sf = mi(vec![
        ("IDENTITY_ENDPOINT", format!("{https}/msi/token")),
        ("IDENTITY_HEADER", sf_secret.to_owned()),
        (
            "IDENTITY_SERVER_THUMBPRINT",
            emu.https_cert_thumbprint().to_owned(),
        ),
    ])
    .build()
    .unwrap();
    let sf_token = emu.issue_token(&alice.oid, REDIS_RESOURCE).unwrap();
    let expires_on = emu.now_unix() + 3600;
    emu.faults(Endpoint::AppService).push(Fault::Custom {
        status: 200,
        content_type: "application/json".into(),
        body: format!(
            r#"{{"access_token":"{sf_token}","expires_on":"{expires_on}","token_type":"Bearer","resource":"{REDIS_RESOURCE}"}}"#
        ),
    });
    let response = sf
        .request_token()
        .await
        .unwrap_or_else(|e| panic!("Service Fabric: {e}"));
    tokens.extend(tokens_of(&response));
    shown.push(format!(
        "Service Fabric: {sf:?} {sf:#?} {response:?} {response:#?}"
    ));
    for fault in [
        Fault::Status(400),
        Fault::Html(502),
        Fault::MalformedJson,
        Fault::ResetConnection,
    ] {
        emu.faults(Endpoint::AppService).push_n(fault, 8);
        let e = sf.request_token().await.unwrap_err();
        shown.push(format!("Service Fabric: {e} {e:?} {e:#?}"));
        emu.faults(Endpoint::AppService).clear();
    }
    let sent = emu.requests_to(Endpoint::AppService);
    assert!(
        sent.iter().any(|r| r.header("secret").is_some()),
        "the Service Fabric requests reached the emulator"
    );

    // Refused secrets and revoked refresh tokens.
    emu.revoke_refresh_tokens(&alice.oid);
    if let Some((_, refresh)) = providers.iter().find(|(n, _)| *n == "refresh token") {
        let e = refresh.request_token().await.unwrap_err();
        shown.push(format!("{e} {e:?}"));
    }
    let wrong_secret = "hygiene-WRONG-secret-0004";
    let wrong = ClientSecretCredential::builder()
        .tenant_id(&tenant)
        .client_id("secret-app")
        .secret(Secret::new(wrong_secret))
        .authority_host(host.clone())
        .http_client(http.clone())
        .build()
        .unwrap();
    let e = wrong.request_token().await.unwrap_err();
    shown.push(format!("{e} {e:?} {wrong:?}"));
    // A developer tool printing garbage around a token.
    fake_tool(tools.path(), "az", &format!("garbage {cli_token} garbage"));
    if let Some((_, az)) = providers.iter().find(|(n, _)| *n == "az") {
        let e = az.request_token().await.unwrap_err();
        shown.push(format!("{e} {e:?}"));
    }

    // The token manager and the fred adapter: rotations of 2 s tokens over a pool, a RESP2 subscriber and a
    // client whose re-AUTH the server refuses (errors, reconnects), with the manager's own failures.
    let fred_app_secret = "hygiene-FRED-secret-0005";
    emu.add_app(
        App::new("fred-app")
            .secret(fred_app_secret)
            .token_lifetime(Duration::from_secs(2)),
    )
    .unwrap();
    let credential = ClientSecretCredential::builder()
        .tenant_id(&tenant)
        .client_id("fred-app")
        .secret(Secret::new(fred_app_secret))
        .authority_host(host.clone())
        .http_client(http.clone())
        .build()
        .unwrap();
    let manager = TokenManager::start(
        credential,
        TokenManagerOptions {
            retry: RetryOptions {
                initial_delay: Duration::from_millis(50),
                ..RetryOptions::default()
            },
            ..TokenManagerOptions::default()
        },
    )
    .unwrap();
    let mut events = manager.subscribe();
    let auth = EntraIdAuth::with_options(manager.clone(), ReauthOptions::default()).unwrap();
    let mut reauth_errors = auth.subscribe_errors();
    let harness = RedisHarness::standalone_with(AccessPolicy::DataContributor)
        .await
        .unwrap();
    let config = |version| Config {
        server: ServerConfig::new_centralized(
            harness.addr().ip().to_string(),
            harness.addr().port(),
        ),
        version,
        ..Config::default()
    };
    let pool = auth
        .fred_builder(config(RespVersion::RESP3))
        .build_pool(2)
        .unwrap();
    pool.init().await.unwrap();
    let subscriber = auth
        .fred_builder(config(RespVersion::RESP2))
        .build_subscriber_client()
        .unwrap();
    subscriber.init().await.unwrap();
    subscriber.subscribe("hygiene").await.unwrap();
    let refused = auth
        .fred_builder(Config {
            fail_fast: true,
            ..config(RespVersion::RESP3)
        })
        .build()
        .unwrap();
    refused.init().await.unwrap();
    let _: () = refused.client_setname("hygiene-refused").await.unwrap();
    harness.set_refuse_reauth_named(Some("hygiene-refused".into()));
    let _attachments = [
        auth.attach(&pool),
        auth.attach(&subscriber),
        auth.attach(&refused),
    ];
    let mut rotations = 0;
    while rotations < 3 {
        match tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            TokenEvent::Token(token) => {
                rotations += 1;
                tokens.push(token.access_token().expose_secret().to_owned());
                shown.push(format!("{token:?}"));
            }
            TokenEvent::Error(e) => shown.push(format!("{e} {e:?}")),
            _ => {}
        }
        let _: () = pool
            .set("hygiene:k", rotations, None, None, false)
            .await
            .unwrap();
    }
    // The identity endpoint fails for a while: the manager's errors, logged and published.
    emu.faults(Endpoint::Token).push_n(Fault::Status(503), 3);
    let _ = manager.refresh_now().await;
    emu.faults(Endpoint::Token).push_n(Fault::Status(401), 1);
    let _ = manager.refresh_now().await;
    emu.faults(Endpoint::Token).clear();
    let token = manager.refresh_now().await.unwrap();
    tokens.push(token.access_token().expose_secret().to_owned());
    while let Ok(e) = reauth_errors.try_recv() {
        shown.push(format!("{e} {e:?}"));
    }
    shown.push(format!("{auth:?} {:?} {manager:?}", auth.stats()));
    let stats = harness.stats();
    assert!(stats.reauths > 0 && stats.auth_failed > 0, "{stats:?}");
    for client in pool.clients() {
        let _ = client.quit().await;
    }
    let _ = subscriber.quit().await;
    let _ = refused.quit().await;
    manager.shutdown();

    // Everything that must not appear.
    let key_body: Vec<String> = TestKey::client_app()
        .private_key_pem()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::to_owned)
        .collect();
    let mut secrets: Vec<String> = vec![
        client_secret.to_owned(),
        api_secret.to_owned(),
        fred_app_secret.to_owned(),
        wrong_secret.to_owned(),
        sf_secret.to_owned(),
        password.to_owned(),
        rt.clone(),
        emu.app_service_secret().to_owned(),
        emu.azure_ml_secret().to_owned(),
        emu.github_request_token().to_owned(),
        emu.pipelines_request_token().to_owned(),
    ];
    secrets.extend(key_body);
    secrets.extend(files_in(arc_dir.path()));
    let codes = auth_codes.lock().unwrap().clone();
    assert!(!codes.is_empty(), "the browser flow ran");
    secrets.extend(codes);
    secrets.extend(tokens.iter().cloned());
    // A JWT's signature alone is as good as the token's proof: it must not appear either.
    secrets.extend(
        tokens
            .iter()
            .filter_map(|t| t.rsplit('.').next().map(str::to_owned)),
    );
    secrets.retain(|s| s.len() >= 12);
    secrets.sort();
    secrets.dedup();
    // Device codes are not handed to the application; every one the emulator issues starts with this.
    let device_code_prefix = "DAQABAAEAAA.";

    let lines = LINES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    // The capture saw every layer: identity, manager, adapter, fred's own `log` records.
    for needle in [
        "entraid_identity",
        "entraid_manager",
        "entraid_fred",
        "log ",
    ] {
        assert!(
            lines.iter().any(|l| l.contains(needle)),
            "no captured line from {needle}; {} lines",
            lines.len()
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("TRACE") || l.starts_with("log TRACE"))
    );
    for secret in &secrets {
        for line in &lines {
            assert!(
                !line.contains(secret.as_str()),
                "a secret ({} bytes) is in a log line: {line}",
                secret.len()
            );
        }
        for text in &shown {
            assert!(
                !text.contains(secret.as_str()),
                "a secret ({} bytes) is in Debug/Display: {text}",
                secret.len()
            );
        }
    }
    for text in lines.iter().chain(&shown) {
        assert!(!text.contains(device_code_prefix), "a device code: {text}");
    }
    assert!(secrets.len() > 40, "{} secrets checked", secrets.len());
}
