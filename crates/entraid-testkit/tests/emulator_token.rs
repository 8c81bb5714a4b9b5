//! The emulator's tenant endpoints over HTTPS: client credentials with a secret, a certificate assertion and a
//! federated assertion; discovery and keys; Entra-shaped refusals.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::time::Duration;

use entraid_core::EntraError;
use entraid_testkit::emulator::{
    App, Emulator, FederatedCredential, GITHUB_ISSUER, HttpResponse, KUBERNETES_ISSUER,
    PIPELINES_ISSUER, REDIS_APP_ID, REDIS_RESOURCE, REDIS_SCOPE,
};
use entraid_testkit::keys::{JwsAlgorithm, JwtVerifier, TestKey, VerifiedJwt};
use entraid_testkit::tls::{CLIENT_ASSERTION_TYPE, ClientCertificate};
use serde_json::{Value, json};

async fn token(emu: &Emulator, form: &[(&str, &str)]) -> HttpResponse {
    emu.client()
        .post_form(
            &emu.token_url(emu.tenant_id()),
            form,
            &[("client-request-id", "corr-123")],
        )
        .await
        .unwrap()
}

fn verify(emu: &Emulator, body: &Value) -> VerifiedJwt {
    let jwt = body["access_token"].as_str().expect("access_token");
    JwtVerifier::from_jwks(&emu.jwks())
        .verify(jwt)
        .expect("verifies with the emulator's JWKS")
}

fn entra_error(resp: &HttpResponse) -> EntraError {
    EntraError::from_json(&resp.body).unwrap_or_else(|| panic!("Entra error body: {}", resp.text()))
}

#[tokio::test]
async fn client_secret_issues_a_verifiable_redis_token() {
    let emu = Emulator::start().await.unwrap();
    let app = emu.add_app(App::new("app-1").secret("s3cret")).unwrap();
    let before = emu.now_unix();
    let resp = token(
        &emu,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "app-1"),
            ("client_secret", "s3cret"),
            ("scope", REDIS_SCOPE),
        ],
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(
        resp.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    // Field order and types as Entra sends them.
    let text = resp.text();
    assert!(text.starts_with(
        r#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"#
    ));
    let body = resp.json().unwrap();
    assert!(body.get("refresh_in").is_none() && body.get("scope").is_none());
    let jwt = verify(&emu, &body);
    let c = &jwt.claims;
    assert_eq!(jwt.header["alg"], "RS256");
    assert_eq!(c.aud(), Some(REDIS_RESOURCE));
    assert_eq!(c.oid(), Some(app.oid.as_str()));
    assert_eq!(c.sub(), Some(app.oid.as_str()));
    assert_eq!(c.tid(), Some(emu.tenant_id()));
    assert_eq!(
        c.iss(),
        Some(format!("{}/{}/v2.0", emu.https_url(), emu.tenant_id()).as_str())
    );
    assert_eq!(c.app_id(), Some("app-1"));
    assert_eq!(c.get("azp"), Some(&json!("app-1")));
    assert_eq!(c.idtyp(), Some("app"));
    let iat = c.iat().unwrap();
    assert!(iat >= before && iat <= emu.now_unix());
    assert_eq!(c.nbf(), Some(iat));
    assert_eq!(c.exp(), Some(iat + 3599));
    assert_eq!(emu.tokens_issued(&app.oid), 1);
    assert_eq!(emu.total_tokens_issued(), 1);

    // The Redis app-id scope is the same resource; every request mints a new token.
    let resp = token(
        &emu,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "app-1"),
            ("client_secret", "s3cret"),
            ("scope", &format!("{REDIS_APP_ID}/.default")),
        ],
    )
    .await;
    let second = resp.json().unwrap();
    assert_eq!(verify(&emu, &second).claims.aud(), Some(REDIS_RESOURCE));
    assert_ne!(second["access_token"], body["access_token"]);
    assert_eq!(emu.tokens_issued(&app.oid), 2);

    // The request log redacts the secret.
    let log = emu.requests();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].param("client_secret"), Some("[redacted]"));
    assert_eq!(log[0].grant_type(), Some("client_credentials"));
    assert!(log[0].tls);
    assert!(!format!("{log:?}").contains("s3cret"));
}

