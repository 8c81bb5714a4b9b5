//! The Azure CLI and Azure Developer CLI credentials, run against fake `az` / `azd` scripts that print each real
//! output shape with a token the emulator minted: exact command lines, both `expires_on` forms, local-time
//! `expiresOn` (the token's `exp` is used; nothing else is run), not installed, not logged in, AADSTS failures, the
//! timeout (the process is killed, with its whole process group when it does not `exec`), and garbage output.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use entraid_core::{Error, IdentityProvider, IdentityProviderResponse};
use entraid_identity::{AzureCliCredential, AzureDeveloperCliCredential};
use entraid_testkit::emulator::{Emulator, REDIS_RESOURCE, User};

use crate::common::{FakeTools, civil, exp_of};

async fn user_token() -> (Emulator, String, String) {
    let emu = Emulator::start().await.unwrap();
    let alice = emu.add_user(User::new("alice@contoso.com", "pw")).unwrap();
    let token = emu.issue_token(&alice.oid, REDIS_RESOURCE).unwrap();
    (emu, alice.oid, token)
}

fn az(tools: &FakeTools) -> AzureCliCredential {
    AzureCliCredential::builder()
        .search_path(tools.search_path())
        .build()
        .unwrap()
}

fn azd(tools: &FakeTools) -> AzureDeveloperCliCredential {
    AzureDeveloperCliCredential::builder()
        .search_path(tools.search_path())
        .build()
        .unwrap()
}

/// The token and expiry of an access-token response.
fn access_token(response: IdentityProviderResponse) -> (String, SystemTime) {
    match response {
        IdentityProviderResponse::AccessToken(at) => {
            (at.token.expose_secret().to_owned(), at.expires_on)
        }
        other => panic!("expected an access token, got {}", other.kind()),
    }
}

fn at(unix: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(unix).unwrap())
}

