//! `entraid emulator`: the testkit's Entra ID emulator (and, with `--redis`, a redis-server behind the enforcing
//! gateway) in the foreground, with the environment variables that point any client at it, in any language.
//!
//! Standard output carries only `export NAME=value` lines and comments, ending with `# ready`, so
//! `entraid emulator > emulator.env` in one terminal and `. ./emulator.env` in another works, and a test can read
//! it line by line.

use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, ValueEnum};
use entraid_testkit::emulator::{App, Emulator, ManagedIdentity};
use entraid_testkit::redis::RedisHarness;

use crate::exit::{self, Exit};

/// Which identity the exported variables select.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum IdentityKind {
    /// A system-assigned managed identity on the App Service endpoint (`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`).
    ManagedIdentity,
    /// A service principal with a client secret (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`).
    ServicePrincipal,
}

/// `entraid emulator` options.
#[derive(Debug, Args)]
pub(crate) struct EmulatorArgs {
    /// The identity the exported variables select (the other one is printed commented out).
    #[arg(long, value_enum, default_value_t = IdentityKind::ManagedIdentity)]
    pub(crate) identity: IdentityKind,
    /// Lifetime of the tokens it issues, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(2..))]
    pub(crate) token_lifetime: u64,
    /// Also start a redis-server (from `PATH`) behind the testkit's enforcing gateway, which verifies each token
    /// and closes a connection when its token expires; exports `REDIS_URL`.
    #[arg(long)]
    pub(crate) redis: bool,
    /// Export the HTTPS authority host (with its CA in `ENTRAID_EMULATOR_CA_FILE`) instead of the HTTP one
    /// (loopback HTTP suits entraid-rs; other SDKs may require HTTPS).
    #[arg(long)]
    pub(crate) https: bool,
}

fn line(out: &mut impl std::io::Write, text: &str) -> std::io::Result<()> {
    writeln!(out, "{text}")
}

pub(crate) async fn run(args: EmulatorArgs) -> Exit {
    match serve(args).await {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("entraid emulator: {e}");
            exit::CHECK_FAILED
        }
    }
}

async fn serve(args: EmulatorArgs) -> Result<(), Box<dyn std::error::Error>> {
    let lifetime = Duration::from_secs(args.token_lifetime);
    let emulator = Emulator::start().await?;
    let identity = emulator
        .add_managed_identity(ManagedIdentity::system_assigned().token_lifetime(lifetime))?;
    let nonce = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
        ^ u128::from(std::process::id());
    let client_id = "00000000-0000-4000-8000-00000000e1a1";
    let secret = format!("emulator-secret-{nonce:x}");
    let app = emulator.add_app(
        App::new(client_id)
            .secret(secret.clone())
            .token_lifetime(lifetime),
    )?;
    let ca_dir = std::env::temp_dir().join(format!("entraid-emulator-{}", std::process::id()));
    std::fs::create_dir_all(&ca_dir)?;
    let ca_file = ca_dir.join("ca.pem");
    std::fs::write(&ca_file, emulator.ca_cert_pem())?;
    let harness = if args.redis {
        Some(RedisHarness::standalone().await?)
    } else {
        None
    };

    let authority = if args.https {
        emulator.https_url()
    } else {
        emulator.http_url()
    };
    let (mi, sp) = match args.identity {
        IdentityKind::ManagedIdentity => ("", "# "),
        IdentityKind::ServicePrincipal => ("# ", ""),
    };
    let mut out = std::io::stdout().lock();
    line(
        &mut out,
        &format!(
            "# Entra ID emulator: {} (tenant {})",
            emulator.http_url(),
            emulator.tenant_id()
        ),
    )?;
    line(
        &mut out,
        &format!(
            "# managed identity oid {}; service principal oid {}",
            identity.oid, app.oid
        ),
    )?;
    line(
        &mut out,
        "# A managed identity (App Service / Functions style endpoint):",
    )?;
    line(
        &mut out,
        &format!(
            "{mi}export IDENTITY_ENDPOINT={}",
            emulator.app_service_endpoint()
        ),
    )?;
    line(
        &mut out,
        &format!(
            "{mi}export IDENTITY_HEADER={}",
            emulator.app_service_secret()
        ),
    )?;
    line(
        &mut out,
        "# IMDS-style clients (the default chain without IDENTITY_ENDPOINT):",
    )?;
    line(
        &mut out,
        &format!(
            "{mi}export AZURE_POD_IDENTITY_AUTHORITY_HOST={}",
            emulator.http_url()
        ),
    )?;
    line(&mut out, "# A service principal with a client secret:")?;
    line(
        &mut out,
        &format!("{sp}export AZURE_AUTHORITY_HOST={authority}"),
    )?;
    line(
        &mut out,
        &format!("{sp}export AZURE_TENANT_ID={}", emulator.tenant_id()),
    )?;
    line(&mut out, &format!("{sp}export AZURE_CLIENT_ID={client_id}"))?;
    line(
        &mut out,
        &format!("{sp}export AZURE_CLIENT_SECRET={secret}"),
    )?;
    line(
        &mut out,
        "# The emulator's HTTPS certificate authority (for SSL_CERT_FILE, REQUESTS_CA_BUNDLE, NODE_EXTRA_CA_CERTS):",
    )?;
    line(
        &mut out,
        &format!("export ENTRAID_EMULATOR_CA_FILE={}", ca_file.display()),
    )?;
    if let Some(harness) = &harness {
        line(
            &mut out,
            "# Redis behind the enforcing gateway (username = the token's oid, password = the token):",
        )?;
        line(
            &mut out,
            &format!("export REDIS_URL=redis://{}", harness.addr()),
        )?;
    }
    line(&mut out, "# ready")?;
    out.flush()?;
    drop(out);
    eprintln!("entraid emulator: serving until interrupted (Ctrl-C)");
    wait_for_shutdown().await;
    let _ = std::fs::remove_dir_all(&ca_dir);
    eprintln!(
        "entraid emulator: {} tokens issued; stopping",
        emulator.total_tokens_issued()
    );
    drop(harness);
    Ok(())
}

#[cfg(unix)]
async fn wait_for_shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_shutdown() {
    let _ = tokio::signal::ctrl_c().await;
}
