//! User flows: password (ROPC), device code, authorization code with PKCE, refresh token, on-behalf-of.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use entraid_core::EntraError;
use entraid_testkit::emulator::{
    AZURE_CLI_CLIENT_ID, App, AuthorizePolicy, ClientError, DeviceCodeOutcome, DeviceCodePolicy,
    Emulator, HttpResponse, REDIS_RESOURCE, User, percent_encode,
};
use entraid_testkit::keys::{JwtVerifier, VerifiedJwt};
use serde_json::Value;

const SCOPE: &str = "https://redis.azure.com/.default openid profile offline_access";

async fn token(emu: &Emulator, form: &[(&str, &str)]) -> HttpResponse {
    emu.client()
        .post_form(&emu.token_url(emu.tenant_id()), form, &[])
        .await
        .unwrap()
}

fn verify(emu: &Emulator, jwt: &Value) -> VerifiedJwt {
    JwtVerifier::from_jwks(&emu.jwks())
        .verify(jwt.as_str().expect("a JWT"))
        .expect("verifies")
}

fn codes(resp: &HttpResponse) -> (u16, String, Vec<i64>) {
    let err =
        EntraError::from_json(&resp.body).unwrap_or_else(|| panic!("Entra error: {}", resp.text()));
    (resp.status, err.error, err.error_codes)
}

async fn setup() -> (Emulator, String) {
    let emu = Emulator::start().await.unwrap();
    emu.add_app(App::new("public-app").public_client()).unwrap();
    let alice = emu
        .add_user(User::new("alice@contoso.com", "pa55word").display_name("Alice"))
        .unwrap();
    (emu, alice.oid)
}

#[tokio::test]
async fn password_grant_issues_user_tokens_and_refresh_tokens() {
    let (emu, alice) = setup().await;
    let resp = token(
        &emu,
        &[
            ("grant_type", "password"),
            ("client_id", "public-app"),
            ("username", "Alice@Contoso.com"),
            ("password", "pa55word"),
            ("scope", SCOPE),
        ],
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.text().starts_with(
        r#"{"token_type":"Bearer","scope":"https://redis.azure.com/.default","expires_in":3599,"#
    ));
    let body = resp.json().unwrap();
    let c = verify(&emu, &body["access_token"]).claims;
    assert_eq!(c.oid(), Some(alice.as_str()));
    assert_eq!(c.aud(), Some(REDIS_RESOURCE));
    assert_eq!(c.idtyp(), Some("user"));
    assert_eq!(c.app_id(), Some("public-app"));
    assert_eq!(
        c.get("upn").and_then(Value::as_str),
        Some("alice@contoso.com")
    );
    assert_eq!(c.get("name").and_then(Value::as_str), Some("Alice"));
    let id = verify(&emu, &body["id_token"]).claims;
    assert_eq!(id.aud(), Some("public-app"));
    assert_eq!(id.oid(), Some(alice.as_str()));

    // Refresh: a new access token for the same user; the refresh token is redacted in the log.
    let rt = body["refresh_token"].as_str().unwrap().to_owned();
    let resp = token(
        &emu,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "public-app"),
            ("refresh_token", &rt),
            ("scope", SCOPE),
        ],
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let refreshed = resp.json().unwrap();
    assert_eq!(
        verify(&emu, &refreshed["access_token"]).claims.oid(),
        Some(alice.as_str())
    );
    assert!(refreshed["refresh_token"].is_string());
    assert_eq!(emu.tokens_issued(&alice), 2);
    assert!(!format!("{:?}", emu.requests()).contains(&rt));
    assert!(!format!("{:?}", emu.requests()).contains("pa55word"));

    // Another client cannot use it; a revoked one answers 50173; garbage 9002313.
    emu.add_app(App::new("other-app").public_client()).unwrap();
    let resp = token(
        &emu,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "other-app"),
            ("refresh_token", &rt),
        ],
    )
    .await;
    assert_eq!(codes(&resp), (400, "invalid_grant".into(), vec![9002313]));
    emu.revoke_refresh_tokens(&alice);
    let resp = token(
        &emu,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "public-app"),
            ("refresh_token", &rt),
        ],
    )
    .await;
    assert_eq!(codes(&resp), (400, "invalid_grant".into(), vec![50173]));
    let resp = token(
        &emu,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "public-app"),
            ("refresh_token", "junk"),
        ],
    )
    .await;
    assert_eq!(codes(&resp).2, vec![9002313]);
}

