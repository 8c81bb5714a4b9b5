//! `entraid emulator --redis` as a separate process: a second process (`entraid token`, `entraid ping`) pointed
//! at it only through the variables it prints gets a token and an authenticated PING.

#![allow(clippy::expect_used, reason = "tests stop on a broken set-up")]
#![cfg(feature = "testkit")]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Stops the emulator (SIGTERM, so it cleans up) when the test ends, even on failure.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        if self.0.wait().is_err() {
            let _ = self.0.kill();
        }
    }
}

fn start(args: &[&str]) -> (Running, BTreeMap<String, String>, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_entraid"))
        .arg("emulator")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("entraid emulator starts");
    let stdout = child.stdout.take().expect("test setup");
    let running = Running(child);
    let mut exports = BTreeMap::new();
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("test setup");
        if line == "# ready" {
            return (running, exports, lines);
        }
        if let Some((name, value)) = line
            .strip_prefix("export ")
            .and_then(|rest| rest.split_once('='))
        {
            exports.insert(name.to_owned(), value.to_owned());
        }
        lines.push(line);
    }
    panic!("the emulator exited before `# ready`: {lines:?}");
}

fn client(exports: &BTreeMap<String, String>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_entraid"));
    cmd.env_clear()
        .env("PATH", "/nonexistent")
        .envs(exports.iter().filter(|(name, _)| *name != "REDIS_URL"));
    cmd
}

#[test]
fn another_process_gets_tokens_and_pings_redis_through_the_printed_variables() {
    let (_emulator, exports, lines) = start(&["--redis", "--token-lifetime", "600"]);
    for name in [
        "IDENTITY_ENDPOINT",
        "IDENTITY_HEADER",
        "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        "ENTRAID_EMULATOR_CA_FILE",
        "REDIS_URL",
    ] {
        assert!(exports.contains_key(name), "{name}: {lines:?}");
    }
    // The service principal's variables are printed commented out, ready to swap in.
    for name in [
        "AZURE_AUTHORITY_HOST",
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("# export {name}="))),
            "{name}: {lines:?}"
        );
    }
    let ca = std::fs::read_to_string(&exports["ENTRAID_EMULATOR_CA_FILE"]).unwrap();
    assert!(ca.contains("BEGIN CERTIFICATE"));

    let output = client(&exports).args(["token", "--json"]).output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let token: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(token["aud"], "https://redis.azure.com");
    let expires_in = token["expires_in_seconds"].as_i64().unwrap();
    assert!((500..=600).contains(&expires_in), "{token}");

    let output = client(&exports)
        .args(["ping", &exports["REDIS_URL"], "--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let ping: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(ping["user"], token["oid"]);
}

#[test]
fn the_service_principal_block_works_on_its_own() {
    let (_emulator, exports, _) = start(&["--identity", "service-principal"]);
    assert!(!exports.contains_key("IDENTITY_ENDPOINT"));
    let output = client(&exports)
        .args(["token", "--credential", "client-secret", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let token: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(token["tid"], exports["AZURE_TENANT_ID"].as_str());
    // And the default chain picks the environment credential from the same variables.
    let output = client(&exports).args(["token", "--json"]).output().unwrap();
    let token: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        token["credential"], "EnvironmentCredential (DefaultAzureCredential)",
        "{token}"
    );
}
