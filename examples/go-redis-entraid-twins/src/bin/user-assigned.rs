//! go-redis-entraid's "User Assigned Identity" example: the identity by its object id
//! (`AZURE_USER_ASSIGNED_MANAGED_ID`). Rust also takes a client id or a resource id (`UserAssignedId`).

use entraid_example_go_redis_entraid_twins::{BoxError, connect_and_ping, required};
use entraid_fred::{EntraIdAuth, UserAssignedId};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let object_id = required("AZURE_USER_ASSIGNED_MANAGED_ID")?;
    let auth = EntraIdAuth::user_assigned_managed_identity(UserAssignedId::ObjectId(object_id))?;
    connect_and_ping(&auth, "user-assigned").await
}