#[tokio::test]
async fn password_grant_refusals() {
    let (emu, _) = setup().await;
    emu.add_user(User::new("bob@contoso.com", "pw").mfa_required(true))
        .unwrap();
    let ropc = |user: &'static str, pw: &'static str| {
        let emu = emu.clone();
        async move {
            token(
                &emu,
                &[
                    ("grant_type", "password"),
                    ("client_id", "public-app"),
                    ("username", user),
                    ("password", pw),
                    ("scope", SCOPE),
                ],
            )
            .await
        }
    };
    assert_eq!(
        codes(&ropc("alice@contoso.com", "wrong").await),
        (400, "invalid_grant".into(), vec![50126])
    );
    assert_eq!(
        codes(&ropc("nobody@contoso.com", "x").await),
        (400, "invalid_grant".into(), vec![50034])
    );
    let mfa = ropc("bob@contoso.com", "pw").await;
    assert_eq!(codes(&mfa), (400, "invalid_grant".into(), vec![50076]));
    let desc = EntraError::from_json(&mfa.body)
        .unwrap()
        .error_description
        .unwrap();
    assert!(desc.starts_with("AADSTS50076: Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access 'https://redis.azure.com'."));
    // Public clients may not present a secret; a confidential one must; an unknown client is 700016.
    emu.add_app(App::new("conf").secret("s")).unwrap();
    let resp = token(
        &emu,
        &[
            ("grant_type", "password"),
            ("client_id", "public-app"),
            ("client_secret", "s"),
            ("username", "alice@contoso.com"),
            ("password", "pa55word"),
            ("scope", SCOPE),
        ],
    )
    .await;
    assert_eq!(codes(&resp), (401, "invalid_client".into(), vec![700025]));
    let resp = token(
        &emu,
        &[
            ("grant_type", "password"),
            ("client_id", "conf"),
            ("username", "alice@contoso.com"),
            ("password", "pa55word"),
            ("scope", SCOPE),
        ],
    )
    .await;
    assert_eq!(codes(&resp), (401, "invalid_client".into(), vec![7000218]));
    let resp = token(
        &emu,
        &[
            ("grant_type", "password"),
            ("client_id", "conf"),
            ("client_secret", "s"),
            ("username", "alice@contoso.com"),
            ("password", "pa55word"),
            ("scope", SCOPE),
        ],
    )
    .await;
    assert_eq!(resp.status, 200);
    let resp = token(
        &emu,
        &[
            ("grant_type", "password"),
            ("client_id", "ghost"),
            ("username", "alice@contoso.com"),
            ("password", "pa55word"),
            ("scope", SCOPE),
        ],
    )
    .await;
    assert_eq!(codes(&resp).2, vec![700016]);
    // Two resource scopes are invalid.
    let resp = token(
        &emu,
        &[
            ("grant_type", "password"),
            ("client_id", "public-app"),
            ("username", "alice@contoso.com"),
            ("password", "pa55word"),
            ("scope", "https://redis.azure.com/.default api://x/.default"),
        ],
    )
    .await;
    assert_eq!(codes(&resp), (400, "invalid_scope".into(), vec![70011]));
    // The Azure CLI's public client id is built in.
    let resp = token(
        &emu,
        &[
            ("grant_type", "password"),
            ("client_id", AZURE_CLI_CLIENT_ID),
            ("username", "alice@contoso.com"),
            ("password", "pa55word"),
            ("scope", SCOPE),
        ],
    )
    .await;
    assert_eq!(resp.status, 200);
}

async fn start_device_code(emu: &Emulator) -> Value {
    let url = format!(
        "{}/{}/oauth2/v2.0/devicecode",
        emu.https_url(),
        emu.tenant_id()
    );
    let resp = emu
        .client()
        .post_form(&url, &[("client_id", "public-app"), ("scope", SCOPE)], &[])
        .await
        .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json().unwrap()
}

async fn poll(emu: &Emulator, device_code: &str) -> HttpResponse {
    token(
        emu,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", "public-app"),
            ("device_code", device_code),
        ],
    )
    .await
}

