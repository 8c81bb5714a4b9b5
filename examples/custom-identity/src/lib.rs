//! A custom identity provider: the access token is a file that something else keeps fresh (a sidecar, an agent,
//! a secret mount). It is re-read on every request, so a rotated file is picked up at the next refresh.
//!
//! This crate depends on entraid-core, entraid-manager and entraid-fred (without default features) only: no
//! reqwest, no HTTP stack from this project (`cargo xtask layering` checks it).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::PathBuf;

use entraid_core::{BoxFuture, Error, IdentityProvider, IdentityProviderResponse};

/// Reads a JWT access token from a file on every request.
#[derive(Debug, Clone)]
pub struct TokenFileProvider {
    path: PathBuf,
}

impl TokenFileProvider {
    /// A provider reading `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

impl IdentityProvider for TokenFileProvider {
    fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
        Box::pin(async move {
            let token = match tokio::fs::read_to_string(&self.path).await {
                Ok(token) => token,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(Error::unavailable(
                        "TokenFile",
                        format!("{} does not exist", self.path.display()),
                    ));
                }
                // A transient read error: worth retrying.
                Err(e) => return Err(Error::custom(e, true)),
            };
            // The token manager parses the JWT (its `oid` is the Redis username) and reads its `exp`.
            Ok(IdentityProviderResponse::raw_token(token.trim().to_owned()))
        })
    }

    fn name(&self) -> &str {
        "TokenFile"
    }
}
