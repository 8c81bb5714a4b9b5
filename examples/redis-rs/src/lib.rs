//! The example's one reusable piece: a redis-rs `ConnectionManager` authenticated by an [`EntraIdAuth`], over TLS
//! when the URL says `rediss://`, with the adapter's attachment keeping it re-authenticated.

#![forbid(unsafe_code)]

use entraid_redis::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use entraid_redis::redis::{self, Client, RedisResult, TlsCertificates};
use entraid_redis::{Attachment, EntraIdAuth};

/// Connects a `ConnectionManager` to `url` (`rediss://host:6380/?protocol=resp3` for Azure), trusting
/// `root_cert` (PEM) instead of the system's roots when given, and attaches it to `auth`.
///
/// redis-rs's own re-auth task sends `AUTH` on every new token; the returned [`Attachment`] adds the adapter's
/// retries (which keep the connection alive if that task stops after a failed `AUTH`). Keep it for as long as
/// the connection is used (or call [`Attachment::forever`]).
///
/// # Errors
/// redis-rs's error for a bad URL, a failed connection or handshake, or when no Entra ID token can be had.
pub async fn connect(
    auth: &EntraIdAuth,
    url: &str,
    root_cert: Option<Vec<u8>>,
) -> RedisResult<(ConnectionManager, Attachment)> {
    let client = if url.starts_with("rediss://") {
        Client::build_with_tls(
            url,
            TlsCertificates {
                client_tls: None,
                root_cert,
            },
        )?
    } else {
        Client::open(url)?
    };
    let config = ConnectionManagerConfig::new().set_credentials_provider(auth.clone());
    let manager = client.get_connection_manager_with_config(config).await?;
    let attachment = auth.attach(manager.clone());
    Ok((manager, attachment))
}

/// `PING`, for a first round trip.
///
/// # Errors
/// redis-rs's error for the command.
pub async fn ping(manager: &mut ConnectionManager) -> RedisResult<String> {
    redis::cmd("PING").query_async(manager).await
}