#[tokio::test]
async fn device_code_pending_until_the_test_approves() {
    let (emu, alice) = setup().await;
    let dc = start_device_code(&emu).await;
    let user_code = dc["user_code"].as_str().unwrap();
    assert_eq!(user_code.len(), 9);
    assert_eq!(dc["expires_in"], 900);
    assert_eq!(dc["interval"], 5);
    assert_eq!(dc["verification_uri"], "https://microsoft.com/devicelogin");
    assert!(dc["message"].as_str().unwrap().contains(user_code));
    let device_code = dc["device_code"].as_str().unwrap();
    let pending = poll(&emu, device_code).await;
    assert_eq!(
        codes(&pending),
        (400, "authorization_pending".into(), vec![70016])
    );
    assert!(
        EntraError::from_json(&pending.body)
            .unwrap()
            .error_description
            .unwrap()
            .starts_with("AADSTS70016: Pending end-user authorization.\r\nTrace ID: ")
    );
    assert_eq!(emu.pending_device_codes(), vec![user_code.to_owned()]);
    assert!(
        emu.approve_device_code(user_code, "nobody@contoso.com")
            .is_err()
    );
    assert!(
        emu.approve_device_code("WRONGCODE", "alice@contoso.com")
            .is_err()
    );
    emu.approve_device_code(user_code, "alice@contoso.com")
        .unwrap();
    let resp = poll(&emu, device_code).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let body = resp.json().unwrap();
    assert_eq!(
        verify(&emu, &body["access_token"]).claims.oid(),
        Some(alice.as_str())
    );
    assert!(body["refresh_token"].is_string());
    // Redeemed once only.
    assert_eq!(codes(&poll(&emu, device_code).await).2, vec![70002, 54005]);
    assert_eq!(
        codes(&poll(&emu, "junk").await),
        (400, "invalid_grant".into(), vec![70000])
    );
    assert!(emu.pending_device_codes().is_empty());
}

#[tokio::test]
async fn device_code_slow_down_approve_after_polls_and_decline() {
    let (emu, alice) = setup().await;
    emu.set_device_code_policy(DeviceCodePolicy {
        slow_down_polls: 1,
        interval: Duration::from_secs(1),
        ..DeviceCodePolicy::approve_after(2, "alice@contoso.com")
    });
    let dc = start_device_code(&emu).await;
    assert_eq!(dc["interval"], 1);
    let code = dc["device_code"].as_str().unwrap();
    assert_eq!(codes(&poll(&emu, code).await).1, "slow_down");
    assert_eq!(codes(&poll(&emu, code).await).1, "authorization_pending");
    let resp = poll(&emu, code).await;
    assert_eq!(
        verify(&emu, &resp.json().unwrap()["access_token"])
            .claims
            .oid(),
        Some(alice.as_str())
    );

    emu.set_device_code_policy(DeviceCodePolicy {
        outcome: DeviceCodeOutcome::DeclineAfterPolls { polls: 2 },
        ..DeviceCodePolicy::default()
    });
    let dc = start_device_code(&emu).await;
    let code = dc["device_code"].as_str().unwrap();
    assert_eq!(codes(&poll(&emu, code).await).1, "authorization_pending");
    assert_eq!(codes(&poll(&emu, code).await).1, "authorization_declined");

    emu.set_device_code_policy(DeviceCodePolicy::default());
    let dc = start_device_code(&emu).await;
    emu.decline_device_code(dc["user_code"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        codes(&poll(&emu, dc["device_code"].as_str().unwrap()).await).1,
        "authorization_declined"
    );
}

#[tokio::test(start_paused = true)]
async fn device_code_expires_on_the_emulator_clock() {
    let emu = Emulator::start().await.unwrap();
    emu.add_app(App::new("public-app").public_client()).unwrap();
    emu.add_user(User::new("alice@contoso.com", "pw")).unwrap();
    emu.set_device_code_policy(DeviceCodePolicy {
        expires_in: Duration::from_secs(30),
        ..DeviceCodePolicy::default()
    });
    let url = format!(
        "{}/{}/oauth2/v2.0/devicecode",
        emu.http_url(),
        emu.tenant_id()
    );
    let dc = emu
        .client()
        .post_form(&url, &[("client_id", "public-app"), ("scope", SCOPE)], &[])
        .await
        .unwrap()
        .json()
        .unwrap();
    let code = dc["device_code"].as_str().unwrap().to_owned();
    let token_url = format!("{}/{}/oauth2/v2.0/token", emu.http_url(), emu.tenant_id());
    let form = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("client_id", "public-app"),
        ("device_code", code.as_str()),
    ];
    let resp = emu
        .client()
        .post_form(&token_url, &form, &[])
        .await
        .unwrap();
    assert_eq!(codes(&resp).1, "authorization_pending");
    tokio::time::sleep(Duration::from_secs(31)).await;
    let resp = emu
        .client()
        .post_form(&token_url, &form, &[])
        .await
        .unwrap();
    assert_eq!(codes(&resp), (400, "expired_token".into(), vec![70019]));
    assert!(
        EntraError::from_json(&resp.body)
            .unwrap()
            .error_description
            .unwrap()
            .starts_with("AADSTS70019: Verification code expired.")
    );
}

fn pkce() -> (String, String) {
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".to_owned();
    let challenge = URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ));
    (verifier, challenge)
}

