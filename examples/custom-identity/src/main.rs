//! Connects to Redis with tokens from a file, keeping every connection re-authenticated as the file's token
//! changes.
//!
//! ```text
//! ENTRAID_TOKEN_FILE=/var/run/secrets/redis-token REDIS_HOST=myredis.redis.cache.windows.net REDIS_PORT=6380 \
//!     cargo run -p entraid-example-custom-identity
//! ```
//!
//! (Azure Redis requires TLS: enable one of fred's TLS features and set `Config::tls` for a real server.)

#![forbid(unsafe_code)]
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "an example program reports on the terminal"
)]

use entraid_example_custom_identity::TokenFileProvider;
use entraid_fred::EntraIdAuth;
use entraid_fred::fred::prelude::*;
use entraid_fred::fred::types::config::{Config, ServerConfig};
use entraid_manager::{TokenManager, TokenManagerOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::var("ENTRAID_TOKEN_FILE")
        .map_err(|_| "set ENTRAID_TOKEN_FILE to a file holding a JWT")?;
    let host = std::env::var("REDIS_HOST").unwrap_or_else(|_| "127.0.0.1".to_owned());
    let port: u16 = std::env::var("REDIS_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(6379);

    let manager =
        TokenManager::start(TokenFileProvider::new(path), TokenManagerOptions::default())?;
    let auth = EntraIdAuth::new(manager);
    let config = Config {
        server: ServerConfig::new_centralized(host, port),
        ..Config::default()
    };
    let client = auth.fred_builder(config).build()?;
    client.init().await?;
    auth.attach(&client).forever();

    let pong: String = client.ping(None).await?;
    println!(
        "connected: {pong}; connections are re-authenticated on every new token. Ctrl-C to stop."
    );
    tokio::signal::ctrl_c().await?;
    client.quit().await?;
    Ok(())
}
