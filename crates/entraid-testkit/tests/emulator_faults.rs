//! Fault injection: each fault kind, scripted per endpoint as a sequence, then normal behaviour; the request log
//! and counters.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::time::Duration;

use entraid_testkit::emulator::{
    App, ClientError, Emulator, Endpoint, Fault, ManagedIdentity, REDIS_SCOPE,
};
use entraid_testkit::keys::JwtVerifier;

async fn with_identity() -> (Emulator, String) {
    let emu = Emulator::start().await.unwrap();
    let mi = emu
        .add_managed_identity(ManagedIdentity::system_assigned())
        .unwrap();
    (emu, mi.oid)
}

fn imds_url(emu: &Emulator) -> String {
    format!(
        "{}?api-version=2018-02-01&resource=https://redis.azure.com",
        emu.imds_endpoint()
    )
}

async fn imds(emu: &Emulator) -> Result<entraid_testkit::emulator::HttpResponse, ClientError> {
    emu.client()
        .get(&imds_url(emu), &[("Metadata", "true")])
        .await
}

#[tokio::test]
async fn a_scripted_sequence_then_normal_behaviour() {
    let (emu, oid) = with_identity().await;
    emu.faults(Endpoint::Imds)
        .push(Fault::Status(410))
        .push(Fault::Status(429).retry_after(2))
        .push(Fault::Status(500))
        .push(Fault::Status(503).retry_after(7));
    assert_eq!(emu.faults(Endpoint::Imds).remaining(), 4);
    // Another endpoint is unaffected.
    assert_eq!(emu.faults(Endpoint::Token).remaining(), 0);

    let r = imds(&emu).await.unwrap();
    assert_eq!(r.status, 410);
    assert!(r.header("retry-after").is_none());
    assert_eq!(r.json().unwrap()["error"], "gone");
    let r = imds(&emu).await.unwrap();
    assert_eq!((r.status, r.header("retry-after")), (429, Some("2")));
    let r = imds(&emu).await.unwrap();
    assert_eq!(r.status, 500);
    let r = imds(&emu).await.unwrap();
    assert_eq!((r.status, r.header("retry-after")), (503, Some("7")));
    assert_eq!(r.json().unwrap()["error"], "temporarily_unavailable");
    assert_eq!(emu.tokens_issued(&oid), 0);
    let r = imds(&emu).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(emu.tokens_issued(&oid), 1);

    let log = emu.requests_to(Endpoint::Imds);
    let seen: Vec<(u16, Option<&str>)> =
        log.iter().map(|r| (r.status, r.fault.as_deref())).collect();
    assert_eq!(
        seen,
        vec![
            (410, Some("status 410")),
            (429, Some("status 429 retry-after 2")),
            (500, Some("status 500")),
            (503, Some("status 503 retry-after 7")),
            (200, None)
        ]
    );
    emu.clear_requests();
    assert!(emu.requests().is_empty());
}

#[tokio::test]
async fn push_n_and_clear() {
    let (emu, _) = with_identity().await;
    emu.faults(Endpoint::Imds).push_n(Fault::Status(503), 3);
    assert_eq!(emu.faults(Endpoint::Imds).remaining(), 3);
    assert_eq!(imds(&emu).await.unwrap().status, 503);
    emu.faults(Endpoint::Imds).clear();
    assert_eq!(emu.faults(Endpoint::Imds).remaining(), 0);
    assert_eq!(imds(&emu).await.unwrap().status, 200);
}

#[tokio::test(start_paused = true)]
async fn a_delay_longer_than_the_client_timeout() {
    let (emu, oid) = with_identity().await;
    emu.faults(Endpoint::Imds)
        .push(Fault::Delay(Duration::from_secs(60)));
    let client = emu.client().timeout(Duration::from_secs(5));
    let started = tokio::time::Instant::now();
    let err = client
        .get(&imds_url(&emu), &[("Metadata", "true")])
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Timeout(d) if d == Duration::from_secs(5)),
        "{err:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(5) && started.elapsed() < Duration::from_secs(60)
    );
    // The next request is answered at once.
    let r = client
        .get(&imds_url(&emu), &[("Metadata", "true")])
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    // A patient client gets the delayed answer.
    emu.faults(Endpoint::Imds)
        .push(Fault::Delay(Duration::from_secs(3)));
    let started = tokio::time::Instant::now();
    let r = client
        .get(&imds_url(&emu), &[("Metadata", "true")])
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(started.elapsed() >= Duration::from_secs(3));
    assert!(emu.tokens_issued(&oid) >= 2);
}

#[tokio::test]
async fn malformed_json_html_and_custom_bodies() {
    let (emu, _) = with_identity().await;
    emu.faults(Endpoint::Imds)
        .push(Fault::MalformedJson)
        .push(Fault::Html(502))
        .push(Fault::Custom {
            status: 418,
            content_type: "text/plain".into(),
            body: "teapot".into(),
        });
    let r = imds(&emu).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    assert!(r.json().is_err());
    let r = imds(&emu).await.unwrap();
    assert_eq!(r.status, 502);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(r.text().contains("<html>") && r.text().contains("502 Bad Gateway"));
    let r = imds(&emu).await.unwrap();
    assert_eq!(
        (r.status, r.text().as_str(), r.header("content-type")),
        (418, "teapot", Some("text/plain"))
    );
}