async fn authorize(emu: &Emulator, redirect: &str, challenge: &str, extra: &str) -> HttpResponse {
    let url = format!(
        "{}/{}/oauth2/v2.0/authorize?client_id=public-app&response_type=code&redirect_uri={}&scope={}&state=st-1&code_challenge={challenge}&code_challenge_method=S256{extra}",
        emu.https_url(),
        emu.tenant_id(),
        percent_encode(redirect),
        percent_encode(SCOPE)
    );
    emu.client().get(&url, &[]).await.unwrap()
}

fn query_param(location: &str, name: &str) -> Option<String> {
    let query = location.split_once('?')?.1;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| {
            v.replace("%2E", ".")
                .replace("%2D", "-")
                .replace("%5F", "_")
        })
    })
}

#[tokio::test]
async fn authorization_code_with_pkce() {
    let (emu, alice) = setup().await;
    let bob = emu.add_user(User::new("bob@contoso.com", "pw")).unwrap();
    let (verifier, challenge) = pkce();
    let redirect = "http://localhost:8400/";
    let resp = authorize(&emu, redirect, &challenge, "").await;
    assert_eq!(resp.status, 302, "{}", resp.text());
    let location = resp.header("location").unwrap().to_owned();
    assert!(location.starts_with("http://localhost:8400/?code="));
    assert_eq!(query_param(&location, "state").as_deref(), Some("st-1"));
    assert!(query_param(&location, "session_state").is_some());
    let code = query_param(&location, "code").unwrap();
    let redeem = |code: String, verifier: String, redirect: String| {
        let emu = emu.clone();
        async move {
            token(
                &emu,
                &[
                    ("grant_type", "authorization_code"),
                    ("client_id", "public-app"),
                    ("code", &code),
                    ("redirect_uri", &redirect),
                    ("code_verifier", &verifier),
                    ("scope", SCOPE),
                ],
            )
            .await
        }
    };
    // A wrong verifier, a wrong redirect URI.
    assert_eq!(
        codes(&redeem(code.clone(), "x".repeat(43), redirect.into()).await).2,
        vec![501481]
    );
    assert_eq!(
        codes(&redeem(code.clone(), verifier.clone(), "http://localhost:9/".into()).await).2,
        vec![500117]
    );
    let resp = redeem(code.clone(), verifier.clone(), redirect.into()).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let body = resp.json().unwrap();
    assert_eq!(
        verify(&emu, &body["access_token"]).claims.oid(),
        Some(alice.as_str()),
        "the first user by default"
    );
    assert!(body["id_token"].is_string() && body["refresh_token"].is_string());
    // Redeemed code: 54005 exactly as the seed.
    let again = redeem(code, verifier.clone(), redirect.into()).await;
    assert_eq!(
        codes(&again),
        (400, "invalid_grant".into(), vec![70002, 54005])
    );
    assert!(EntraError::from_json(&again.body).unwrap().error_description.unwrap().starts_with(
        "AADSTS70002: Error validating credentials. AADSTS54005: OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token."
    ));
    // login_hint picks the user; the policy can force one.
    let resp = authorize(&emu, redirect, &challenge, "&login_hint=bob%40contoso.com").await;
    let code = query_param(resp.header("location").unwrap(), "code").unwrap();
    let body = redeem(code, verifier.clone(), redirect.into())
        .await
        .json()
        .unwrap();
    assert_eq!(
        verify(&emu, &body["access_token"]).claims.oid(),
        Some(bob.oid.as_str())
    );
    emu.set_authorize_policy(AuthorizePolicy::approve_as("alice@contoso.com"));
    let resp = authorize(&emu, redirect, &challenge, "&login_hint=bob%40contoso.com").await;
    let code = query_param(resp.header("location").unwrap(), "code").unwrap();
    let body = redeem(code, verifier, redirect.into())
        .await
        .json()
        .unwrap();
    assert_eq!(
        verify(&emu, &body["access_token"]).claims.oid(),
        Some(alice.as_str())
    );
}