#[tokio::test]
async fn lifetime_refresh_in_and_clock_skew_are_per_principal() {
    let emu = Emulator::start().await.unwrap();
    let app = emu
        .add_app(
            App::new("short")
                .secret("s")
                .token_lifetime(Duration::from_secs(2))
                .refresh_in(Duration::from_secs(1)),
        )
        .unwrap();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "short"),
        ("client_secret", "s"),
        ("scope", REDIS_SCOPE),
    ];
    let body = token(&emu, &form).await.json().unwrap();
    assert_eq!(body["expires_in"], 2);
    assert_eq!(body["refresh_in"], 1);
    let c = verify(&emu, &body).claims;
    assert_eq!(c.exp().unwrap() - c.iat().unwrap(), 2);

    emu.set_token_lifetime(&app.oid, Duration::from_secs(7200))
        .unwrap();
    emu.set_refresh_in(&app.oid, None).unwrap();
    emu.set_clock_skew(-600);
    let body = token(&emu, &form).await.json().unwrap();
    assert_eq!(body["expires_in"], 7200);
    assert!(body.get("refresh_in").is_none());
    let c = verify(&emu, &body).claims;
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (c.iat().unwrap() - (wall - 600)).abs() <= 2,
        "iat follows the skewed clock"
    );
    assert!(
        emu.set_token_lifetime("nobody", Duration::from_secs(1))
            .is_err()
    );
}

#[tokio::test]
async fn bad_secret_unknown_client_unknown_tenant_and_bad_scope_are_entra_errors() {
    let emu = Emulator::start().await.unwrap();
    emu.add_app(App::new("app-1").secret("right")).unwrap();

    let resp = token(
        &emu,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "app-1"),
            ("client_secret", "wrong"),
            ("scope", REDIS_SCOPE),
        ],
    )
    .await;
    assert_eq!(resp.status, 401);
    let err = entra_error(&resp);
    assert_eq!(err.error, "invalid_client");
    assert_eq!(err.error_codes, vec![70002, 50012]);
    let desc = err.error_description.clone().unwrap();
    assert!(desc.starts_with("AADSTS70002: Error validating credentials. AADSTS50012: Invalid client secret is provided.\r\nTrace ID: "));
    assert!(desc.contains("\r\nCorrelation ID: corr-123\r\nTimestamp: "));
    assert_eq!(err.correlation_id.as_deref(), Some("corr-123"));
    assert!(err.trace_id.is_some() && err.timestamp.as_deref().unwrap().ends_with('Z'));
    assert!(!resp.text().contains("wrong"), "the secret is not echoed");

    let resp = token(
        &emu,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "nope"),
            ("client_secret", "x"),
            ("scope", REDIS_SCOPE),
        ],
    )
    .await;
    assert_eq!(resp.status, 400);
    let err = entra_error(&resp);
    assert_eq!(
        (err.error.as_str(), err.error_codes.as_slice()),
        ("unauthorized_client", &[700016][..])
    );

    let resp = emu
        .client()
        .post_form(
            &emu.token_url("other-tenant"),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "app-1"),
                ("client_secret", "right"),
                ("scope", REDIS_SCOPE),
            ],
            &[],
        )
        .await
        .unwrap();
    assert_eq!(resp.status, 400);
    assert_eq!(entra_error(&resp).error_codes, vec![90002]);

    let resp = token(
        &emu,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "app-1"),
            ("client_secret", "right"),
            ("scope", "https://redis.azure.com/read"),
        ],
    )
    .await;
    assert_eq!(resp.status, 400);
    let err = entra_error(&resp);
    assert_eq!(
        (err.error.as_str(), err.error_codes.as_slice()),
        ("invalid_scope", &[1002012][..])
    );

    let resp = token(
        &emu,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "app-1"),
            ("scope", REDIS_SCOPE),
        ],
    )
    .await;
    assert_eq!(resp.status, 401);
    assert_eq!(entra_error(&resp).error_codes, vec![7000218]);

    let resp = token(&emu, &[("client_id", "app-1")]).await;
    assert_eq!(entra_error(&resp).error_codes, vec![900144]);
    let resp = token(&emu, &[("grant_type", "magic"), ("client_id", "app-1")]).await;
    assert_eq!(entra_error(&resp).error, "unsupported_grant_type");

    let resp = emu
        .client()
        .get(&emu.token_url(emu.tenant_id()), &[])
        .await
        .unwrap();
    assert_eq!(entra_error(&resp).error_codes, vec![900561]);
    assert_eq!(emu.total_tokens_issued(), 0);
}

