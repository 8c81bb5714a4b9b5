//! [`EntraIdAuth`]: redis-rs's streaming credentials provider over the token manager.

use std::fmt;
use std::sync::Arc;

use entraid_core::{Error, IdentityProvider, Token};
use entraid_manager::{TokenManager, TokenManagerOptions};
use redis::AsyncConnectionConfig;
use redis::StreamingCredentialsProvider;

use crate::stats::{Counters, CredentialStats};
use crate::stream::{CredentialStream, credential_stream};

/// Entra ID credentials for redis-rs: (`oid`, token) from a [`TokenManager`], streamed to every connection.
///
/// A cheap `Clone` handle (clones share the manager and the counters). redis-rs takes a provider by value, so
/// hand it a clone:
///
/// ```no_run
/// # async fn run(auth: entraid_redis::EntraIdAuth) -> redis::RedisResult<()> {
/// let client = redis::Client::open("rediss://myredis.redis.cache.windows.net:6380/?protocol=resp3")?;
/// let mut conn = client
///     .get_multiplexed_async_connection_with_config(&auth.async_connection_config())
///     .await?;
/// let _: () = redis::cmd("SET").arg("k").arg("v").query_async(&mut conn).await?;
/// # Ok(()) }
/// ```
///
/// For `ConnectionManager` and the cluster client: `ConnectionManagerConfig::new().set_credentials_provider(auth.clone())`,
/// `ClusterClientBuilder::new(nodes).set_credentials_provider(auth.clone())`.
#[derive(Clone)]
pub struct EntraIdAuth {
    manager: TokenManager,
    counters: Arc<Counters>,
}

impl EntraIdAuth {
    /// Credentials from `manager` (which may serve other clients too).
    pub fn new(manager: TokenManager) -> Self {
        Self {
            manager,
            counters: Arc::default(),
        }
    }

    /// Starts a token manager over `provider` with `options` (must run inside a tokio runtime).
    ///
    /// # Errors
    /// [`Error::Configuration`] for invalid options or outside a tokio runtime (see [`TokenManager::start`]).
    pub fn from_provider(
        provider: impl IdentityProvider + 'static,
        options: TokenManagerOptions,
    ) -> Result<Self, Error> {
        Ok(Self::new(TokenManager::start(provider, options)?))
    }

    /// The token manager behind these credentials.
    pub fn manager(&self) -> &TokenManager {
        &self.manager
    }

    /// The token held now, if any (never waits).
    pub fn current(&self) -> Option<Arc<Token>> {
        self.manager.current()
    }

    /// `AsyncConnectionConfig::new()` with these credentials, for
    /// `Client::get_multiplexed_async_connection_with_config`. Set other options on the returned config.
    pub fn async_connection_config(&self) -> AsyncConnectionConfig {
        AsyncConnectionConfig::new().set_credentials_provider(self.clone())
    }

    /// A snapshot of the counters (see [`CredentialStats`]).
    pub fn stats(&self) -> CredentialStats {
        self.counters.snapshot()
    }

    pub(crate) fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }
}

impl StreamingCredentialsProvider for EntraIdAuth {
    /// The current token (waiting for the first one if there is none yet), then each new token.
    ///
    /// Refresh errors are not streamed: the connection keeps its valid token while the manager retries. Only
    /// when no token can be had for the first item does the stream yield an `AuthenticationFailed` error (so the
    /// connection attempt fails with the manager's error); it then waits for the next token.
    fn subscribe(&self) -> CredentialStream {
        credential_stream(&self.manager, &self.counters)
    }
}

impl fmt::Debug for EntraIdAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntraIdAuth")
            .field("provider", &self.manager.provider_name())
            .field(
                "user",
                &self.manager.current().map(|t| t.username().to_owned()),
            )
            .field("stats", &self.stats())
            .finish()
    }
}
