//! `entraid token`, `doctor` and `ping` as a user runs them: the built binary, a clean environment pointed at the
//! testkit's Entra ID emulator, and redis-server behind the enforcing gateway (the testkit applies Azure's data
//! access policies to each principal as ACL rules). Each test checks the exit status and the printed hints.

#![allow(clippy::expect_used, reason = "tests stop on a broken set-up")]

use std::net::TcpListener;
use std::process::{Command, Output};

use entraid_testkit::emulator::{App, Emulator, ManagedIdentity};
use entraid_testkit::redis::{AccessPolicy, HarnessOptions, RedisHarness};
use entraid_testkit::tls::TestCa;

/// The binary with an empty environment: no Azure variables, no `az`/`azd` on the search path, and IMDS
/// pointed at a closed local port (never the real 169.254.169.254).
fn entraid(closed_port: u16) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_entraid"));
    cmd.env_clear().env("PATH", "/nonexistent").env(
        "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        format!("http://127.0.0.1:{closed_port}"),
    );
    cmd
}

fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("test setup");
    listener.local_addr().expect("test setup").port()
}

async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("entraid runs"))
        .await
        .expect("test setup")
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// An emulator with a system-assigned managed identity on its App Service endpoint, and the variables for it.
async fn managed_identity() -> (Emulator, String, Vec<(String, String)>) {
    let emulator = Emulator::start().await.expect("test setup");
    let identity = emulator
        .add_managed_identity(ManagedIdentity::system_assigned())
        .expect("test setup");
    let env = vec![
        (
            "IDENTITY_ENDPOINT".to_owned(),
            emulator.app_service_endpoint(),
        ),
        (
            "IDENTITY_HEADER".to_owned(),
            emulator.app_service_secret().to_owned(),
        ),
    ];
    (emulator, identity.oid, env)
}

/// A redis-server behind the enforcing gateway, every principal under `policy` (real ACL rules, as Azure applies
/// its data access policies).
async fn redis_with_policy(policy: AccessPolicy) -> RedisHarness {
    RedisHarness::standalone_with(policy)
        .await
        .expect("test setup")
}