#[tokio::test]
async fn truncated_body_is_an_error_for_the_client() {
    let (emu, _) = with_identity().await;
    emu.faults(Endpoint::Imds).push(Fault::TruncatedBody);
    let err = imds(&emu).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Body(_) | ClientError::Http(_)),
        "{err:?}"
    );
    assert_eq!(imds(&emu).await.unwrap().status, 200);
    // Over HTTPS too, on the token endpoint.
    let emu = Emulator::start().await.unwrap();
    emu.add_app(App::new("a").secret("s")).unwrap();
    emu.faults(Endpoint::Token).push(Fault::TruncatedBody);
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "a"),
        ("client_secret", "s"),
        ("scope", REDIS_SCOPE),
    ];
    let err = emu
        .client()
        .post_form(&emu.token_url(emu.tenant_id()), &form, &[])
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Body(_) | ClientError::Http(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn oversized_body_is_a_valid_token_response_over_one_mib() {
    let (emu, oid) = with_identity().await;
    emu.faults(Endpoint::Imds)
        .push(Fault::OversizedBody)
        .push(Fault::OversizedBody);
    let r = imds(&emu).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.len() > 1 << 20);
    let body = r.json().unwrap();
    assert!(
        JwtVerifier::from_jwks(&emu.jwks())
            .verify(body["access_token"].as_str().unwrap())
            .is_ok()
    );
    let err = emu
        .client()
        .max_body(1 << 20)
        .get(&imds_url(&emu), &[("Metadata", "true")])
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::TooLarge(_)), "{err:?}");
    assert_eq!(emu.tokens_issued(&oid), 2);
}

#[tokio::test]
async fn reset_connection_over_http_and_https() {
    let (emu, _) = with_identity().await;
    emu.faults(Endpoint::Imds).push(Fault::ResetConnection);
    let err = imds(&emu).await.unwrap_err();
    assert!(matches!(err, ClientError::Http(_)), "{err:?}");
    assert_eq!(emu.requests_to(Endpoint::Imds)[0].status, 0);
    assert_eq!(
        emu.requests_to(Endpoint::Imds)[0].fault.as_deref(),
        Some("reset connection")
    );
    assert_eq!(imds(&emu).await.unwrap().status, 200);

    emu.faults(Endpoint::Keys).push(Fault::ResetConnection);
    let url = format!(
        "{}/{}/discovery/v2.0/keys",
        emu.https_url(),
        emu.tenant_id()
    );
    assert!(emu.client().get(&url, &[]).await.is_err());
    assert_eq!(emu.client().get(&url, &[]).await.unwrap().status, 200);
}

#[tokio::test]
async fn expires_in_as_string_or_number() {
    let (emu, _) = with_identity().await;
    emu.add_app(App::new("a").secret("s")).unwrap();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "a"),
        ("client_secret", "s"),
        ("scope", REDIS_SCOPE),
    ];
    let url = emu.token_url(emu.tenant_id());
    emu.faults(Endpoint::Token).push(Fault::ExpiresInAsString);
    let body = emu
        .client()
        .post_form(&url, &form, &[])
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(body["expires_in"], "3599");
    assert_eq!(body["ext_expires_in"], "3599");
    let body = emu
        .client()
        .post_form(&url, &form, &[])
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(body["expires_in"], 3599);

    emu.faults(Endpoint::Imds).push(Fault::ExpiresInAsNumber);
    let body = imds(&emu).await.unwrap().json().unwrap();
    assert_eq!(body["expires_in"], 3599);
    assert!(body["expires_on"].is_i64());
    let body = imds(&emu).await.unwrap().json().unwrap();
    assert_eq!(body["expires_in"], "3599");
}

#[tokio::test]
async fn every_endpoint_takes_faults() {
    let dir = std::env::temp_dir();
    let emu = Emulator::builder().arc_key_dir(dir).start().await.unwrap();
    let t = emu.tenant_id().to_owned();
    let https = emu.https_url().to_owned();
    let targets = [
        (Endpoint::Token, format!("{https}/{t}/oauth2/v2.0/token")),
        (
            Endpoint::DeviceCode,
            format!("{https}/{t}/oauth2/v2.0/devicecode"),
        ),
        (
            Endpoint::Authorize,
            format!("{https}/{t}/oauth2/v2.0/authorize"),
        ),
        (
            Endpoint::OpenIdConfiguration,
            format!("{https}/{t}/v2.0/.well-known/openid-configuration"),
        ),
        (Endpoint::Keys, format!("{https}/{t}/discovery/v2.0/keys")),
        (Endpoint::Imds, emu.imds_endpoint()),
        (Endpoint::AppService, emu.app_service_endpoint()),
        (Endpoint::AzureArc, emu.arc_endpoint()),
        (Endpoint::CloudShell, emu.cloud_shell_endpoint()),
        (Endpoint::AzureMl, emu.azure_ml_endpoint()),
        (Endpoint::GitHubOidc, emu.github_oidc_url()),
        (Endpoint::PipelinesOidc, emu.pipelines_oidc_url()),
    ];
    assert_eq!(targets.len(), Endpoint::ALL.len());
    for (endpoint, url) in &targets {
        emu.faults(*endpoint).push(Fault::Status(503));
        let r = emu.client().get(url, &[]).await.unwrap();
        assert_eq!(r.status, 503, "{endpoint:?}");
        assert_eq!(emu.requests().last().unwrap().endpoint, Some(*endpoint));
        // Then the endpoint's own answer (none of these requests is valid, so never 503).
        let r = emu.client().get(url, &[]).await.unwrap();
        assert_ne!(r.status, 503, "{endpoint:?}");
    }
}