#[tokio::test]
async fn client_secret_basic_authentication() {
    use base64::Engine as _;
    let emu = Emulator::start().await.unwrap();
    let app = emu
        .add_app(App::new("basic-app").secret("p@ss:word"))
        .unwrap();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "basic-app"),
        ("scope", REDIS_SCOPE),
    ];
    let basic = |secret: &str| {
        let raw = format!(
            "basic-app:{}",
            entraid_testkit::emulator::percent_encode(secret)
        );
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    };
    let url = emu.token_url(emu.tenant_id());
    let ok = emu
        .client()
        .post_form(&url, &form, &[("authorization", &basic("p@ss:word"))])
        .await
        .unwrap();
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(
        verify(&emu, &ok.json().unwrap()).claims.oid(),
        Some(app.oid.as_str())
    );
    let bad = emu
        .client()
        .post_form(&url, &form, &[("authorization", &basic("nope"))])
        .await
        .unwrap();
    assert_eq!(entra_error(&bad).error_codes, vec![70002, 50012]);
    assert_eq!(
        emu.requests()[0].header("authorization"),
        Some("Basic [redacted]")
    );
}

#[tokio::test]
async fn extra_tenants_are_separate() {
    let emu = Emulator::start().await.unwrap();
    emu.add_tenant("contoso.onmicrosoft.com").unwrap();
    assert!(emu.add_tenant("bad tenant!").is_err());
    let app = emu
        .add_app(
            App::new("app")
                .tenant("contoso.onmicrosoft.com")
                .secret("s"),
        )
        .unwrap();
    assert!(
        emu.add_app(App::new("app").tenant("contoso.onmicrosoft.com"))
            .is_err(),
        "duplicate"
    );
    assert!(emu.add_app(App::new("x").tenant("unknown")).is_err());
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "app"),
        ("client_secret", "s"),
        ("scope", REDIS_SCOPE),
    ];
    let resp = emu
        .client()
        .post_form(&emu.token_url("contoso.onmicrosoft.com"), &form, &[])
        .await
        .unwrap();
    let c = verify(&emu, &resp.json().unwrap()).claims;
    assert_eq!(c.tid(), Some("contoso.onmicrosoft.com"));
    assert_eq!(c.oid(), Some(app.oid.as_str()));
    // Not registered in the default tenant.
    assert_eq!(token(&emu, &form).await.status, 400);
}

fn cert_form<'a>(client_id: &'a str, assertion: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("client_assertion_type", CLIENT_ASSERTION_TYPE),
        ("client_assertion", assertion),
        ("scope", REDIS_SCOPE),
    ]
}

#[tokio::test]
async fn certificate_assertions_ps256_and_rs256() {
    let emu = Emulator::start().await.unwrap();
    let cert = ClientCertificate::self_signed(TestKey::client_app(), "cert-app").unwrap();
    let app = emu
        .add_app(App::new("cert-app").certificate(&cert))
        .unwrap();
    let aud = emu.token_url(emu.tenant_id());
    for alg in [JwsAlgorithm::Ps256, JwsAlgorithm::Rs256] {
        let assertion = cert.client_assertion(alg, "cert-app", &aud, emu.now_unix());
        let resp = token(&emu, &cert_form("cert-app", &assertion)).await;
        assert_eq!(resp.status, 200, "{alg:?}: {}", resp.text());
        let c = verify(&emu, &resp.json().unwrap()).claims;
        assert_eq!(c.oid(), Some(app.oid.as_str()));
        assert_eq!(c.get("appidacr"), Some(&json!("2")));
    }
    // The PEM form registers the same way, and the http token URL is an accepted audience.
    let emu2 = Emulator::start().await.unwrap();
    emu2.add_app(App::new("pem-app").certificate_pem(cert.cert_pem()))
        .unwrap();
    let http_aud = format!("{}/{}/oauth2/v2.0/token", emu2.http_url(), emu2.tenant_id());
    let assertion =
        cert.client_assertion(JwsAlgorithm::Ps256, "pem-app", &http_aud, emu2.now_unix());
    assert_eq!(
        token(&emu2, &cert_form("pem-app", &assertion)).await.status,
        200
    );
    assert!(matches!(
        emu2.add_app(App::new("bad").certificate_pem("not a pem")),
        Err(entraid_testkit::emulator::EmulatorError::InvalidCertificate(_))
    ));
    assert_eq!(emu.tokens_issued(&app.oid), 2);
}