#[tokio::test]
async fn azure_cli_current_output_with_expires_on_and_the_exact_command_line() {
    let (emu, oid, token) = user_token().await;
    let exp = exp_of(&token);
    let tools = FakeTools::new();
    // CLI >= 2.54: both `expiresOn` (local) and `expires_on` (unix); the integer wins.
    tools.prints(
        "az",
        &format!(
            r#"{{"accessToken": "{token}", "expiresOn": "{}.000000", "expires_on": {exp}, "subscription": "sub-1", "tenant": "{}", "tokenType": "Bearer"}}"#,
            civil(exp + 7200, ' '),
            emu.tenant_id()
        ),
    );
    let credential = AzureCliCredential::builder()
        .search_path(tools.search_path())
        .tenant_id(emu.tenant_id())
        .build()
        .unwrap();
    let (got, expires_on) = access_token(credential.request_token().await.unwrap());
    assert_eq!(got, token);
    assert_eq!(expires_on, at(exp));
    assert_eq!(
        emu.verifier().verify(&got).unwrap().claims.oid(),
        Some(oid.as_str())
    );
    assert_eq!(
        tools.args("az").unwrap(),
        [
            "account",
            "get-access-token",
            "-o",
            "json",
            "--resource",
            "https://redis.azure.com",
            "--tenant",
            emu.tenant_id()
        ]
    );
    // `expires_on` as a string works too.
    tools.prints(
        "az",
        &format!(r#"{{"accessToken": "{token}", "expires_on": "{exp}", "tokenType": "Bearer"}}"#),
    );
    assert_eq!(
        access_token(az(&tools).request_token().await.unwrap()).1,
        at(exp)
    );
    assert!(!tools.args("az").unwrap().contains(&"--tenant".to_owned()));
}

/// An old CLI gives only `expiresOn`, in the machine's local time without an offset: the token's own `exp` is the
/// expiry, whatever the local offset, and nothing but `az` is run (a `date` on the search path is never called).
#[tokio::test]
async fn azure_cli_old_output_in_local_time_takes_the_tokens_exp_and_runs_nothing_else() {
    let (_emu, _, token) = user_token().await;
    let exp = exp_of(&token);
    let tools = FakeTools::new();
    tools.prints("date", "+0530");
    for local_offset in [19_800, -8 * 3600, 0] {
        tools.prints(
            "az",
            &format!(
                r#"{{"accessToken": "{token}", "expiresOn": "{}.123456", "subscription": "s", "tenant": "t", "tokenType": "Bearer"}}"#,
                civil(exp + local_offset, ' ')
            ),
        );
        let (_, expires_on) = access_token(az(&tools).request_token().await.unwrap());
        assert_eq!(expires_on, at(exp), "{local_offset}");
    }
    assert_eq!(tools.args("date"), None, "no subprocess for the time");
    // An opaque token without `exp`: a clear error, without the token.
    tools.prints(
        "az",
        r#"{"accessToken": "opaque-token-VALUE", "expiresOn": "2030-01-01 00:00:00.000000", "tokenType": "Bearer"}"#,
    );
    let err = az(&tools).request_token().await.unwrap_err();
    assert!(matches!(err, Error::InvalidResponse { .. }), "{err}");
    assert!(
        err.to_string().contains("no usable expiry")
            && !err.to_string().contains("opaque-token-VALUE")
    );
}

#[tokio::test]
async fn azure_cli_not_installed_and_not_logged_in_are_unavailable() {
    let tools = FakeTools::new();
    let err = az(&tools).request_token().await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert!(
        err.to_string().contains("not found") && err.to_string().contains("`az login`"),
        "{err}"
    );
    // A wrapper that exits 127 (command not found).
    tools.fails("az", "/usr/bin/az: line 2: python3: command not found", 127);
    let err = az(&tools).request_token().await.unwrap_err();
    assert!(
        err.is_unavailable() && err.to_string().contains("not installed"),
        "{err}"
    );
    for stderr in [
        "ERROR: Please run 'az login' to setup account.",
        "ERROR: Please run \"az account set\" to select a subscription.",
    ] {
        tools.script(
            "az",
            &format!("echo \"{}\" >&2; exit 1", stderr.replace('"', "\\\"")),
        );
        let err = az(&tools).request_token().await.unwrap_err();
        assert!(err.is_unavailable(), "{stderr}: {err}");
        assert!(err.to_string().contains("run `az login`"), "{err}");
    }
}

#[tokio::test]
async fn azure_cli_aadsts_failures_fail_and_count_as_unavailable_in_a_chain() {
    let tools = FakeTools::new();
    tools.fails(
        "az",
        "ERROR: AADSTS70043: The refresh token has expired or is invalid due to sign-in frequency checks by conditional access. Please run az login.",
        1,
    );
    let err = az(&tools).request_token().await.unwrap_err();
    assert!(matches!(err, Error::AuthenticationFailed { .. }), "{err}");
    assert!(err.to_string().contains("AADSTS70043"), "{err}");
    let in_chain = AzureCliCredential::builder()
        .search_path(tools.search_path())
        .in_chain(true)
        .build()
        .unwrap();
    let err = in_chain.request_token().await.unwrap_err();
    assert!(
        err.is_unavailable() && err.to_string().contains("AADSTS70043"),
        "{err}"
    );
    // Output that is not JSON: an invalid response that does not quote it.
    tools.prints("az", "not json: secret-looking-OUTPUT");
    let err = az(&tools).request_token().await.unwrap_err();
    assert!(matches!(err, Error::InvalidResponse { .. }), "{err}");
    assert!(!err.to_string().contains("secret-looking-OUTPUT"), "{err}");
}

#[tokio::test]
async fn azure_cli_is_killed_after_its_timeout() {
    let tools = FakeTools::new();
    tools.script(
        "az",
        &format!(
            "echo $$ > '{}/az.pid'\nexec /bin/sleep 30",
            tools.dir().display()
        ),
    );
    let credential = AzureCliCredential::builder()
        .search_path(tools.search_path())
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let err = credential.request_token().await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let pid = std::fs::read_to_string(tools.dir().join("az.pid")).unwrap();
    let proc = std::path::Path::new("/proc").join(pid.trim());
    assert!(
        !proc.exists(),
        "the timed-out az (pid {}) is still running",
        pid.trim()
    );
}

/// Whether a process runs (a zombie waiting for its parent to reap it does not).
fn is_running(pid: &str) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())) else {
        return false;
    };
    let state = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next());
    !matches!(state, Some('Z' | 'X'))
}