#[test]
fn help_version_and_usage_errors() {
    let output = entraid(closed_port()).arg("--help").output().unwrap();
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(0));
    for word in [
        "token",
        "doctor",
        "ping",
        "Exit status",
        "no credential available",
    ] {
        assert!(stdout.contains(word), "{word}: {stdout}");
    }
    #[cfg(feature = "testkit")]
    assert!(
        stdout.contains("emulator") && stdout.contains("demo"),
        "{stdout}"
    );
    let output = entraid(closed_port()).arg("--version").output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(text(&output).0.contains(env!("CARGO_PKG_VERSION")));
    let output = entraid(closed_port()).arg("tokn").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let output = entraid(closed_port())
        .args(["ping", "http://x"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{:?}", text(&output));
}

#[test]
fn token_with_no_credential_anywhere_exits_3_with_a_hint() {
    let output = entraid(closed_port()).arg("token").output().unwrap();
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(3), "{stdout}{stderr}");
    assert!(stderr.contains("no credential in the chain"), "{stderr}");
    assert!(
        stderr.contains("hint: no credential is available here"),
        "{stderr}"
    );
    assert!(stderr.contains("az login"), "{stderr}");

    let output = entraid(closed_port())
        .args(["token", "--json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["ok"], false);
    assert_eq!(json["unavailable"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn token_from_a_managed_identity_prints_claims_and_hides_the_token() {
    let (emulator, oid, env) = managed_identity().await;
    let mut cmd = entraid(closed_port());
    cmd.args(["token", "--json"]).envs(env.clone());
    let output = run(cmd).await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["oid"], oid.as_str());
    assert_eq!(json["tid"], emulator.tenant_id());
    assert_eq!(json["aud"], "https://redis.azure.com");
    assert_eq!(json["audience_ok"], true);
    assert_eq!(
        json["credential"],
        "ManagedIdentityCredential (DefaultAzureCredential)"
    );
    assert!(json["expires_in_seconds"].as_i64().unwrap() > 3000);
    assert!(json.get("access_token").is_none(), "{json}");

    let mut cmd = entraid(closed_port());
    cmd.args(["token", "--credential", "managed-identity", "--show-token"])
        .envs(env);
    let output = run(cmd).await;
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout.contains(&format!("oid:        {oid}")), "{stdout}");
    assert!(
        stdout.contains("expires:    ") && stdout.contains(" UTC (in "),
        "{stdout}"
    );
    assert!(stdout.contains("token:      eyJ"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_client_secret_exits_4_with_what_to_change() {
    let emulator = Emulator::start().await.unwrap();
    emulator.add_app(App::new("app-1").secret("right")).unwrap();
    let mut cmd = entraid(closed_port());
    cmd.args(["token", "--credential", "client-secret"])
        .env("AZURE_AUTHORITY_HOST", emulator.http_url())
        .env("AZURE_TENANT_ID", emulator.tenant_id())
        .env("AZURE_CLIENT_ID", "app-1")
        .env("AZURE_CLIENT_SECRET", "not-the-s3cret-xyz");
    let output = run(cmd).await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(4), "{stdout}{stderr}");
    assert!(stderr.contains("hint: AADSTS"), "{stderr}");
    assert!(
        !stderr.contains("not-the-s3cret-xyz"),
        "the secret leaked: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_reports_every_link_and_every_redis_step() {
    let (_emulator, oid, env) = managed_identity().await;
    let gateway = redis_with_policy(AccessPolicy::DataOwner).await;
    let mut cmd = entraid(closed_port());
    cmd.args(["doctor", "--redis", &format!("redis://{}", gateway.addr())])
        .envs(env);
    let output = run(cmd).await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("[ -- ] EnvironmentCredential"), "{stdout}");
    assert!(
        stdout.contains("[ ok ] ManagedIdentityCredential (")
            && stdout.contains(" ms): token for oid"),
        "{stdout}"
    );
    assert!(stdout.contains("[ -- ] AzureCliCredential"), "{stdout}");
    for step in [
        "dns",
        "tcp",
        "auth",
        "PING",
        "EXISTS (a read)",
        "CLIENT UNBLOCK",
        "clock vs server",
    ] {
        assert!(
            stdout.contains(&format!("[ ok ] {step} (")),
            "{step}: {stdout}"
        );
    }
    assert!(stdout.contains(&format!("OK as {oid}")), "{stdout}");
    assert!(stdout.contains("result: ok"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_under_a_policy_refusing_client_unblock_says_to_add_it() {
    let (_emulator, _oid, env) = managed_identity().await;
    let gateway = redis_with_policy(AccessPolicy::DataContributor).await;
    let mut cmd = entraid(closed_port());
    cmd.args(["doctor", "--redis", &format!("redis://{}", gateway.addr())])
        .envs(env);
    let output = run(cmd).await;
    let (stdout, stderr) = text(&output);
    // The adapter still works (it reconnects blocked connections), so this is a warning, not a failure.
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("[warn] CLIENT UNBLOCK"), "{stdout}");
    assert!(stdout.contains("NOPERM"), "{stdout}");
    assert!(stdout.contains("`+client|unblock`"), "{stdout}");
    assert!(stdout.contains("[ ok ] PING"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_and_ping_for_a_principal_without_access_exit_5_with_noperm_hints() {
    let (_emulator, oid, env) = managed_identity().await;
    let gateway = redis_with_policy(AccessPolicy::Custom("-@all".into())).await;
    let url = format!("redis://{}", gateway.addr());
    let mut cmd = entraid(closed_port());
    cmd.args(["doctor", "--redis", &url]).envs(env.clone());
    let output = run(cmd).await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(5), "{stdout}{stderr}");
    assert!(stdout.contains(&format!("OK as {oid}")), "{stdout}");
    assert!(stdout.contains("[FAIL] PING"), "{stdout}");
    assert!(stdout.contains("access policy refuses PING"), "{stdout}");
    assert!(stdout.contains("problems found"), "{stdout}");

    let mut cmd = entraid(closed_port());
    cmd.args(["ping", &url, "--timeout", "5"]).envs(env);
    let output = run(cmd).await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(5), "{stdout}{stderr}");
    assert!(stderr.contains("NOPERM"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_for_the_wrong_audience_is_refused_with_a_scope_hint() {
    let (_emulator, _oid, env) = managed_identity().await;
    let gateway = redis_with_policy(AccessPolicy::DataOwner).await;
    let url = format!("redis://{}", gateway.addr());
    let scope = "https://graph.microsoft.com/.default";
    let mut cmd = entraid(closed_port());
    cmd.args(["doctor", "--scope", scope, "--redis", &url])
        .envs(env.clone());
    let output = run(cmd).await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("[FAIL] audience"), "{stdout}");
    assert!(stdout.contains("[FAIL] auth"), "{stdout}");
    assert!(stdout.contains("WRONGPASS"), "{stdout}");
    assert!(
        stdout.contains("https://redis.azure.com/.default"),
        "{stdout}"
    );

    let mut cmd = entraid(closed_port());
    cmd.args(["ping", &url, "--scope", scope, "--timeout", "5"])
        .envs(env);
    let output = run(cmd).await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(5), "{stdout}{stderr}");
    assert!(stderr.contains("audience"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ping_connects_through_entraid_fred_and_prints_latency_and_user() {
    let (_emulator, oid, env) = managed_identity().await;
    let gateway = redis_with_policy(AccessPolicy::DataContributor).await;
    let url = format!("redis://{}", gateway.addr());
    let mut cmd = entraid(closed_port());
    cmd.args(["ping", &url, "--count", "2"]).envs(env.clone());
    let output = run(cmd).await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!(
            "PONG from 127.0.0.1:{} as {oid}",
            gateway.addr().port()
        )),
        "{stdout}"
    );
    assert!(stdout.contains("2 PINGs: min "), "{stdout}");

    let mut cmd = entraid(closed_port());
    cmd.args(["ping", &url, "--json", "--resp", "2"]).envs(env);
    let output = run(cmd).await;
    assert_eq!(output.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["user"], oid.as_str());
    assert_eq!(json["pings"], 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_and_ping_over_tls_trust_only_what_they_are_told_to() {
    let (_emulator, oid, env) = managed_identity().await;
    let ca = TestCa::new().unwrap();
    let harness = RedisHarness::start(HarnessOptions {
        tls: Some(ca.clone()),
        access_policy: AccessPolicy::DataOwner,
        ..HarnessOptions::default()
    })
    .await
    .unwrap();
    let url = harness.url();
    assert!(url.starts_with("rediss://"), "{url}");
    let dir = std::env::temp_dir().join(format!("entraid-cli-tls-{}", harness.addr().port()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.ca_cert_pem()).unwrap();

    // Without the test CA the certificate is not trusted: the TLS step fails with a hint.
    let mut cmd = entraid(closed_port());
    cmd.args(["doctor", "--redis", &url]).envs(env.clone());
    let output = run(cmd).await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(5), "{stdout}{stderr}");
    assert!(stdout.contains("[FAIL] tls"), "{stdout}");
    assert!(stdout.contains("--ca-file"), "{stdout}");

    let mut cmd = entraid(closed_port());
    cmd.args(["doctor", "--redis", &url, "--ca-file"])
        .arg(&ca_file)
        .envs(env.clone());
    let output = run(cmd).await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("[ ok ] tls ("), "{stdout}");
    assert!(stdout.contains("[ ok ] CLIENT UNBLOCK"), "{stdout}");

    let mut cmd = entraid(closed_port());
    cmd.args(["ping", &url, "--json", "--ca-file"])
        .arg(&ca_file)
        .envs(env);
    let output = run(cmd).await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["user"], oid.as_str());
    let _ = std::fs::remove_dir_all(&dir);
}