#[tokio::test]
async fn bad_certificate_assertions_are_refused_with_50013_or_700024() {
    let emu = Emulator::start().await.unwrap();
    let cert = ClientCertificate::self_signed(TestKey::client_app(), "cert-app").unwrap();
    emu.add_app(App::new("cert-app").certificate(&cert))
        .unwrap();
    let aud = emu.token_url(emu.tenant_id());
    let now = emu.now_unix();
    let claims = |aud: &str, sub: &str, jti: &str, nbf: i64, exp: i64| json!({"aud": aud, "iss": "cert-app", "sub": sub, "jti": jti, "nbf": nbf, "iat": nbf, "exp": exp});
    let check = |resp: HttpResponse, codes: &[i64]| {
        assert_eq!(resp.status, 401, "{}", resp.text());
        let err = entra_error(&resp);
        assert_eq!(err.error, "invalid_client");
        assert_eq!(err.error_codes, codes);
    };

    // Another key presenting the registered certificate's thumbprint: bad signature.
    let other = ClientCertificate::self_signed(TestKey::client_other(), "x").unwrap();
    let header = json!({"x5t#S256": cert.x5t_s256()});
    let forged = TestKey::client_other().sign_jwt_with(
        JwsAlgorithm::Ps256,
        header,
        &claims(&aud, "cert-app", "j1", now, now + 600),
    );
    check(
        token(&emu, &cert_form("cert-app", &forged)).await,
        &[70002, 50013],
    );
    // An unregistered certificate.
    let unknown = other.client_assertion(JwsAlgorithm::Ps256, "cert-app", &aud, now);
    let resp = token(&emu, &cert_form("cert-app", &unknown)).await;
    assert!(
        entra_error(&resp)
            .error_description
            .unwrap()
            .contains("AADSTS50013: Invalid client certificate.")
    );
    check(resp, &[70002, 50013]);
    // Wrong audience.
    let wrong_aud = cert.client_assertion_with(
        JwsAlgorithm::Ps256,
        &claims(
            "https://login.microsoftonline.com/x/oauth2/v2.0/token",
            "cert-app",
            "j2",
            now,
            now + 600,
        ),
    );
    check(
        token(&emu, &cert_form("cert-app", &wrong_aud)).await,
        &[70002, 50013],
    );
    // sub other than the client id.
    let wrong_sub = cert.client_assertion_with(
        JwsAlgorithm::Ps256,
        &claims(&aud, "someone", "j3", now, now + 600),
    );
    check(
        token(&emu, &cert_form("cert-app", &wrong_sub)).await,
        &[70002, 50013],
    );
    // Expired beyond the leeway, and not yet valid.
    let expired = cert.client_assertion_with(
        JwsAlgorithm::Rs256,
        &claims(&aud, "cert-app", "j4", now - 2000, now - 1000),
    );
    check(
        token(&emu, &cert_form("cert-app", &expired)).await,
        &[700024],
    );
    let early = cert.client_assertion_with(
        JwsAlgorithm::Ps256,
        &claims(&aud, "cert-app", "j5", now + 1000, now + 1600),
    );
    check(token(&emu, &cert_form("cert-app", &early)).await, &[700024]);
    // A jti used twice.
    let once = cert.client_assertion_with(
        JwsAlgorithm::Ps256,
        &claims(&aud, "cert-app", "j6", now, now + 600),
    );
    assert_eq!(token(&emu, &cert_form("cert-app", &once)).await.status, 200);
    let resp = token(&emu, &cert_form("cert-app", &once)).await;
    assert!(
        entra_error(&resp)
            .error_description
            .unwrap()
            .contains("jti")
    );
    check(resp, &[70002, 50013]);
    // A PS256 signature labelled RS256.
    let mislabelled = {
        let good = cert.client_assertion_with(
            JwsAlgorithm::Ps256,
            &claims(&aud, "cert-app", "j7", now, now + 600),
        );
        let parts: Vec<&str> = good.split('.').collect();
        let header = base64_url(
            &json!({"alg": "RS256", "typ": "JWT", "x5t#S256": cert.x5t_s256()}).to_string(),
        );
        format!("{header}.{}.{}", parts[1], parts[2])
    };
    check(
        token(&emu, &cert_form("cert-app", &mislabelled)).await,
        &[70002, 50013],
    );
    // Wrong assertion type.
    let good = cert.client_assertion(JwsAlgorithm::Ps256, "cert-app", &aud, now);
    let mut form = cert_form("cert-app", &good);
    form[2].1 = "urn:other";
    assert_eq!(
        entra_error(&token(&emu, &form).await).error_codes,
        vec![50027]
    );
    assert_eq!(emu.total_tokens_issued(), 1);
}

