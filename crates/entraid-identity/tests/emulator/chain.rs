//! The default chain against the emulator and fake developer tools: each link winning, every link unavailable
//! (the error lists them all, in order, with hints), a failure that stops the chain, a developer tool's failure
//! passing on, every `AZURE_TOKEN_CREDENTIALS` value and an invalid one, and the IMDS probe, whose cost on a laptop
//! is measured on tokio's paused clock.

use std::time::Duration;

use entraid_core::{Error, IdentityProvider};
use entraid_identity::{ChainLink, DefaultAzureCredential, Env, IMDS_PROBE_TIMEOUT};
use entraid_testkit::emulator::{
    App, Endpoint, Fault, FederatedCredential, KUBERNETES_ISSUER, ManagedIdentity, REDIS_RESOURCE,
    User,
};

use crate::common::{Ctx, FakeTools, TempDir, closed_port_url, exp_of};

/// A chain over exactly these variables (nothing from the process), the emulator's HTTPS client, and the fake
/// tools' folder as the whole search path.
fn chain(
    ctx: &Ctx,
    tools: &FakeTools,
    vars: &[(&str, String)],
) -> Result<DefaultAzureCredential, Error> {
    DefaultAzureCredential::builder()
        .env(Env::from_map(
            vars.iter().map(|(k, v)| (k.to_string(), v.clone())),
        ))
        .http_client(ctx.http.clone())
        .cli_search_path(tools.search_path())
        .build()
}

/// IMDS nowhere (a closed port: refused at once).
fn no_imds() -> (&'static str, String) {
    ("AZURE_POD_IDENTITY_AUTHORITY_HOST", closed_port_url())
}

