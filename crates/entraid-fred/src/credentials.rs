//! [`EntraCredentialProvider`]: fred's `CredentialProvider` backed by the token manager.
//!
//! fred calls it for every new connection and every reconnect (including its backchannel), so each connection
//! starts authenticated as (`oid`, token) with the current token. When no valid token is at hand yet, it waits for
//! one (the manager's single flight), so a client built before the first token arrives still connects. When none
//! can be had, the fred error it returns carries the manager's error ([`token_error`](crate::token_error)).

use async_trait::async_trait;
use fred::error::Error as FredError;
use fred::types::config::{CredentialProvider, Server};

use entraid_manager::TokenManager;

/// fred's `CredentialProvider` for Entra ID: `(Some(oid), Some(token))` from the current token.
///
/// It never asks fred to poll (`refresh_interval` is `None`): live connections are re-authenticated by
/// [`EntraIdAuth`](crate::EntraIdAuth) as soon as a new token arrives, not on a timer.
#[derive(Debug, Clone)]
pub struct EntraCredentialProvider {
    manager: TokenManager,
}

impl EntraCredentialProvider {
    /// A provider reading tokens from `manager`.
    pub fn new(manager: TokenManager) -> Self {
        Self { manager }
    }
}

#[async_trait]
impl CredentialProvider for EntraCredentialProvider {
    async fn fetch(
        &self,
        _server: Option<&Server>,
    ) -> Result<(Option<String>, Option<String>), FredError> {
        let token = self.manager.token().await.map_err(|e| {
            // The manager's errors never carry a secret.
            tracing::warn!(provider = %self.manager.provider_name(), error = %e,
                "no Entra ID token for a new Redis connection");
            crate::error::no_token(&e)
        })?;
        Ok((
            Some(token.username().to_owned()),
            Some(token.access_token().expose_secret().to_owned()),
        ))
    }
}