#[tokio::test]
async fn jti_replay_check_can_be_turned_off() {
    let emu = Emulator::builder()
        .reject_jti_replay(false)
        .start()
        .await
        .unwrap();
    let cert = ClientCertificate::self_signed(TestKey::client_app(), "c").unwrap();
    emu.add_app(App::new("c").certificate(&cert)).unwrap();
    let assertion = cert.client_assertion(
        JwsAlgorithm::Ps256,
        "c",
        &emu.token_url(emu.tenant_id()),
        emu.now_unix(),
    );
    for _ in 0..2 {
        assert_eq!(token(&emu, &cert_form("c", &assertion)).await.status, 200);
    }
}

fn base64_url(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

#[tokio::test]
async fn federated_assertions_from_each_emulated_issuer() {
    let emu = Emulator::start().await.unwrap();
    let k8s_sub = "system:serviceaccount:default:workload";
    let app = emu
        .add_app(
            App::new("fed-app")
                .federated(FederatedCredential::new(KUBERNETES_ISSUER, k8s_sub))
                .federated(FederatedCredential::new(
                    GITHUB_ISSUER,
                    emu.github_subject(),
                ))
                .federated(FederatedCredential::new(
                    PIPELINES_ISSUER,
                    Emulator::pipelines_subject("sc-1"),
                )),
        )
        .unwrap();
    // Kubernetes service-account token.
    let k8s = emu.kubernetes_token("default", "workload", Duration::from_secs(3600));
    let resp = token(&emu, &cert_form("fed-app", &k8s)).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        verify(&emu, &resp.json().unwrap()).claims.oid(),
        Some(app.oid.as_str())
    );

    // GitHub Actions: fetch from the emulated OIDC endpoint.
    let url = format!(
        "{}&audience=api://AzureADTokenExchange",
        emu.github_oidc_url()
    );
    let gh = emu
        .client()
        .get(
            &url,
            &[(
                "authorization",
                &format!("Bearer {}", emu.github_request_token()),
            )],
        )
        .await
        .unwrap();
    assert_eq!(gh.status, 200);
    let gh = gh.json().unwrap();
    assert_eq!(gh["count"], 1);
    let gh_jwt = gh["value"].as_str().unwrap();
    let v = JwtVerifier::new([TestKey::github()])
        .verify(gh_jwt)
        .unwrap();
    assert_eq!(v.claims.iss(), Some(GITHUB_ISSUER));
    assert_eq!(v.claims.aud(), Some("api://AzureADTokenExchange"));
    assert_eq!(token(&emu, &cert_form("fed-app", gh_jwt)).await.status, 200);

    // Azure Pipelines.
    let url = format!(
        "{}?api-version=7.1&serviceConnectionId=sc-1",
        emu.pipelines_oidc_url()
    );
    let auth = format!("Bearer {}", emu.pipelines_request_token());
    let ado = emu
        .client()
        .request(
            "POST",
            &url,
            &[
                ("authorization", &auth),
                ("x-tfs-fedauthredirect", "Suppress"),
            ],
            None,
        )
        .await
        .unwrap();
    assert_eq!(ado.status, 200, "{}", ado.text());
    let ado_jwt = ado.json().unwrap()["oidcToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        JwtVerifier::new([TestKey::pipelines()])
            .verify(&ado_jwt)
            .unwrap()
            .claims
            .iss(),
        Some(PIPELINES_ISSUER)
    );
    assert_eq!(
        token(&emu, &cert_form("fed-app", &ado_jwt)).await.status,
        200
    );
    assert_eq!(emu.tokens_issued(&app.oid), 3);
}

