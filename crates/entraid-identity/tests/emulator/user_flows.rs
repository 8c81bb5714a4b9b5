//! Username/password (ROPC), on-behalf-of (secret and certificate), the refresh-token grant (automatic in user
//! flows, and as its own credential) and OIDC discovery, against the emulator: success, MFA required (AADSTS50076),
//! wrong password, revoked refresh tokens, transient failures that must not re-prompt, and discovery caching.

use entraid_core::{Error, IdentityProvider, Secret};
use entraid_identity::{
    AZURE_CLI_CLIENT_ID, Authority, ClientCertificate, OidcDiscovery, OnBehalfOfCredential,
    RefreshTokenCredential, UsernamePasswordCredential,
};
use entraid_testkit::emulator::{App, Endpoint, Fault, REDIS_RESOURCE, User};
use entraid_testkit::keys::TestKey;
use entraid_testkit::tls::ClientCertificate as TestCert;

use crate::common::Ctx;

fn ropc(ctx: &Ctx, username: &str, password: &str) -> UsernamePasswordCredential {
    UsernamePasswordCredential::builder()
        .tenant_id(ctx.emu.tenant_id())
        .username(username)
        .password(Secret::new(password))
        .authority_host(ctx.host())
        .http_client(ctx.http.clone())
        .build()
        .unwrap()
}

fn grants(ctx: &Ctx) -> Vec<String> {
    ctx.emu
        .requests_to(Endpoint::Token)
        .iter()
        .map(|r| r.param("grant_type").unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn username_password_then_refresh_token_then_password_again_when_revoked() {
    let ctx = Ctx::start().await;
    let alice = ctx
        .emu
        .add_user(User::new("alice@contoso.com", "pa55word"))
        .unwrap();
    let credential = ropc(&ctx, "alice@contoso.com", "pa55word");
    let token = ctx.expect_token(&credential, &alice.oid).await;
    assert_eq!(
        ctx.emu.verifier().verify(&token).unwrap().claims.app_id(),
        Some(AZURE_CLI_CLIENT_ID)
    );
    let first = &ctx.emu.requests_to(Endpoint::Token)[0];
    assert_eq!(first.param("username"), Some("alice@contoso.com"));
    assert_eq!(first.param("client_id"), Some(AZURE_CLI_CLIENT_ID));
    assert_eq!(
        first.param("scope"),
        Some("https://redis.azure.com/.default openid profile offline_access")
    );
    ctx.expect_token(&credential, &alice.oid).await;
    assert_eq!(grants(&ctx), ["password", "refresh_token"]);
    // A server error on the refresh grant is returned (and retried by the caller), not a new password sign-in.
    ctx.emu.faults(Endpoint::Token).push(Fault::Status(503));
    let err = credential.request_token().await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(
        grants(&ctx).last().map(String::as_str),
        Some("refresh_token")
    );
    ctx.expect_token(&credential, &alice.oid).await;
    assert_eq!(
        grants(&ctx).last().map(String::as_str),
        Some("refresh_token")
    );
    // Revoked (AADSTS50173): forgotten, and the password grant runs again.
    ctx.emu.revoke_refresh_tokens(&alice.oid);
    ctx.expect_token(&credential, &alice.oid).await;
    let all = grants(&ctx);
    assert_eq!(&all[all.len() - 2..], ["refresh_token", "password"]);
}

#[tokio::test]
async fn username_password_refusals_mfa_and_wrong_password() {
    let ctx = Ctx::start().await;
    ctx.emu
        .add_user(User::new("bob@contoso.com", "pw").mfa_required(true))
        .unwrap();
    let err = ropc(&ctx, "bob@contoso.com", "pw")
        .request_token()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AuthenticationFailed { .. }), "{err}");
    assert!(err.entra_error().unwrap().has_code(50076), "{err}");
    assert!(err.to_string().contains("multi-factor"), "{err}");
    let err = ropc(&ctx, "bob@contoso.com", "wrong")
        .request_token()
        .await
        .unwrap_err();
    assert!(err.entra_error().unwrap().has_code(50126), "{err}");
    assert!(
        UsernamePasswordCredential::builder()
            .username("u")
            .password(Secret::new(""))
            .build()
            .is_err()
    );
}

