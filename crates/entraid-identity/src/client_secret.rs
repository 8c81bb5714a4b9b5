//! [`ClientSecretCredential`]: a service principal with a client secret (the client-credentials grant).

use entraid_core::{BoxFuture, Error, IdentityProvider, IdentityProviderResponse, Secret};

use crate::token_endpoint::{
    ClientProof, CommonBuilder, TokenEndpointClient, common_builder_methods,
};

const NAME: &str = "ClientSecret";

/// A service principal authenticating with a client secret.
///
/// `POST {authority}/oauth2/v2.0/token` with `grant_type=client_credentials`, `client_id`, `client_secret` and
/// `scope` (default `https://redis.azure.com/.default`).
///
/// ```
/// use entraid_identity::ClientSecretCredential;
///
/// let credential = ClientSecretCredential::builder()
///     .tenant_id("contoso.onmicrosoft.com")
///     .client_id("00000000-0000-0000-0000-000000000001")
///     .secret("s3cr3t".into())
///     .build()
///     .unwrap();
/// assert!(!format!("{credential:?}").contains("s3cr3t"));
/// ```
#[derive(Debug)]
pub struct ClientSecretCredential {
    client: TokenEndpointClient,
    secret: Secret,
}

impl ClientSecretCredential {
    /// A builder.
    pub fn builder() -> ClientSecretCredentialBuilder {
        ClientSecretCredentialBuilder::default()
    }

    /// A credential with every other setting at its default.
    pub fn new(
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
        secret: Secret,
    ) -> Result<Self, Error> {
        Self::builder()
            .tenant_id(tenant_id)
            .client_id(client_id)
            .secret(secret)
            .build()
    }
}

impl IdentityProvider for ClientSecretCredential {
    fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
        Box::pin(async move {
            let response = self
                .client
                .request(ClientProof::Secret(&self.secret))
                .await?;
            Ok(response.into())
        })
    }

    fn name(&self) -> &str {
        NAME
    }
}

/// Builds a [`ClientSecretCredential`]. Required: tenant id (or authority), client id, secret.
#[derive(Debug, Default)]
pub struct ClientSecretCredentialBuilder {
    pub(crate) common: CommonBuilder,
    secret: Option<Secret>,
}

impl ClientSecretCredentialBuilder {
    common_builder_methods!();

    /// The client secret. Required.
    pub fn secret(mut self, secret: Secret) -> Self {
        self.secret = Some(secret);
        self
    }

    /// Builds the credential, checking every setting.
    pub fn build(self) -> Result<ClientSecretCredential, Error> {
        let secret = self
            .secret
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::configuration(format!("{NAME}: the client secret is empty")))?;
        Ok(ClientSecretCredential {
            client: self.common.build(NAME)?,
            secret,
        })
    }
}
