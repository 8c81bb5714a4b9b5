//! The managed-identity hosts: IMDS, App Service, Azure Arc, Cloud Shell and Azure ML, each with its own
//! request rules and response shape.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::path::PathBuf;

use entraid_testkit::emulator::{
    Emulator, HttpResponse, ManagedIdentity, Principal, REDIS_RESOURCE,
};
use entraid_testkit::keys::{JwtVerifier, VerifiedJwt};
use serde_json::Value;

fn verify(emu: &Emulator, body: &Value) -> VerifiedJwt {
    JwtVerifier::from_jwks(&emu.jwks())
        .verify(body["access_token"].as_str().expect("access_token"))
        .expect("verifies")
}

struct Identities {
    system: Principal,
    user: Principal,
}

async fn emulator() -> (Emulator, Identities) {
    let emu = Emulator::start().await.unwrap();
    let system = emu
        .add_managed_identity(ManagedIdentity::system_assigned())
        .unwrap();
    let user = emu
        .add_managed_identity(
            ManagedIdentity::user_assigned()
                .client_id("11111111-2222-3333-4444-555555555555")
                .object_id("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")
                .resource_id("/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/ua"),
        )
        .unwrap();
    (emu, Identities { system, user })
}

async fn imds(emu: &Emulator, query: &str, metadata: bool) -> HttpResponse {
    let url = format!("{}?{query}", emu.imds_endpoint());
    let headers: &[(&str, &str)] = if metadata {
        &[("Metadata", "true")]
    } else {
        &[]
    };
    emu.client().get(&url, headers).await.unwrap()
}

