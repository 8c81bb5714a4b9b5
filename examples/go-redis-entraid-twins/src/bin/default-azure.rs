//! go-redis-entraid's "Default Azure Identity" example: environment, workload identity, managed identity, Azure
//! CLI, Azure Developer CLI, in that order (`AZURE_TOKEN_CREDENTIALS` narrows it).

use entraid_example_go_redis_entraid_twins::{BoxError, connect_and_ping};
use entraid_fred::EntraIdAuth;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let auth = EntraIdAuth::default_azure_credential()?;
    connect_and_ping(&auth, "default-azure").await
}