/// Alice's token for the middle-tier API `api-app`.
fn incoming(ctx: &Ctx, alice: &str) -> Secret {
    Secret::new(ctx.emu.issue_token(alice, "api://api-app").unwrap())
}

#[tokio::test]
async fn on_behalf_of_with_a_secret_then_its_refresh_token() {
    let ctx = Ctx::start().await;
    let alice = ctx
        .emu
        .add_user(User::new("alice@contoso.com", "pw"))
        .unwrap();
    ctx.emu
        .add_app(App::new("api-app").secret("api-secret"))
        .unwrap();
    let build = |secret: &str| {
        OnBehalfOfCredential::builder()
            .tenant_id(ctx.emu.tenant_id())
            .client_id("api-app")
            .client_secret(Secret::new(secret))
            .user_assertion(incoming(&ctx, &alice.oid))
            .authority_host(ctx.host())
            .http_client(ctx.http.clone())
            .build()
            .unwrap()
    };
    let credential = build("api-secret");
    let token = ctx.expect_token(&credential, &alice.oid).await;
    assert_eq!(
        ctx.emu.verifier().verify(&token).unwrap().claims.app_id(),
        Some("api-app")
    );
    let obo = &ctx.emu.requests_to(Endpoint::Token)[0];
    assert_eq!(
        obo.param("grant_type"),
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    );
    assert_eq!(obo.param("requested_token_use"), Some("on_behalf_of"));
    ctx.expect_token(&credential, &alice.oid).await;
    assert_eq!(
        grants(&ctx).last().map(String::as_str),
        Some("refresh_token")
    );
    let err = build("wrong").request_token().await.unwrap_err();
    assert!(err.entra_error().unwrap().has_code(50012), "{err}");
    // A token for another audience is refused (AADSTS500131).
    let wrong_audience = OnBehalfOfCredential::builder()
        .tenant_id(ctx.emu.tenant_id())
        .client_id("api-app")
        .client_secret(Secret::new("api-secret"))
        .user_assertion(Secret::new(
            ctx.emu.issue_token(&alice.oid, REDIS_RESOURCE).unwrap(),
        ))
        .authority_host(ctx.host())
        .http_client(ctx.http.clone())
        .build()
        .unwrap();
    let err = wrong_audience.request_token().await.unwrap_err();
    assert!(err.entra_error().unwrap().has_code(500131), "{err}");
}

#[tokio::test]
async fn on_behalf_of_with_a_certificate() {
    let ctx = Ctx::start().await;
    let alice = ctx
        .emu
        .add_user(User::new("alice@contoso.com", "pw"))
        .unwrap();
    let cert = TestCert::self_signed(TestKey::client_app(), "api-app").unwrap();
    ctx.emu
        .add_app(App::new("api-app").certificate(&cert))
        .unwrap();
    let credential = OnBehalfOfCredential::builder()
        .tenant_id(ctx.emu.tenant_id())
        .client_id("api-app")
        .certificate(ClientCertificate::from_pem(cert.pem_bundle().as_bytes()).unwrap())
        .user_assertion(incoming(&ctx, &alice.oid))
        .authority_host(ctx.host())
        .http_client(ctx.http.clone())
        .build()
        .unwrap();
    ctx.expect_token(&credential, &alice.oid).await;
    let first = &ctx.emu.requests_to(Endpoint::Token)[0];
    assert_eq!(
        first.param("client_assertion_type"),
        Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    );
    // The refresh grant reuses the assertion; the emulator refuses a replayed jti, so a fresh one is signed.
    ctx.expect_token(&credential, &alice.oid).await;
    assert_eq!(
        grants(&ctx).last().map(String::as_str),
        Some("refresh_token")
    );
    assert!(
        OnBehalfOfCredential::builder()
            .tenant_id("t")
            .client_id("c")
            .user_assertion(Secret::new("x"))
            .build()
            .unwrap_err()
            .to_string()
            .contains("secret or a certificate")
    );
}

