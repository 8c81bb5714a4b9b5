//! go-redis-entraid's Quick Start ("Minimal Example"): a managed identity chosen by `AZURE_CLIENT_ID`.

use entraid_example_go_redis_entraid_twins::{BoxError, connect_and_ping, required};
use entraid_fred::{EntraIdAuth, UserAssignedId};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let client_id = required("AZURE_CLIENT_ID")?;
    let auth = EntraIdAuth::user_assigned_managed_identity(UserAssignedId::ClientId(client_id))?;
    connect_and_ping(&auth, "quick-start").await
}