#[tokio::test]
async fn federated_mismatches_answer_70021_and_expired_700024() {
    let emu = Emulator::start().await.unwrap();
    emu.add_app(App::new("fed-app").federated(FederatedCredential::new(
        KUBERNETES_ISSUER,
        "system:serviceaccount:ns:sa",
    )))
    .unwrap();
    let expect = |resp: HttpResponse, status: u16, codes: &[i64]| {
        assert_eq!(resp.status, status, "{}", resp.text());
        assert_eq!(entra_error(&resp).error_codes, codes);
    };
    // Another subject.
    let other = emu.kubernetes_token("ns", "other", Duration::from_secs(600));
    let resp = token(&emu, &cert_form("fed-app", &other)).await;
    let err = entra_error(&resp);
    assert_eq!(err.error, "invalid_request");
    assert!(err.error_description.unwrap().starts_with(
        "AADSTS70021: No matching federated identity record found for presented assertion."
    ));
    expect(resp, 400, &[70021]);
    // Another audience.
    let now = emu.now_unix();
    let wrong_aud = TestKey::kubernetes().sign_jwt(&json!({"iss": KUBERNETES_ISSUER, "sub": "system:serviceaccount:ns:sa", "aud": "api://other", "iat": now, "exp": now + 600}));
    expect(
        token(&emu, &cert_form("fed-app", &wrong_aud)).await,
        400,
        &[70021],
    );
    // An untrusted issuer.
    let unknown = TestKey::client_other().sign_jwt(&json!({"iss": "https://evil.example", "sub": "system:serviceaccount:ns:sa", "aud": "api://AzureADTokenExchange", "iat": now, "exp": now + 600}));
    expect(
        token(&emu, &cert_form("fed-app", &unknown)).await,
        400,
        &[70021],
    );
    // The trusted issuer's name with a foreign key.
    let forged = TestKey::from_pkcs8_pem(TestKey::kubernetes().kid(), TestKey::client_other().private_key_pem())
        .unwrap()
        .sign_jwt(&json!({"iss": KUBERNETES_ISSUER, "sub": "system:serviceaccount:ns:sa", "aud": ["api://AzureADTokenExchange"], "iat": now, "exp": now + 600}));
    expect(
        token(&emu, &cert_form("fed-app", &forged)).await,
        401,
        &[70002, 50013],
    );
    // Expired (AADSTS700024, the workload-identity file read once bug).
    let expired = emu.kubernetes_token("ns", "sa", Duration::ZERO);
    emu.set_clock_skew(400);
    expect(
        token(&emu, &cert_form("fed-app", &expired)).await,
        401,
        &[700024],
    );
    // A custom trusted issuer.
    emu.trust_issuer("https://issuer.example", TestKey::client_other());
    emu.add_federated_credential(
        emu.tenant_id(),
        "fed-app",
        FederatedCredential::new("https://issuer.example", "me").audience("api://custom"),
    )
    .unwrap();
    let now = emu.now_unix();
    let custom = TestKey::client_other().sign_jwt(&json!({"iss": "https://issuer.example", "sub": "me", "aud": "api://custom", "iat": now, "exp": now + 600}));
    assert_eq!(
        token(&emu, &cert_form("fed-app", &custom)).await.status,
        200
    );
}

