//! go-redis-entraid's "System Assigned Identity" example.

use entraid_example_go_redis_entraid_twins::{BoxError, connect_and_ping};
use entraid_fred::EntraIdAuth;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // The scope defaults to https://redis.azure.com/.default, as the Go example sets it.
    let auth = EntraIdAuth::system_assigned_managed_identity()?;
    connect_and_ping(&auth, "system-assigned").await
}