/// Waits (boundedly) until the process has stopped running; `false` if it still runs after 5 s.
async fn stops(pid: &str) -> bool {
    for _ in 0..500 {
        if !is_running(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// A fake `az` that, like the Debian launcher, does not `exec`: it starts a long child and waits for it.
fn az_that_forks(tools: &FakeTools) -> (std::path::PathBuf, std::path::PathBuf) {
    let (launcher, grandchild) = (tools.dir().join("az.pid"), tools.dir().join("python.pid"));
    tools.script(
        "az",
        &format!(
            "/bin/sleep 300 &\necho $! > '{}'\necho $$ > '{}'\nwait",
            grandchild.display(),
            launcher.display()
        ),
    );
    (launcher, grandchild)
}

/// Reads a pid file the fake tool writes as it starts.
async fn pid_in(path: &std::path::Path) -> String {
    for _ in 0..500 {
        if let Ok(pid) = std::fs::read_to_string(path)
            && !pid.trim().is_empty()
        {
            return pid.trim().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} was never written", path.display());
}

#[tokio::test]
async fn a_timed_out_cli_that_does_not_exec_is_killed_with_its_whole_process_group() {
    let tools = FakeTools::new();
    let (launcher, grandchild) = az_that_forks(&tools);
    let credential = AzureCliCredential::builder()
        .search_path(tools.search_path())
        .timeout(Duration::from_millis(700))
        .build()
        .unwrap();
    let err = credential.request_token().await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    let (launcher, grandchild) = (pid_in(&launcher).await, pid_in(&grandchild).await);
    assert!(
        stops(&launcher).await,
        "the az launcher (pid {launcher}) survived its timeout"
    );
    assert!(
        stops(&grandchild).await,
        "az's child (pid {grandchild}) survived the timeout: only the launcher was killed"
    );
}

#[tokio::test]
async fn a_dropped_cli_request_kills_the_whole_process_group() {
    let tools = FakeTools::new();
    let (launcher, grandchild) = az_that_forks(&tools);
    let credential = AzureCliCredential::builder()
        .search_path(tools.search_path())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    // The caller gives up first (as the token manager's request timeout does): the request future is dropped.
    let request = credential.request_token();
    let (launcher_pid, grandchild_pid) = tokio::select! {
        _ = request => panic!("the fake az never finishes"),
        pids = async { (pid_in(&launcher).await, pid_in(&grandchild).await) } => pids,
    };
    assert!(
        stops(&grandchild_pid).await,
        "az's child (pid {grandchild_pid}) outlived the dropped request"
    );
    assert!(
        stops(&launcher_pid).await,
        "the az launcher (pid {launcher_pid}) outlived the dropped request"
    );
}

#[tokio::test(start_paused = true)]
async fn the_default_timeout_is_ten_seconds_on_tokios_clock() {
    let tools = FakeTools::new();
    tools.script("az", "exec /bin/sleep 60");
    let started = tokio::time::Instant::now();
    let err = az(&tools).request_token().await.unwrap_err();
    assert!(
        matches!(err, Error::Timeout { after, .. } if after == Duration::from_secs(10)),
        "{err}"
    );
    assert_eq!(started.elapsed(), Duration::from_secs(10));
}

#[tokio::test]
async fn azure_developer_cli_output_command_line_and_failures() {
    let (emu, oid, token) = user_token().await;
    let exp = exp_of(&token);
    let tools = FakeTools::new();
    tools.prints(
        "azd",
        &format!(
            r#"{{"token": "{token}", "expiresOn": "{}Z"}}"#,
            civil(exp, 'T')
        ),
    );
    let credential = AzureDeveloperCliCredential::builder()
        .search_path(tools.search_path())
        .tenant_id(emu.tenant_id())
        .build()
        .unwrap();
    let (got, expires_on) = access_token(credential.request_token().await.unwrap());
    assert_eq!(expires_on, at(exp));
    assert_eq!(
        emu.verifier().verify(&got).unwrap().claims.oid(),
        Some(oid.as_str())
    );
    assert_eq!(
        tools.args("azd").unwrap(),
        [
            "auth",
            "token",
            "-o",
            "json",
            "--no-prompt",
            "--scope",
            "https://redis.azure.com/.default",
            "--tenant-id",
            emu.tenant_id()
        ]
    );
    // Fractional seconds, as azd prints them.
    tools.prints(
        "azd",
        &format!(
            r#"{{"token": "{token}", "expiresOn": "{}.000Z"}}"#,
            civil(exp, 'T')
        ),
    );
    assert_eq!(
        access_token(azd(&tools).request_token().await.unwrap()).1,
        at(exp)
    );

    // Not logged in: azd prints a JSON console message on standard error.
    tools.fails(
        "azd",
        r#"{"type":"consoleMessage","timestamp":"2025-06-17T10:30:00Z","data":{"message":"\nERROR: fetching token: not logged in, run `azd auth login` to login\n"}}"#,
        1,
    );
    let err = azd(&tools).request_token().await.unwrap_err();
    assert!(
        err.is_unavailable() && err.to_string().contains("run `azd auth login`"),
        "{err}"
    );
    tools.fails(
        "azd",
        r#"{"type":"consoleMessage","data":{"message":"ERROR: fetching token: AADSTS700082: The refresh token has expired due to inactivity. run `azd auth login`"}}"#,
        1,
    );
    let err = azd(&tools).request_token().await.unwrap_err();
    assert!(matches!(err, Error::AuthenticationFailed { .. }), "{err}");
    assert!(err.to_string().contains("AADSTS700082"), "{err}");
    std::fs::remove_file(tools.dir().join("azd")).unwrap();
    let err = azd(&tools).request_token().await.unwrap_err();
    assert!(
        err.is_unavailable() && err.to_string().contains("azd auth login"),
        "{err}"
    );
}

#[tokio::test]
async fn scopes_and_tenants_are_validated_before_anything_runs() {
    for bad in ["https://x/.default --debug", "$(reboot)", "a;b", "-o"] {
        assert!(matches!(
            AzureCliCredential::builder().scope(bad).build(),
            Err(Error::Configuration { .. })
        ));
        assert!(matches!(
            AzureDeveloperCliCredential::builder().scope(bad).build(),
            Err(Error::Configuration { .. })
        ));
    }
    assert!(
        AzureDeveloperCliCredential::builder()
            .tenant_id("t/../x")
            .build()
            .is_err()
    );
    let custom = AzureCliCredential::builder()
        .scope("api://my-app/.default")
        .search_path("/nonexistent")
        .build()
        .unwrap();
    assert!(custom.arguments().contains(&"api://my-app"));
}

/// A huge `expires_on` from az (or an unreadable `expiresOn` from azd) panicked in the time arithmetic; now the
/// token's own `exp` is used.
#[tokio::test]
async fn absurd_cli_expiries_fall_back_on_the_tokens_exp() {
    let (_emu, _oid, token) = user_token().await;
    let exp = exp_of(&token);
    let tools = FakeTools::new();
    for expires_on in [
        r#""18446744073709551615""#,
        "18446744073709551615",
        "99999999999999999999",
        "1e300",
        r#""99999999999999999999""#,
    ] {
        tools.prints(
            "az",
            &format!(
                r#"{{"accessToken": "{token}", "expires_on": {expires_on}, "tokenType": "Bearer"}}"#
            ),
        );
        let (_, got) = access_token(az(&tools).request_token().await.unwrap());
        assert_eq!(got, at(exp), "{expires_on}");
    }
    for expires_on in [
        r#""300000000000-01-01T00:00:00Z""#,
        r#""2025-06-17T14:30:00+1é1""#,
        "1e300",
    ] {
        tools.prints(
            "azd",
            &format!(r#"{{"token": "{token}", "expiresOn": {expires_on}}}"#),
        );
        let (_, got) = access_token(azd(&tools).request_token().await.unwrap());
        assert_eq!(got, at(exp), "{expires_on}");
    }
    // Without an `exp` to fall back on, a typed error that names no part of the token.
    tools.prints(
        "azd",
        r#"{"token": "opaque-TOKEN-text", "expiresOn": "300000000000-01-01T00:00:00Z"}"#,
    );
    let err = azd(&tools).request_token().await.unwrap_err();
    assert!(matches!(err, Error::InvalidResponse { .. }), "{err}");
    assert!(!err.to_string().contains("TOKEN"), "{err}");
}