#[tokio::test]
async fn ci_oidc_endpoints_require_their_bearer_tokens() {
    let emu = Emulator::start().await.unwrap();
    let resp = emu
        .client()
        .get(&emu.github_oidc_url(), &[("authorization", "Bearer wrong")])
        .await
        .unwrap();
    assert_eq!(resp.status, 401);
    let resp = emu.client().get(&emu.github_oidc_url(), &[]).await.unwrap();
    assert_eq!(resp.status, 401);
    // Without an audience the token has GitHub's default audience.
    emu.set_github_subject("repo:me/r:environment:prod");
    let resp = emu
        .client()
        .get(
            &emu.github_oidc_url(),
            &[(
                "authorization",
                &format!("Bearer {}", emu.github_request_token()),
            )],
        )
        .await
        .unwrap();
    let v = JwtVerifier::new([TestKey::github()])
        .verify(resp.json().unwrap()["value"].as_str().unwrap())
        .unwrap();
    assert_eq!(v.claims.sub(), Some("repo:me/r:environment:prod"));
    assert_ne!(v.claims.aud(), Some("api://AzureADTokenExchange"));

    let auth = format!("Bearer {}", emu.pipelines_request_token());
    let url = emu.pipelines_oidc_url();
    let post = |url: String, auth: String| {
        let client = emu.client();
        async move {
            client
                .request("POST", &url, &[("authorization", &auth)], None)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        post(
            format!("{url}?api-version=7.1&serviceConnectionId=x"),
            "Bearer nope".into()
        )
        .await
        .status,
        401
    );
    assert_eq!(
        post(format!("{url}?serviceConnectionId=x"), auth.clone())
            .await
            .status,
        400
    );
    assert_eq!(
        post(format!("{url}?api-version=7.1"), auth.clone())
            .await
            .status,
        400
    );
    let get = emu
        .client()
        .get(
            &format!("{url}?api-version=7.1&serviceConnectionId=x"),
            &[("authorization", &auth)],
        )
        .await
        .unwrap();
    assert_eq!(get.status, 405);
}

#[tokio::test]
async fn discovery_and_keys() {
    let emu = Emulator::start().await.unwrap();
    let tenant = emu.tenant_id().to_owned();
    let url = format!(
        "{}/{tenant}/v2.0/.well-known/openid-configuration",
        emu.https_url()
    );
    let doc = emu.client().get(&url, &[]).await.unwrap();
    assert_eq!(doc.status, 200);
    let doc = doc.json().unwrap();
    assert_eq!(doc["token_endpoint"], emu.token_url(&tenant));
    assert_eq!(doc["issuer"], emu.issuer(&tenant));
    assert_eq!(
        doc["device_authorization_endpoint"],
        format!("{}/{tenant}/oauth2/v2.0/devicecode", emu.https_url())
    );
    assert_eq!(
        doc["authorization_endpoint"],
        format!("{}/{tenant}/oauth2/v2.0/authorize", emu.https_url())
    );
    let jwks_uri = doc["jwks_uri"].as_str().unwrap();
    let jwks = emu
        .client()
        .get(jwks_uri, &[])
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], TestKey::entra().kid());
    // A token verifies with the served JWKS.
    let app = emu.add_app(App::new("a").secret("s")).unwrap();
    let jwt = emu.issue_token(&app.oid, REDIS_RESOURCE).unwrap();
    let v = JwtVerifier::from_jwks(&jwks).verify(&jwt).unwrap();
    assert_eq!(v.claims.oid(), Some(app.oid.as_str()));
    assert_eq!(emu.tokens_issued(&app.oid), 1);
    // Over plain HTTP the endpoints use the HTTP base, the issuer stays the same.
    let http_doc = emu
        .client()
        .get(
            &format!(
                "{}/{tenant}/v2.0/.well-known/openid-configuration",
                emu.http_url()
            ),
            &[],
        )
        .await
        .unwrap()
        .json()
        .unwrap();
    assert!(
        http_doc["token_endpoint"]
            .as_str()
            .unwrap()
            .starts_with(emu.http_url())
    );
    assert_eq!(http_doc["issuer"], doc["issuer"]);
    // Unknown tenant and unknown path.
    let resp = emu
        .client()
        .get(
            &format!("{}/nope/discovery/v2.0/keys", emu.https_url()),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(entra_error(&resp).error_codes, vec![90002]);
    assert_eq!(
        emu.client()
            .get(&format!("{}/x/y", emu.https_url()), &[])
            .await
            .unwrap()
            .status,
        404
    );
    // Debug of the emulator shows no secrets.
    let dbg = format!("{emu:?}");
    assert!(!dbg.contains(emu.app_service_secret()) && !dbg.contains(emu.github_request_token()));
}
