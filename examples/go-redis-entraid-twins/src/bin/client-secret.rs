//! go-redis-entraid's "Client Secret Authentication" example, with its `OnReAuthenticationError` hook.

#![allow(
    clippy::print_stderr,
    reason = "an example program reports to its user"
)]

use entraid_example_go_redis_entraid_twins::{BoxError, connect_and_ping, required};
use entraid_fred::{EntraIdAuth, Secret};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let auth = EntraIdAuth::client_secret(
        required("AZURE_TENANT_ID")?,
        required("AZURE_CLIENT_ID")?,
        Secret::new(required("AZURE_CLIENT_SECRET")?),
    )?;
    // The Go `OnReAuthenticationError` callback: every failed re-authentication of a live connection.
    let mut errors = auth.subscribe_errors();
    tokio::spawn(async move {
        while let Ok(error) = errors.recv().await {
            eprintln!("re-authentication error: {error}");
        }
    });
    connect_and_ping(&auth, "client-secret").await
}