fn error_text(resp: &HttpResponse) -> String {
    resp.json().unwrap()["error_description"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn imds_system_and_user_assigned_with_string_expiry() {
    let (emu, ids) = emulator().await;
    let resp = imds(
        &emu,
        "api-version=2018-02-01&resource=https://redis.azure.com",
        true,
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let text = resp.text();
    assert!(text.contains(r#""expires_in":"3599""#), "{text}");
    let body = resp.json().unwrap();
    let expires_on: i64 = body["expires_on"].as_str().unwrap().parse().unwrap();
    assert_eq!(body["resource"], "https://redis.azure.com");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body.get("refresh_in").is_none());
    let c = verify(&emu, &body).claims;
    assert_eq!(c.oid(), Some(ids.system.oid.as_str()));
    assert_eq!(c.aud(), Some(REDIS_RESOURCE));
    assert_eq!(c.exp(), Some(expires_on));
    assert_eq!(body["client_id"], ids.system.client_id.clone().unwrap());
    assert_eq!(c.idtyp(), Some("app"));

    // Each selector names the user-assigned identity; a trailing slash on the resource is not part of aud.
    let ua = &ids.user;
    for query in [
        format!("client_id={}", ua.client_id.as_deref().unwrap()),
        format!("object_id={}", ua.oid),
        format!("msi_res_id={}", ua.resource_id.as_deref().unwrap()),
    ] {
        let resp = imds(
            &emu,
            &format!("api-version=2018-02-01&resource=https://redis.azure.com/&{query}"),
            true,
        )
        .await;
        assert_eq!(resp.status, 200, "{query}: {}", resp.text());
        let body = resp.json().unwrap();
        assert_eq!(body["resource"], "https://redis.azure.com/");
        let c = verify(&emu, &body).claims;
        assert_eq!(c.oid(), Some(ua.oid.as_str()), "{query}");
        assert_eq!(c.aud(), Some(REDIS_RESOURCE));
        assert_eq!(
            c.get("xms_mirid").and_then(Value::as_str),
            ua.resource_id.as_deref()
        );
    }
    assert_eq!(emu.tokens_issued(&ua.oid), 3);
    assert_eq!(emu.tokens_issued(&ids.system.oid), 1);
}

#[tokio::test]
async fn imds_refusals() {
    let (emu, _) = emulator().await;
    let resp = imds(&emu, "api-version=2018-02-01&resource=r", false).await;
    assert_eq!(resp.status, 400);
    assert_eq!(error_text(&resp), "Required metadata header not specified");
    let resp = imds(&emu, "resource=r", true).await;
    assert_eq!(resp.status, 400);
    let resp = imds(&emu, "api-version=2019-08-01&resource=r", true).await;
    assert_eq!(resp.status, 400);
    let resp = imds(&emu, "api-version=2018-02-01", true).await;
    assert_eq!(
        error_text(&resp),
        "Required audience parameter not specified"
    );
    let resp = imds(
        &emu,
        "api-version=2018-02-01&resource=r&client_id=unknown",
        true,
    )
    .await;
    assert_eq!(
        (resp.status, error_text(&resp).as_str()),
        (400, "Identity not found")
    );
    let resp = imds(
        &emu,
        "api-version=2018-02-01&resource=r&client_id=a&object_id=b",
        true,
    )
    .await;
    assert_eq!(resp.status, 400);
    let resp = emu
        .client()
        .request(
            "POST",
            &format!("{}?api-version=2018-02-01&resource=r", emu.imds_endpoint()),
            &[("Metadata", "true")],
            None,
        )
        .await
        .unwrap();
    assert_eq!(resp.status, 405);
    // No system-assigned identity: "Identity not found".
    let bare = Emulator::start().await.unwrap();
    let resp = imds(&bare, "api-version=2018-02-01&resource=r", true).await;
    assert_eq!(
        (resp.status, error_text(&resp).as_str()),
        (400, "Identity not found")
    );
    assert_eq!(emu.total_tokens_issued(), 0);
    // The log shows the Metadata header.
    assert_eq!(emu.requests()[0].header("metadata"), None);
    assert_eq!(emu.requests()[1].header("metadata"), Some("true"));
}

#[tokio::test]
async fn app_service_needs_its_header_and_speaks_mi_res_id() {
    let (emu, ids) = emulator().await;
    let base = format!(
        "{}?api-version=2019-08-01&resource=https://redis.azure.com",
        emu.app_service_endpoint()
    );
    let secret = emu.app_service_secret().to_owned();
    let resp = emu
        .client()
        .get(&base, &[("X-IDENTITY-HEADER", &secret)])
        .await
        .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let body = resp.json().unwrap();
    assert!(body["expires_on"].is_i64(), "numeric expires_on: {body}");
    assert_eq!(
        verify(&emu, &body).claims.oid(),
        Some(ids.system.oid.as_str())
    );
    assert_eq!(
        verify(&emu, &body).claims.exp(),
        body["expires_on"].as_i64()
    );

    let url = format!(
        "{base}&mi_res_id={}",
        ids.user.resource_id.as_deref().unwrap()
    );
    let resp = emu
        .client()
        .get(&url, &[("X-IDENTITY-HEADER", &secret)])
        .await
        .unwrap();
    assert_eq!(
        verify(&emu, &resp.json().unwrap()).claims.oid(),
        Some(ids.user.oid.as_str())
    );
    let url = format!(
        "{base}&client_id={}",
        ids.user.client_id.as_deref().unwrap()
    );
    let resp = emu
        .client()
        .get(&url, &[("X-IDENTITY-HEADER", &secret)])
        .await
        .unwrap();
    assert_eq!(
        verify(&emu, &resp.json().unwrap()).claims.oid(),
        Some(ids.user.oid.as_str())
    );

    // msi_res_id is IMDS's name, not App Service's.
    let url = format!(
        "{base}&msi_res_id={}",
        ids.user.resource_id.as_deref().unwrap()
    );
    assert_eq!(
        emu.client()
            .get(&url, &[("X-IDENTITY-HEADER", &secret)])
            .await
            .unwrap()
            .status,
        400
    );
    assert_eq!(
        emu.client()
            .get(&base, &[("X-IDENTITY-HEADER", "wrong")])
            .await
            .unwrap()
            .status,
        401
    );
    assert_eq!(emu.client().get(&base, &[]).await.unwrap().status, 401);
    let old = format!(
        "{}?api-version=2017-09-01&resource=r",
        emu.app_service_endpoint()
    );
    assert_eq!(
        emu.client()
            .get(&old, &[("X-IDENTITY-HEADER", &secret)])
            .await
            .unwrap()
            .status,
        400
    );
    // The secret is redacted in the log.
    let log = emu.requests_to(entraid_testkit::emulator::Endpoint::AppService);
    assert_eq!(log[0].header("x-identity-header"), Some("[redacted]"));
    assert!(!format!("{log:?}").contains(&secret));
}

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "entraid-arc-{}",
            entraid_testkit::keys::random_uuid()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn arc_challenges_with_a_key_file_then_accepts_its_contents() {
    let dir = TempDir::new();
    let emu = Emulator::builder()
        .arc_key_dir(&dir.0)
        .start()
        .await
        .unwrap();
    let system = emu
        .add_managed_identity(ManagedIdentity::system_assigned())
        .unwrap();
    let user = emu
        .add_managed_identity(ManagedIdentity::user_assigned())
        .unwrap();
    let url = format!(
        "{}?api-version=2020-06-01&resource=https://redis.azure.com",
        emu.arc_endpoint()
    );
    let challenge = emu
        .client()
        .get(&url, &[("Metadata", "true")])
        .await
        .unwrap();
    assert_eq!(challenge.status, 401);
    let realm = challenge
        .header("www-authenticate")
        .unwrap()
        .strip_prefix("Basic realm=")
        .unwrap()
        .to_owned();
    let path = PathBuf::from(&realm);
    assert_eq!(path.parent(), Some(dir.0.as_path()));
    assert_eq!(path.extension().and_then(|e| e.to_str()), Some("key"));
    let key = std::fs::read_to_string(&path).unwrap();
    assert!(!key.is_empty() && key.len() <= 4096);

    let auth = format!("Basic {key}");
    let resp = emu
        .client()
        .get(&url, &[("Metadata", "true"), ("Authorization", &auth)])
        .await
        .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let body = resp.json().unwrap();
    assert!(body["expires_in"].is_string());
    assert_eq!(verify(&emu, &body).claims.oid(), Some(system.oid.as_str()));

    // Like real Arc, a user-assigned selector is ignored: the answer names the system identity's client id.
    let with_sel = format!("{url}&client_id={}", user.client_id.as_deref().unwrap());
    let resp = emu
        .client()
        .get(&with_sel, &[("Metadata", "true"), ("Authorization", &auth)])
        .await
        .unwrap();
    assert_eq!(
        resp.json().unwrap()["client_id"],
        system.client_id.clone().unwrap()
    );
    emu.set_arc_honours_selectors(true);
    let resp = emu
        .client()
        .get(&with_sel, &[("Metadata", "true"), ("Authorization", &auth)])
        .await
        .unwrap();
    assert_eq!(
        verify(&emu, &resp.json().unwrap()).claims.oid(),
        Some(user.oid.as_str())
    );

    // A wrong key gets a new challenge; no Metadata header is refused; the Authorization header is redacted.
    let resp = emu
        .client()
        .get(
            &url,
            &[("Metadata", "true"), ("Authorization", "Basic nope")],
        )
        .await
        .unwrap();
    assert_eq!(resp.status, 401);
    assert!(resp.header("www-authenticate").is_some());
    assert_eq!(
        emu.client()
            .get(&url, &[("Authorization", &auth)])
            .await
            .unwrap()
            .status,
        400
    );
    let log = emu.requests();
    assert_eq!(log[1].header("authorization"), Some("Basic [redacted]"));
    assert!(!format!("{log:?}").contains(&key));

    // The key files go away with the emulator.
    drop(emu);
    assert!(!path.exists());
}

#[tokio::test]
async fn arc_without_a_key_folder_says_so() {
    let (emu, _) = emulator().await;
    let url = format!("{}?api-version=2020-06-01&resource=r", emu.arc_endpoint());
    let resp = emu
        .client()
        .get(&url, &[("Metadata", "true")])
        .await
        .unwrap();
    assert_eq!(resp.status, 500);
    assert!(error_text(&resp).contains("set_arc_key_dir"));
    let dir = TempDir::new();
    emu.set_arc_key_dir(&dir.0);
    assert_eq!(
        emu.client()
            .get(&url, &[("Metadata", "true")])
            .await
            .unwrap()
            .status,
        401
    );
}

#[tokio::test]
async fn cloud_shell_takes_a_posted_form() {
    let (emu, ids) = emulator().await;
    let url = emu.cloud_shell_endpoint();
    let resp = emu
        .client()
        .post_form(
            &url,
            &[("resource", "https://redis.azure.com")],
            &[("Metadata", "true")],
        )
        .await
        .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let body = resp.json().unwrap();
    assert_eq!(
        verify(&emu, &body).claims.oid(),
        Some(ids.system.oid.as_str())
    );
    assert!(body["expires_on"].is_string());
    assert_eq!(
        emu.client()
            .post_form(&url, &[("resource", "r")], &[])
            .await
            .unwrap()
            .status,
        400
    );
    assert_eq!(
        emu.client()
            .post_form(&url, &[], &[("Metadata", "true")])
            .await
            .unwrap()
            .status,
        400
    );
    assert_eq!(
        emu.client()
            .get(&format!("{url}?resource=r"), &[("Metadata", "true")])
            .await
            .unwrap()
            .status,
        405
    );
}

#[tokio::test]
async fn azure_ml_needs_its_secret_and_takes_clientid() {
    let (emu, ids) = emulator().await;
    let secret = emu.azure_ml_secret().to_owned();
    let base = format!(
        "{}?api-version=2017-09-01&resource=https://redis.azure.com",
        emu.azure_ml_endpoint()
    );
    let resp = emu
        .client()
        .get(&base, &[("secret", &secret)])
        .await
        .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        verify(&emu, &resp.json().unwrap()).claims.oid(),
        Some(ids.system.oid.as_str())
    );
    let url = format!("{base}&clientid={}", ids.user.client_id.as_deref().unwrap());
    let resp = emu
        .client()
        .get(&url, &[("secret", &secret)])
        .await
        .unwrap();
    assert_eq!(
        verify(&emu, &resp.json().unwrap()).claims.oid(),
        Some(ids.user.oid.as_str())
    );
    let url = format!(
        "{base}&clientid={}",
        ids.system.client_id.as_deref().unwrap()
    );
    let resp = emu
        .client()
        .get(&url, &[("secret", &secret)])
        .await
        .unwrap();
    assert_eq!(
        verify(&emu, &resp.json().unwrap()).claims.oid(),
        Some(ids.system.oid.as_str())
    );
    assert_eq!(
        emu.client()
            .get(&base, &[("secret", "wrong")])
            .await
            .unwrap()
            .status,
        401
    );
    let bad_version = format!(
        "{}?api-version=2018-02-01&resource=r",
        emu.azure_ml_endpoint()
    );
    assert_eq!(
        emu.client()
            .get(&bad_version, &[("secret", &secret)])
            .await
            .unwrap()
            .status,
        400
    );
    assert_eq!(
        emu.client()
            .get(&format!("{base}&clientid=nobody"), &[("secret", &secret)])
            .await
            .unwrap()
            .status,
        400
    );
}

#[tokio::test]
async fn managed_identity_registry_rules() {
    let (emu, ids) = emulator().await;
    let dup = emu.add_managed_identity(
        ManagedIdentity::user_assigned().client_id(ids.user.client_id.clone().unwrap()),
    );
    assert!(dup.is_err());
    // A new system-assigned identity replaces the old one.
    let new_system = emu
        .add_managed_identity(ManagedIdentity::system_assigned())
        .unwrap();
    let resp = imds(&emu, "api-version=2018-02-01&resource=r", true).await;
    assert_eq!(
        verify(&emu, &resp.json().unwrap()).claims.oid(),
        Some(new_system.oid.as_str())
    );
    assert_eq!(emu.principals().len(), 2);
}
