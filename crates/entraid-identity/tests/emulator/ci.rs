//! GitHub Actions and Azure Pipelines federation against the emulator's CI OIDC endpoints: the exact requests, a
//! fresh OIDC token per token request, federated-credential mismatch (AADSTS70021), refused OIDC requests and
//! missing variables.

use entraid_core::{Error, IdentityProvider};
use entraid_identity::{AzurePipelinesCredential, Env, GitHubActionsCredential};
use entraid_testkit::emulator::{
    App, Emulator, Endpoint, FederatedCredential, GITHUB_ISSUER, PIPELINES_ISSUER,
};

use crate::common::Ctx;

fn github(ctx: &Ctx, request_token: &str) -> GitHubActionsCredential {
    GitHubActionsCredential::builder()
        .env(Env::from_map([
            ("AZURE_TENANT_ID", ctx.emu.tenant_id().to_owned()),
            ("AZURE_CLIENT_ID", "gh-app".to_owned()),
            ("AZURE_AUTHORITY_HOST", ctx.emu.https_url().to_owned()),
            ("ACTIONS_ID_TOKEN_REQUEST_URL", ctx.emu.github_oidc_url()),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", request_token.to_owned()),
        ]))
        .http_client(ctx.http.clone())
        .build()
        .unwrap()
}

#[tokio::test]
async fn github_actions_fetches_a_fresh_oidc_token_for_each_request() {
    let ctx = Ctx::start().await;
    let app = ctx
        .emu
        .add_app(App::new("gh-app").federated(FederatedCredential::new(
            GITHUB_ISSUER,
            ctx.emu.github_subject(),
        )))
        .unwrap();
    let credential = github(&ctx, ctx.emu.github_request_token());
    assert_eq!(credential.name(), "GitHubActions");
    ctx.expect_token(&credential, &app.oid).await;
    ctx.expect_token(&credential, &app.oid).await;
    let oidc = ctx.emu.requests_to(Endpoint::GitHubOidc);
    assert_eq!(oidc.len(), 2, "a fresh OIDC token for each token request");
    assert_eq!(oidc[0].method, "GET");
    assert_eq!(oidc[0].param("api-version"), Some("2.0"));
    assert_eq!(
        oidc[0].param("audience"),
        Some("api://AzureADTokenExchange")
    );
    assert!(
        oidc[0]
            .header("authorization")
            .unwrap()
            .starts_with("Bearer")
    );
    let token = &ctx.emu.requests_to(Endpoint::Token)[0];
    assert_eq!(token.param("grant_type"), Some("client_credentials"));
    assert!(token.param("client_assertion").is_some());
}

#[tokio::test]
async fn github_actions_federated_mismatch_refused_request_and_missing_variables() {
    let ctx = Ctx::start().await;
    ctx.emu
        .add_app(App::new("gh-app").federated(FederatedCredential::new(
            GITHUB_ISSUER,
            "repo:octo-org/octo-repo:environment:production",
        )))
        .unwrap();
    let err = github(&ctx, ctx.emu.github_request_token())
        .request_token()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AuthenticationFailed { .. }), "{err}");
    assert!(err.entra_error().unwrap().has_code(70021), "{err}");
    // GitHub refuses the OIDC request (a wrong request token).
    let err = github(&ctx, "wrong-request-token")
        .request_token()
        .await
        .unwrap_err();
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
    assert!(err.to_string().contains("id-token: write"), "{err}");
    // Outside a workflow: unavailable, naming what is missing.
    let err = GitHubActionsCredential::builder()
        .env(Env::from_map([("AZURE_CLIENT_ID", "c")]))
        .build()
        .unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("AZURE_TENANT_ID")
            && text.contains("ACTIONS_ID_TOKEN_REQUEST_URL")
            && text.contains("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
            && !text.contains("AZURE_CLIENT_ID"),
        "{text}"
    );
}

fn pipelines(ctx: &Ctx, connection: &str) -> AzurePipelinesCredential {
    AzurePipelinesCredential::builder()
        .env(Env::from_map([
            (
                "AZURESUBSCRIPTION_TENANT_ID",
                ctx.emu.tenant_id().to_owned(),
            ),
            ("AZURESUBSCRIPTION_CLIENT_ID", "ado-app".to_owned()),
            (
                "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID",
                connection.to_owned(),
            ),
            ("AZURE_AUTHORITY_HOST", ctx.emu.https_url().to_owned()),
            ("SYSTEM_OIDCREQUESTURI", ctx.emu.pipelines_oidc_url()),
            (
                "SYSTEM_ACCESSTOKEN",
                ctx.emu.pipelines_request_token().to_owned(),
            ),
        ]))
        .http_client(ctx.http.clone())
        .build()
        .unwrap()
}

#[tokio::test]
async fn azure_pipelines_posts_for_the_service_connection_and_exchanges_the_token() {
    let ctx = Ctx::start().await;
    let app = ctx
        .emu
        .add_app(App::new("ado-app").federated(FederatedCredential::new(
            PIPELINES_ISSUER,
            Emulator::pipelines_subject("conn-1"),
        )))
        .unwrap();
    let credential = pipelines(&ctx, "conn-1");
    ctx.expect_token(&credential, &app.oid).await;
    ctx.expect_token(&credential, &app.oid).await;
    let oidc = ctx.emu.requests_to(Endpoint::PipelinesOidc);
    assert_eq!(oidc.len(), 2);
    assert_eq!(oidc[0].method, "POST");
    assert_eq!(oidc[0].param("api-version"), Some("7.1"));
    assert_eq!(oidc[0].param("serviceConnectionId"), Some("conn-1"));
    assert_eq!(oidc[0].header("x-tfs-fedauthredirect"), Some("Suppress"));
    assert!(oidc[0].form.is_empty());

    // Another service connection's token does not match the federated credential.
    let err = pipelines(&ctx, "conn-2").request_token().await.unwrap_err();
    assert!(err.entra_error().unwrap().has_code(70021), "{err}");
    // A wrong System.AccessToken is refused by the pipeline service.
    let wrong = AzurePipelinesCredential::builder()
        .tenant_id(ctx.emu.tenant_id())
        .client_id("ado-app")
        .service_connection_id("conn-1")
        .request_uri(ctx.emu.pipelines_oidc_url())
        .system_access_token("wrong".into())
        .authority_host(ctx.host())
        .http_client(ctx.http.clone())
        .env(Env::from_map::<&str, &str>([]))
        .build()
        .unwrap();
    let err = wrong.request_token().await.unwrap_err();
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
    let err = AzurePipelinesCredential::builder()
        .env(Env::from_map::<&str, &str>([]))
        .build()
        .unwrap_err();
    assert!(
        err.is_unavailable() && err.to_string().contains("SYSTEM_OIDCREQUESTURI"),
        "{err}"
    );
}
