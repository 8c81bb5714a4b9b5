//! Convenience constructors mirroring go-redis-entraid's Quick Start: managed identity (system and user
//! assigned), confidential client (secret, certificate), the default chain, and any custom provider.
//!
//! Each returns an [`EntraIdAuth`] whose [`fred_builder`](EntraIdAuth::fred_builder) (or
//! [`configure`](EntraIdAuth::configure)) plugs into fred, and whose [`attach`](EntraIdAuth::attach) keeps a built
//! client re-authenticated. The token manager uses [`TokenManagerOptions::default`]; for other options, or an
//! identity configured beyond these defaults, build the credential with `entraid_identity` and pass it to
//! [`EntraIdAuth::from_provider`]. The constructors are written once, in `entraid_identity::quickstart_constructors!`,
//! for both adapters.

use entraid_manager::TokenManagerOptions;

use crate::EntraIdAuth;

entraid_identity::quickstart_constructors!(EntraIdAuth, TokenManagerOptions::default());