/// A fake `az` and `azd` that would both succeed with a token minted for a user.
fn working_tools(ctx: &Ctx) -> (FakeTools, String) {
    let user = ctx
        .emu
        .add_user(User::new("dev@contoso.com", "pw"))
        .unwrap();
    let token = ctx.emu.issue_token(&user.oid, REDIS_RESOURCE).unwrap();
    let exp = exp_of(&token);
    let tools = FakeTools::new();
    tools.prints(
        "az",
        &format!(r#"{{"accessToken": "{token}", "expires_on": {exp}, "tokenType": "Bearer"}}"#),
    );
    tools.prints(
        "azd",
        &format!(
            r#"{{"token": "{token}", "expiresOn": "{}Z"}}"#,
            crate::common::civil(exp, 'T')
        ),
    );
    (tools, user.oid)
}

fn token(response: entraid_core::IdentityProviderResponse) -> String {
    match response {
        entraid_core::IdentityProviderResponse::TokenResponse(r) => {
            r.access_token.expose_secret().to_owned()
        }
        entraid_core::IdentityProviderResponse::AccessToken(a) => {
            a.token.expose_secret().to_owned()
        }
        entraid_core::IdentityProviderResponse::RawToken(t) => t.expose_secret().to_owned(),
        other => panic!("{}", other.kind()),
    }
}

fn oid(ctx: &Ctx, jwt: &str) -> String {
    ctx.emu
        .verifier()
        .verify(jwt)
        .unwrap()
        .claims
        .oid()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_environment_link_wins_and_nothing_after_it_runs() {
    let ctx = Ctx::start().await;
    let app = ctx
        .emu
        .add_app(App::new("env-app").secret("env-secret"))
        .unwrap();
    let (tools, _) = working_tools(&ctx);
    let credential = chain(
        &ctx,
        &tools,
        &[
            ("AZURE_TENANT_ID", ctx.emu.tenant_id().to_owned()),
            ("AZURE_CLIENT_ID", "env-app".into()),
            ("AZURE_CLIENT_SECRET", "env-secret".into()),
            ("AZURE_AUTHORITY_HOST", ctx.emu.https_url().to_owned()),
            (
                "AZURE_POD_IDENTITY_AUTHORITY_HOST",
                ctx.emu.http_url().to_owned(),
            ),
        ],
    )
    .unwrap();
    assert_eq!(credential.links(), ChainLink::ALL);
    let jwt = token(credential.request_token().await.unwrap());
    assert_eq!(oid(&ctx, &jwt), app.oid);
    assert_eq!(credential.selected(), Some(ChainLink::Environment));
    assert!(ctx.emu.requests_to(Endpoint::Imds).is_empty());
    assert_eq!(tools.args("az"), None, "az must not run");
}

#[tokio::test]
async fn the_workload_identity_link_wins() {
    let ctx = Ctx::start().await;
    let app = ctx
        .emu
        .add_app(App::new("wi-app").federated(FederatedCredential::new(
            KUBERNETES_ISSUER,
            "system:serviceaccount:ns:sa",
        )))
        .unwrap();
    let dir = TempDir::new("chain-wi");
    let file = dir.path().join("token");
    std::fs::write(
        &file,
        ctx.emu
            .kubernetes_token("ns", "sa", Duration::from_secs(3600)),
    )
    .unwrap();
    let (tools, _) = working_tools(&ctx);
    let credential = chain(
        &ctx,
        &tools,
        &[
            ("AZURE_TENANT_ID", ctx.emu.tenant_id().to_owned()),
            ("AZURE_CLIENT_ID", "wi-app".into()),
            ("AZURE_FEDERATED_TOKEN_FILE", file.display().to_string()),
            ("AZURE_AUTHORITY_HOST", ctx.emu.https_url().to_owned()),
            no_imds(),
        ],
    )
    .unwrap();
    assert_eq!(
        oid(&ctx, &token(credential.request_token().await.unwrap())),
        app.oid
    );
    assert_eq!(credential.selected(), Some(ChainLink::WorkloadIdentity));
}

#[tokio::test]
async fn the_managed_identity_link_wins_with_azure_client_id_as_the_user_assigned_id() {
    let ctx = Ctx::start().await;
    ctx.emu
        .add_managed_identity(ManagedIdentity::system_assigned())
        .unwrap();
    let mi = ctx
        .emu
        .add_managed_identity(ManagedIdentity::user_assigned().client_id("mi-client-id"))
        .unwrap();
    let (tools, _) = working_tools(&ctx);
    let credential = chain(
        &ctx,
        &tools,
        &[
            ("AZURE_CLIENT_ID", "mi-client-id".into()),
            (
                "AZURE_POD_IDENTITY_AUTHORITY_HOST",
                ctx.emu.http_url().to_owned(),
            ),
        ],
    )
    .unwrap();
    assert_eq!(
        oid(&ctx, &token(credential.request_token().await.unwrap())),
        mi.oid
    );
    assert_eq!(credential.selected(), Some(ChainLink::ManagedIdentity));
    let imds = ctx.emu.requests_to(Endpoint::Imds);
    assert_eq!(imds.len(), 1, "the probe's answer is the token");
    assert_eq!(imds[0].param("client_id"), Some("mi-client-id"));
    assert_eq!(imds[0].header("metadata"), Some("true"));
    // Sticky: the next request goes to IMDS alone.
    assert_eq!(
        oid(&ctx, &token(credential.request_token().await.unwrap())),
        mi.oid
    );
    assert_eq!(ctx.emu.requests_to(Endpoint::Imds).len(), 2);
    assert_eq!(tools.args("az"), None);
}

#[tokio::test]
async fn the_azure_cli_link_wins() {
    let ctx = Ctx::start().await;
    let (tools, user) = working_tools(&ctx);
    let credential = chain(&ctx, &tools, &[no_imds()]).unwrap();
    assert_eq!(
        oid(&ctx, &token(credential.request_token().await.unwrap())),
        user
    );
    assert_eq!(credential.selected(), Some(ChainLink::AzureCli));
    assert_eq!(tools.args("azd"), None);
}

#[tokio::test]
async fn the_azure_developer_cli_link_wins() {
    let ctx = Ctx::start().await;
    let (tools, user) = working_tools(&ctx);
    std::fs::remove_file(tools.dir().join("az")).unwrap();
    let credential = chain(&ctx, &tools, &[no_imds()]).unwrap();
    assert_eq!(
        oid(&ctx, &token(credential.request_token().await.unwrap())),
        user
    );
    assert_eq!(credential.selected(), Some(ChainLink::AzureDeveloperCli));
}

#[tokio::test]
async fn every_link_unavailable_lists_them_all_in_order_with_hints() {
    let ctx = Ctx::start().await;
    let tools = FakeTools::new();
    let credential = chain(&ctx, &tools, &[no_imds()]).unwrap();
    let err = credential.request_token().await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    let text = err.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "DefaultAzureCredential is unavailable: no credential in the chain could get a token:"
    );
    let expected = [
        ("Environment:", "AZURE_CLIENT_SECRET"),
        ("WorkloadIdentity:", "AZURE_FEDERATED_TOKEN_FILE"),
        ("ManagedIdentity:", "managed identity"),
        ("AzureCli:", "`az login`"),
        ("AzureDeveloperCli:", "`azd auth login`"),
    ];
    assert_eq!(lines.len(), 1 + expected.len(), "{text}");
    for (line, (prefix, hint)) in lines[1..].iter().zip(expected) {
        assert!(line.starts_with(&format!("  {prefix}")), "{line}");
        assert!(line.contains(hint), "{line}");
    }
    assert_eq!(credential.selected(), None);
}

#[tokio::test]
async fn an_authentication_failure_stops_the_chain() {
    let ctx = Ctx::start().await;
    ctx.emu
        .add_app(App::new("env-app").secret("right"))
        .unwrap();
    ctx.emu
        .add_managed_identity(ManagedIdentity::system_assigned())
        .unwrap();
    let (tools, _) = working_tools(&ctx);
    let credential = chain(
        &ctx,
        &tools,
        &[
            ("AZURE_TENANT_ID", ctx.emu.tenant_id().to_owned()),
            ("AZURE_CLIENT_ID", "env-app".into()),
            ("AZURE_CLIENT_SECRET", "wrong".into()),
            ("AZURE_AUTHORITY_HOST", ctx.emu.https_url().to_owned()),
            (
                "AZURE_POD_IDENTITY_AUTHORITY_HOST",
                ctx.emu.http_url().to_owned(),
            ),
        ],
    )
    .unwrap();
    let err = credential.request_token().await.unwrap_err();
    assert!(matches!(err, Error::AuthenticationFailed { .. }), "{err}");
    assert!(err.entra_error().unwrap().has_code(50012), "{err}");
    assert!(
        ctx.emu.requests_to(Endpoint::Imds).is_empty(),
        "managed identity must not be tried"
    );
    assert_eq!(tools.args("az"), None, "az must not run");
    assert_eq!(credential.selected(), None);
}

#[tokio::test]
async fn a_developer_tool_failure_passes_on_inside_the_chain_but_not_alone() {
    let ctx = Ctx::start().await;
    let (tools, user) = working_tools(&ctx);
    tools.fails(
        "az",
        "ERROR: AADSTS70043: The refresh token has expired. Please run az login.",
        1,
    );
    let credential = chain(&ctx, &tools, &[no_imds()]).unwrap();
    assert_eq!(
        oid(&ctx, &token(credential.request_token().await.unwrap())),
        user
    );
    assert_eq!(credential.selected(), Some(ChainLink::AzureDeveloperCli));
    // Named alone, the Azure CLI's failure is returned as it is.
    let alone = chain(
        &ctx,
        &tools,
        &[
            no_imds(),
            ("AZURE_TOKEN_CREDENTIALS", "AzureCliCredential".into()),
        ],
    )
    .unwrap();
    assert_eq!(alone.links(), [ChainLink::AzureCli]);
    let err = alone.request_token().await.unwrap_err();
    assert!(matches!(err, Error::AuthenticationFailed { .. }), "{err}");
    assert!(err.to_string().contains("AADSTS70043"), "{err}");
}

#[tokio::test]
async fn azure_token_credentials_selects_dev_prod_or_one_credential() {
    let ctx = Ctx::start().await;
    let app = ctx.emu.add_app(App::new("env-app").secret("s")).unwrap();
    let mi = ctx
        .emu
        .add_managed_identity(ManagedIdentity::system_assigned())
        .unwrap();
    let (tools, user) = working_tools(&ctx);
    let env_vars = |selection: &str| {
        vec![
            ("AZURE_TENANT_ID", ctx.emu.tenant_id().to_owned()),
            ("AZURE_CLIENT_ID", "env-app".to_owned()),
            ("AZURE_CLIENT_SECRET", "s".to_owned()),
            ("AZURE_AUTHORITY_HOST", ctx.emu.https_url().to_owned()),
            no_imds(),
            ("AZURE_TOKEN_CREDENTIALS", selection.to_owned()),
        ]
    };
    // dev: the CLIs only, although the environment would work.
    let dev = chain(&ctx, &tools, &env_vars("dev")).unwrap();
    assert_eq!(
        dev.links(),
        [ChainLink::AzureCli, ChainLink::AzureDeveloperCli]
    );
    assert_eq!(oid(&ctx, &token(dev.request_token().await.unwrap())), user);
    assert_eq!(ctx.emu.tokens_issued(&app.oid), 0);
    // prod: no developer tool, even when one is there.
    let prod = chain(&ctx, &tools, &env_vars("PROD")).unwrap();
    assert_eq!(
        prod.links(),
        [
            ChainLink::Environment,
            ChainLink::WorkloadIdentity,
            ChainLink::ManagedIdentity
        ]
    );
    assert_eq!(
        oid(&ctx, &token(prod.request_token().await.unwrap())),
        app.oid
    );
    let empty_prod = chain(
        &ctx,
        &tools,
        &[no_imds(), ("AZURE_TOKEN_CREDENTIALS", "prod".into())],
    )
    .unwrap();
    let text = empty_prod.request_token().await.unwrap_err().to_string();
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(!text.contains("AzureCli"), "{text}");
    // One credential by name, any case; the managed identity alone does not probe.
    let only_mi = chain(
        &ctx,
        &tools,
        &[
            (
                "AZURE_POD_IDENTITY_AUTHORITY_HOST",
                ctx.emu.http_url().to_owned(),
            ),
            (
                "AZURE_TOKEN_CREDENTIALS",
                "managedidentitycredential".into(),
            ),
        ],
    )
    .unwrap();
    assert_eq!(only_mi.links(), [ChainLink::ManagedIdentity]);
    assert_eq!(
        oid(&ctx, &token(only_mi.request_token().await.unwrap())),
        mi.oid
    );
    for (name, link) in [
        ("EnvironmentCredential", ChainLink::Environment),
        ("WORKLOADIDENTITYCREDENTIAL", ChainLink::WorkloadIdentity),
        ("AzureDeveloperCliCredential", ChainLink::AzureDeveloperCli),
    ] {
        let c = chain(
            &ctx,
            &tools,
            &[no_imds(), ("AZURE_TOKEN_CREDENTIALS", name.into())],
        )
        .unwrap();
        assert_eq!(c.links(), [link]);
    }
    // Anything else is a construction error.
    let err = chain(
        &ctx,
        &tools,
        &[("AZURE_TOKEN_CREDENTIALS", "laptop".into())],
    )
    .unwrap_err();
    assert!(matches!(err, Error::Configuration { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("AZURE_TOKEN_CREDENTIALS is `laptop`"),
        "{err}"
    );
}

/// IMDS with a scripted answer, for the probe's verdicts; the CLIs are absent.
async fn probe_chain(ctx: &Ctx, fault: Option<Fault>) -> (DefaultAzureCredential, FakeTools) {
    if let Some(fault) = fault {
        ctx.emu.faults(Endpoint::Imds).push(fault);
    }
    let tools = FakeTools::new();
    let credential = chain(
        ctx,
        &tools,
        &[(
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            ctx.emu.http_url().to_owned(),
        )],
    )
    .unwrap();
    (credential, tools)
}

#[tokio::test(start_paused = true)]
async fn the_imds_probe_does_not_delay_a_laptop_more_than_its_timeout() {
    let ctx = Ctx::start().await;
    ctx.emu
        .add_managed_identity(ManagedIdentity::system_assigned())
        .unwrap();
    // IMDS that would answer after 30 s (a blackholed 169.254.169.254 behaves the same).
    let (credential, _tools) = probe_chain(&ctx, Some(Fault::Delay(Duration::from_secs(30)))).await;
    ctx.emu
        .faults(Endpoint::Imds)
        .push(Fault::Delay(Duration::from_secs(30)));
    let started = tokio::time::Instant::now();
    let err = credential.request_token().await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(err.is_unavailable(), "{err}");
    assert!(
        err.to_string()
            .contains("no managed identity endpoint answered within 1s"),
        "{err}"
    );
    assert!(elapsed >= IMDS_PROBE_TIMEOUT, "{elapsed:?}");
    assert!(
        elapsed < IMDS_PROBE_TIMEOUT + Duration::from_millis(100),
        "{elapsed:?}"
    );
    // Each request that reaches IMDS takes one fault; the second is still there: no retry while probing. (The
    // request log cannot tell: the emulator logs a request when it answers, and this one was abandoned.)
    assert_eq!(
        ctx.emu.faults(Endpoint::Imds).remaining(),
        1,
        "no retries while probing"
    );
}

#[tokio::test(start_paused = true)]
async fn the_probe_gives_up_on_a_listener_that_never_answers() {
    let ctx = Ctx::start().await;
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(stream); // accepted, never answered
        }
    });
    let tools = FakeTools::new();
    let credential = chain(
        &ctx,
        &tools,
        &[(
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            format!("http://127.0.0.1:{port}"),
        )],
    )
    .unwrap();
    let started = tokio::time::Instant::now();
    let err = credential.request_token().await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert!(started.elapsed() < IMDS_PROBE_TIMEOUT + Duration::from_millis(100));
    assert!(
        err.to_string().contains("AzureDeveloperCli"),
        "the chain went on: {err}"
    );
    holder.abort();
}

