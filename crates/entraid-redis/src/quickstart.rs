//! Convenience constructors mirroring go-redis-entraid's Quick Start: managed identity (system and user
//! assigned), confidential client (secret, certificate), the default chain, and any custom provider.
//!
//! Each returns an [`EntraIdAuth`]: hand a clone to redis-rs as its streaming credentials provider (or use
//! [`async_connection_config`](EntraIdAuth::async_connection_config)); [`attach`](EntraIdAuth::attach) adds the
//! adapter's own re-AUTH with retries. The token manager uses [`TokenManagerOptions::default`]; for other options, or an
//! identity configured beyond these defaults, build the credential with `entraid_identity` and pass it to
//! [`EntraIdAuth::from_provider`].

use entraid_core::{Error, Secret};
use entraid_identity::{
    ClientCertificate, ClientCertificateCredential, ClientSecretCredential, DefaultAzureCredential,
    ManagedIdentityCredential, UserAssignedId,
};
use entraid_manager::TokenManagerOptions;

use crate::EntraIdAuth;

impl EntraIdAuth {
    /// The system-assigned managed identity of the Azure host this runs on (IMDS, App Service, Functions, Arc,
    /// Cloud Shell, Azure ML or Service Fabric, detected from the environment).
    pub fn system_assigned_managed_identity() -> Result<Self, Error> {
        Self::from_provider(
            ManagedIdentityCredential::system_assigned()?,
            TokenManagerOptions::default(),
        )
    }

    /// A user-assigned managed identity, by client id, object id or resource id.
    pub fn user_assigned_managed_identity(id: UserAssignedId) -> Result<Self, Error> {
        let credential = ManagedIdentityCredential::builder()
            .user_assigned(id)
            .build()?;
        Self::from_provider(credential, TokenManagerOptions::default())
    }

    /// A service principal with a client secret, in `tenant_id` (a tenant id or domain, not `common`).
    pub fn client_secret(
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
        secret: Secret,
    ) -> Result<Self, Error> {
        let credential = ClientSecretCredential::new(tenant_id, client_id, secret)?;
        Self::from_provider(credential, TokenManagerOptions::default())
    }

    /// A service principal with a certificate (PS256 assertion, `x5t#S256`), in `tenant_id`.
    pub fn client_certificate(
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
        certificate: ClientCertificate,
    ) -> Result<Self, Error> {
        let credential = ClientCertificateCredential::builder()
            .tenant_id(tenant_id)
            .client_id(client_id)
            .certificate(certificate)
            .build()?;
        Self::from_provider(credential, TokenManagerOptions::default())
    }

    /// The default chain: environment, workload identity, managed identity, Azure CLI, Azure Developer CLI
    /// (`AZURE_TOKEN_CREDENTIALS` narrows it).
    pub fn default_azure_credential() -> Result<Self, Error> {
        Self::from_provider(
            DefaultAzureCredential::new()?,
            TokenManagerOptions::default(),
        )
    }
}