#[tokio::test]
async fn authorize_refusals() {
    let (emu, _) = setup().await;
    let (_, challenge) = pkce();
    emu.set_authorize_policy(AuthorizePolicy::refuse());
    let resp = authorize(&emu, "http://127.0.0.1:5000/cb", &challenge, "").await;
    assert_eq!(resp.status, 302);
    let location = resp.header("location").unwrap();
    assert!(
        location.starts_with(
            "http://127.0.0.1:5000/cb?error=access_denied&error_description=AADSTS65004"
        )
    );
    assert!(location.ends_with("&state=st-1"));
    emu.set_authorize_policy(AuthorizePolicy::approve());
    // Not a loopback redirect: an error page, no redirect.
    let resp = authorize(&emu, "https://evil.example/cb", &challenge, "").await;
    assert_eq!(resp.status, 400);
    assert!(resp.text().contains("AADSTS50011"));
    // plain PKCE is refused.
    let url = format!(
        "{}/{}/oauth2/v2.0/authorize?client_id=public-app&response_type=code&redirect_uri=http%3A%2F%2Flocalhost%3A1%2F&scope={}&code_challenge=abc&code_challenge_method=plain",
        emu.https_url(),
        emu.tenant_id(),
        percent_encode(SCOPE)
    );
    let resp = emu.client().get(&url, &[]).await.unwrap();
    assert!(
        resp.header("location")
            .unwrap()
            .contains("error=invalid_request")
    );
}

#[tokio::test(start_paused = true)]
async fn authorize_delay_is_scriptable() {
    let emu = Emulator::start().await.unwrap();
    emu.add_app(App::new("public-app").public_client()).unwrap();
    emu.add_user(User::new("alice@contoso.com", "pw")).unwrap();
    emu.set_authorize_policy(AuthorizePolicy::approve().delay(Duration::from_secs(120)));
    let url = format!(
        "{}/{}/oauth2/v2.0/authorize?client_id=public-app&response_type=code&redirect_uri=http%3A%2F%2Flocalhost%3A1%2F&scope={}",
        emu.http_url(),
        emu.tenant_id(),
        percent_encode(SCOPE)
    );
    let err = emu
        .client()
        .timeout(Duration::from_secs(10))
        .get(&url, &[])
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Timeout(_)));
    let started = tokio::time::Instant::now();
    let resp = emu
        .client()
        .timeout(Duration::from_secs(300))
        .get(&url, &[])
        .await
        .unwrap();
    assert_eq!(resp.status, 302);
    assert!(started.elapsed() >= Duration::from_secs(120));
}

#[tokio::test]
async fn on_behalf_of_exchanges_a_user_token_for_the_middle_tier() {
    let (emu, alice) = setup().await;
    let api = emu
        .add_app(App::new("api-app").secret("api-secret"))
        .unwrap();
    // Alice gets a token for the middle-tier API.
    let resp = token(
        &emu,
        &[
            ("grant_type", "password"),
            ("client_id", "public-app"),
            ("username", "alice@contoso.com"),
            ("password", "pa55word"),
            ("scope", "api://api-app/.default"),
        ],
    )
    .await;
    let incoming = resp.json().unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        verify(&emu, &Value::String(incoming.clone())).claims.aud(),
        Some("api://api-app")
    );
    let obo = |assertion: String, secret: &'static str| {
        let emu = emu.clone();
        async move {
            token(
                &emu,
                &[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("client_id", "api-app"),
                    ("client_secret", secret),
                    ("assertion", &assertion),
                    ("scope", "https://redis.azure.com/.default"),
                    ("requested_token_use", "on_behalf_of"),
                ],
            )
            .await
        }
    };
    let resp = obo(incoming.clone(), "api-secret").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let body = resp.json().unwrap();
    let c = verify(&emu, &body["access_token"]).claims;
    assert_eq!(c.oid(), Some(alice.as_str()));
    assert_eq!(c.app_id(), Some("api-app"));
    assert_eq!(c.aud(), Some(REDIS_RESOURCE));
    assert_eq!(c.idtyp(), Some("user"));
    assert!(body["refresh_token"].is_string());

    assert_eq!(
        codes(&obo(incoming.clone(), "wrong").await).2,
        vec![70002, 50012]
    );
    // A token for another audience, an app token, and a forged token are refused.
    let for_redis = emu.issue_token(&alice, REDIS_RESOURCE).unwrap();
    assert_eq!(
        codes(&obo(for_redis, "api-secret").await),
        (400, "invalid_grant".into(), vec![500131])
    );
    let app_token = emu.issue_token(&api.oid, "api://api-app").unwrap();
    assert_eq!(codes(&obo(app_token, "api-secret").await).2, vec![50013]);
    let mut forged: Vec<&str> = incoming.split('.').collect();
    let sig = "A".repeat(forged[2].len());
    forged[2] = &sig;
    assert_eq!(
        codes(&obo(forged.join("."), "api-secret").await).2,
        vec![50013]
    );
    let expired = emu
        .issue_token_with_lifetime(&alice, "api://api-app", Duration::from_secs(1))
        .unwrap();
    emu.set_clock_skew(5);
    assert_eq!(codes(&obo(expired, "api-secret").await).2, vec![500133]);
}