#[tokio::test(start_paused = true)]
async fn probe_verdicts_no_system_identity_docker_unreachable_and_a_retryable_answer() {
    // No system-assigned identity on this host: IMDS answers 400, the link is unavailable.
    let ctx = Ctx::start().await;
    let (credential, _tools) = probe_chain(&ctx, None).await;
    let err = credential.request_token().await.unwrap_err();
    assert!(
        err.is_unavailable() && err.to_string().contains("no system-assigned identity"),
        "{err}"
    );

    // Docker Desktop's 403 "unreachable".
    let ctx = Ctx::start().await;
    ctx.emu
        .add_managed_identity(ManagedIdentity::system_assigned())
        .unwrap();
    let (credential, _tools) = probe_chain(
        &ctx,
        Some(Fault::Custom {
            status: 403,
            content_type: "text/plain".into(),
            body: "connecting to 169.254.169.254:80: connecting to 169.254.169.254:80: dial tcp 169.254.169.254:80: connectex: A socket operation was attempted to an unreachable network.".into(),
        }),
    )
    .await;
    let err = credential.request_token().await.unwrap_err();
    assert!(
        err.is_unavailable() && err.to_string().contains("unreachable"),
        "{err}"
    );

    // Any other answer means IMDS is there: a 500 is retried as usual and the token comes.
    let ctx = Ctx::start().await;
    let mi = ctx
        .emu
        .add_managed_identity(ManagedIdentity::system_assigned())
        .unwrap();
    let (credential, _tools) = probe_chain(&ctx, Some(Fault::Status(500))).await;
    assert_eq!(
        oid(&ctx, &token(credential.request_token().await.unwrap())),
        mi.oid
    );
    assert_eq!(ctx.emu.requests_to(Endpoint::Imds).len(), 2);
    assert_eq!(credential.selected(), Some(ChainLink::ManagedIdentity));
}
