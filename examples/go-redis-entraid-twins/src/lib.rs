//! What every twin does once it has an [`EntraIdAuth`]: wait for the first token, connect to `REDIS_URL` with
//! Entra auth, PING, write and read a key, and print who it is connected as. The go-redis-entraid examples end with
//! `client.Ping(ctx)`; these do the same and a little more, so a test can tell they really talked to Redis.

#![forbid(unsafe_code)]
#![allow(
    clippy::print_stdout,
    reason = "example programs report to their user on the terminal"
)]

use entraid_fred::EntraIdAuth;
use entraid_fred::fred::prelude::*;
use entraid_fred::fred::types::RespVersion;
use entraid_fred::fred::types::config::Config;

/// The error type of the examples.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An environment variable that must be set, as the Go examples' `os.Getenv` + `log.Fatal`.
pub fn required(name: &str) -> Result<String, BoxError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("the {name} environment variable is required").into())
}

/// Connects to `REDIS_URL` with `auth`, PINGs, sets and gets a key, and quits.
pub async fn connect_and_ping(auth: &EntraIdAuth, example: &str) -> Result<(), BoxError> {
    // Fail fast with the identity's own error (no managed identity, AADSTS...), before fred connects.
    auth.manager().ready().await?;
    let url = required("REDIS_URL")?;
    // `rediss://` turns on TLS (fred's rustls on ring, the feature `tls-rustls-ring` of entraid-fred); a
    // `REDIS_CLUSTER=1` endpoint (Azure Managed Redis with the OSS cluster policy) is a cluster.
    let url = match url.split_once("://") {
        Some((scheme, rest)) if std::env::var("REDIS_CLUSTER").is_ok_and(|v| v == "1") => {
            format!("{scheme}-cluster://{rest}") // redis-cluster:// or rediss-cluster://
        }
        _ => url,
    };
    let mut config = Config::from_url(&url)?;
    config.version = RespVersion::RESP3;
    let client = auth.fred_builder(config).build()?;
    client.init().await?;
    let _attachment = auth.attach(&client); // re-AUTH on every new token while the client lives
    let pong: String = client.ping(None).await?;
    let key = format!("entraid:example:{example}");
    let _: () = client.set(&key, example, None, None, false).await?;
    let value: String = client.get(&key).await?;
    let user = auth
        .manager()
        .current()
        .map(|t| t.username().to_owned())
        .unwrap_or_default();
    println!("{example}: {pong} as {user}; {key} = {value}");
    client.quit().await?;
    Ok(())
}
