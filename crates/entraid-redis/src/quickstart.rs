//! Convenience constructors mirroring go-redis-entraid's Quick Start: managed identity (system and user
//! assigned), confidential client (secret, certificate), the default chain, and any custom provider.
//!
//! Each returns an [`EntraIdAuth`]: hand a clone to redis-rs as its streaming credentials provider (or use
//! [`async_connection_config`](EntraIdAuth::async_connection_config)); [`attach`](EntraIdAuth::attach) adds the
//! adapter's own re-AUTH with retries. The token manager uses [`TokenManagerOptions::default`]; for other options, or an
//! identity configured beyond these defaults, build the credential with `entraid_identity` and pass it to
//! [`EntraIdAuth::from_provider`]. The constructors are written once, in `entraid_identity::quickstart_constructors!`,
//! for both adapters.

use entraid_manager::TokenManagerOptions;

use crate::EntraIdAuth;

entraid_identity::quickstart_constructors!(EntraIdAuth, TokenManagerOptions::default());
