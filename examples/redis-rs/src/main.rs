//! Connects redis-rs to Azure Managed Redis / Azure Cache for Redis with Entra ID and keeps the connection
//! re-authenticated on every new token.
//!
//! ```text
//! # a service principal with a client secret:
//! AZURE_TENANT_ID=... AZURE_CLIENT_ID=... AZURE_CLIENT_SECRET=... \
//!     REDIS_URL='rediss://myredis.redis.cache.windows.net:6380/?protocol=resp3' cargo run -p entraid-example-redis-rs
//! # otherwise the default chain (environment, workload identity, managed identity, Azure CLI, azd):
//! REDIS_URL='rediss://myredis.redis.cache.windows.net:6380/?protocol=resp3' cargo run -p entraid-example-redis-rs
//! ```

#![forbid(unsafe_code)]
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "an example program reports on the terminal"
)]

use entraid_redis::EntraIdAuth;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("REDIS_URL").map_err(
        |_| "set REDIS_URL, e.g. rediss://myredis.redis.cache.windows.net:6380/?protocol=resp3",
    )?;
    let auth = match (
        std::env::var("AZURE_TENANT_ID"),
        std::env::var("AZURE_CLIENT_ID"),
        std::env::var("AZURE_CLIENT_SECRET"),
    ) {
        (Ok(tenant), Ok(client), Ok(secret)) => {
            EntraIdAuth::client_secret(tenant, client, secret.into())?
        }
        _ => EntraIdAuth::default_azure_credential()?,
    };
    let (mut manager, attachment) = entraid_example_redis_rs::connect(&auth, &url, None).await?;
    attachment.forever();
    let pong = entraid_example_redis_rs::ping(&mut manager).await?;
    println!(
        "connected: {pong}; the connection is re-authenticated on every new token. Ctrl-C to stop."
    );
    tokio::signal::ctrl_c().await?;
    println!("{:?}", auth.stats());
    Ok(())
}