#[tokio::test]
async fn a_refresh_token_credential_rotates_its_token_and_fails_when_revoked() {
    let ctx = Ctx::start().await;
    let alice = ctx
        .emu
        .add_user(User::new("alice@contoso.com", "pw"))
        .unwrap();
    let response = ctx
        .emu
        .client()
        .post_form(
            &ctx.emu.token_url(ctx.emu.tenant_id()),
            &[
                ("grant_type", "password"),
                ("client_id", AZURE_CLI_CLIENT_ID),
                ("username", "alice@contoso.com"),
                ("password", "pw"),
                ("scope", "https://redis.azure.com/.default offline_access"),
            ],
            &[],
        )
        .await
        .unwrap();
    let rt = response.json().unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let credential = RefreshTokenCredential::builder()
        .tenant_id(ctx.emu.tenant_id())
        .refresh_token(Secret::new(rt.clone()))
        .authority_host(ctx.host())
        .http_client(ctx.http.clone())
        .build()
        .unwrap();
    ctx.expect_token(&credential, &alice.oid).await;
    ctx.expect_token(&credential, &alice.oid).await;
    assert!(!format!("{credential:?}").contains(&rt));
    ctx.emu.revoke_refresh_tokens(&alice.oid);
    let err = credential.request_token().await.unwrap_err();
    assert!(err.entra_error().unwrap().has_code(50173), "{err}");
}

#[tokio::test]
async fn oidc_discovery_is_used_for_custom_authorities_and_cached() {
    let ctx = Ctx::start().await;
    let alice = ctx
        .emu
        .add_user(User::new("alice@contoso.com", "pw"))
        .unwrap();
    let authority = Authority::custom(&format!(
        "{}/{}/v2.0",
        ctx.emu.https_url(),
        ctx.emu.tenant_id()
    ))
    .unwrap();
    let discovery = OidcDiscovery::new();
    let build = || {
        UsernamePasswordCredential::builder()
            .authority(authority.clone())
            .username("alice@contoso.com")
            .password(Secret::new("pw"))
            .oidc_discovery(discovery.clone())
            .http_client(ctx.http.clone())
            .build()
            .unwrap()
    };
    // A failed discovery is not cached.
    ctx.emu
        .faults(Endpoint::OpenIdConfiguration)
        .push(Fault::Status(500));
    let err = build().request_token().await.unwrap_err();
    assert_eq!(err.status(), Some(500), "{err}");
    assert!(discovery.is_empty());
    ctx.expect_token(&build(), &alice.oid).await;
    ctx.expect_token(&build(), &alice.oid).await;
    assert_eq!(discovery.len(), 1);
    assert_eq!(
        ctx.emu.requests_to(Endpoint::OpenIdConfiguration).len(),
        2,
        "one failure, then cached"
    );
    let configuration = discovery.get(&ctx.http, &authority).await.unwrap();
    assert_eq!(
        configuration.issuer.as_deref(),
        Some(ctx.emu.issuer(ctx.emu.tenant_id()).as_str())
    );
    assert!(configuration.device_authorization_endpoint.is_some());
    // Custom authorities use the shared cache by default.
    let shared = UsernamePasswordCredential::builder()
        .authority(authority.clone())
        .username("alice@contoso.com")
        .password(Secret::new("pw"))
        .http_client(ctx.http.clone())
        .build()
        .unwrap();
    ctx.expect_token(&shared, &alice.oid).await;
    assert_eq!(ctx.emu.requests_to(Endpoint::OpenIdConfiguration).len(), 3);
}
