//! Every twin as a separate program against the Entra ID emulator and a redis-server behind the enforcing
//! gateway, configured only through the environment variables the Go examples read (plus the emulator's endpoints).

#![allow(clippy::expect_used, reason = "tests stop on a broken set-up")]

use std::process::Command;

use entraid_testkit::emulator::{App, Emulator, ManagedIdentity};
use entraid_testkit::keys::TestKey;
use entraid_testkit::redis::RedisHarness;
use entraid_testkit::tls::ClientCertificate;

struct Setup {
    emulator: Emulator,
    harness: RedisHarness,
    dir: std::path::PathBuf,
}

async fn setup() -> Setup {
    let emulator = Emulator::start().await.expect("emulator");
    let harness = RedisHarness::standalone().await.expect("redis");
    let dir = std::env::temp_dir().join(format!(
        "entraid-twins-{}-{}",
        std::process::id(),
        harness.addr().port()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    Setup {
        emulator,
        harness,
        dir,
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Setup {
    /// The program with a clean environment: the emulator's App Service endpoint for managed identities, its
    /// authority for service principals, and no `az`/`azd` on the search path.
    fn twin(&self, name: &str) -> Command {
        let program = match name {
            "quick-start" => env!("CARGO_BIN_EXE_quick-start"),
            "system-assigned" => env!("CARGO_BIN_EXE_system-assigned"),
            "user-assigned" => env!("CARGO_BIN_EXE_user-assigned"),
            "client-secret" => env!("CARGO_BIN_EXE_client-secret"),
            "client-certificate" => env!("CARGO_BIN_EXE_client-certificate"),
            "default-azure" => env!("CARGO_BIN_EXE_default-azure"),
            other => panic!("no twin {other}"),
        };
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", "/nonexistent")
            .env("REDIS_URL", self.harness.url())
            .env("IDENTITY_ENDPOINT", self.emulator.app_service_endpoint())
            .env("IDENTITY_HEADER", self.emulator.app_service_secret())
            .env("AZURE_AUTHORITY_HOST", self.emulator.http_url());
        cmd
    }
}

async fn run(mut cmd: Command) -> String {
    let output = tokio::task::spawn_blocking(move || cmd.output().expect("the twin runs"))
        .await
        .expect("join");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn managed_identity_twins() {
    let s = setup().await;
    let system = s
        .emulator
        .add_managed_identity(ManagedIdentity::system_assigned())
        .unwrap();
    let user = s
        .emulator
        .add_managed_identity(
            ManagedIdentity::user_assigned()
                .client_id("11111111-1111-4111-8111-111111111111")
                .object_id("22222222-2222-4222-8222-222222222222"),
        )
        .unwrap();

    let out = run(s.twin("system-assigned")).await;
    assert!(
        out.contains(&format!("system-assigned: PONG as {}", system.oid)),
        "{out}"
    );

    let mut cmd = s.twin("quick-start");
    cmd.env("AZURE_CLIENT_ID", "11111111-1111-4111-8111-111111111111");
    let out = run(cmd).await;
    assert!(
        out.contains(&format!("quick-start: PONG as {}", user.oid)),
        "{out}"
    );

    let mut cmd = s.twin("user-assigned");
    cmd.env("AZURE_USER_ASSIGNED_MANAGED_ID", &user.oid);
    let out = run(cmd).await;
    assert!(
        out.contains(&format!("user-assigned: PONG as {}", user.oid)),
        "{out}"
    );
    assert!(
        out.contains("entraid:example:user-assigned = user-assigned"),
        "{out}"
    );

    // The default chain finds the managed identity (no service-principal variables are set).
    let out = run(s.twin("default-azure")).await;
    assert!(
        out.contains(&format!("default-azure: PONG as {}", system.oid)),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn service_principal_twins() {
    let s = setup().await;
    let tenant = s.emulator.tenant_id().to_owned();
    let secret_app = s
        .emulator
        .add_app(App::new("33333333-3333-4333-8333-333333333333").secret("s3cret"))
        .unwrap();
    let certificate = ClientCertificate::self_signed(TestKey::client_app(), "cert-app").unwrap();
    let cert_app = s
        .emulator
        .add_app(
            App::new("44444444-4444-4444-8444-444444444444")
                .certificate_der(certificate.cert_der().to_vec()),
        )
        .unwrap();

    let mut cmd = s.twin("client-secret");
    cmd.env("AZURE_TENANT_ID", &tenant)
        .env("AZURE_CLIENT_ID", "33333333-3333-4333-8333-333333333333")
        .env("AZURE_CLIENT_SECRET", "s3cret");
    let out = run(cmd).await;
    assert!(
        out.contains(&format!("client-secret: PONG as {}", secret_app.oid)),
        "{out}"
    );

    let pem = s.dir.join("cert.pem");
    std::fs::write(&pem, certificate.pem_bundle()).unwrap();
    let mut cmd = s.twin("client-certificate");
    cmd.env("AZURE_TENANT_ID", &tenant)
        .env("AZURE_CLIENT_ID", "44444444-4444-4444-8444-444444444444")
        .env("AZURE_CLIENT_CERTIFICATE_PATH", &pem);
    let out = run(cmd).await;
    assert!(
        out.contains(&format!("client-certificate: PONG as {}", cert_app.oid)),
        "{out}"
    );

    // The default chain's environment credential picks up the same variables.
    let mut cmd = s.twin("default-azure");
    cmd.env("AZURE_TENANT_ID", &tenant)
        .env("AZURE_CLIENT_ID", "33333333-3333-4333-8333-333333333333")
        .env("AZURE_CLIENT_SECRET", "s3cret");
    let out = run(cmd).await;
    assert!(
        out.contains(&format!("default-azure: PONG as {}", secret_app.oid)),
        "{out}"
    );
}

#[test]
fn a_missing_variable_is_a_clear_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_user-assigned"))
        .env_clear()
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("AZURE_USER_ASSIGNED_MANAGED_ID"),
        "{output:?}"
    );
}
