//! [`UsernamePasswordCredential`]: a user's name and password (the resource-owner password grant, ROPC).
//!
//! **Deprecated by Microsoft**: ROPC does not work with multi-factor authentication (Entra answers AADSTS50076),
//! passwordless accounts, federated accounts or personal Microsoft accounts, and it hands the password to the
//! application. Prefer managed identity, a service principal, or an interactive flow ([`DeviceCodeCredential`],
//! [`InteractiveBrowserCredential`]). It exists here because the Azure SDKs still offer it.
//!
//! [`DeviceCodeCredential`]: crate::DeviceCodeCredential
//! [`InteractiveBrowserCredential`]: crate::InteractiveBrowserCredential

use entraid_core::{BoxFuture, Error, IdentityProvider, IdentityProviderResponse, Secret};

use crate::refresh_token::RefreshTokens;
use crate::token_endpoint::{
    ClientAuthentication, ClientProfile, CommonBuilder, Grant, TokenEndpointClient,
    common_builder_methods,
};

const NAME: &str = "UsernamePassword";

/// A user authenticating with a user name and password (ROPC). **Deprecated** (see the module documentation):
/// refused by MFA (AADSTS50076).
///
/// `POST {authority}/oauth2/v2.0/token` with `grant_type=password`, `username`, `password`, `client_id` and the
/// scope. Later requests redeem the refresh token of the last answer first.
///
/// ```
/// use entraid_identity::UsernamePasswordCredential;
///
/// let credential = UsernamePasswordCredential::builder()
///     .tenant_id("contoso.onmicrosoft.com")
///     .username("svc-redis@contoso.com")
///     .password("p@ssw0rd".into())
///     .build()
///     .unwrap();
/// assert!(!format!("{credential:?}").contains("p@ssw0rd"));
/// ```
#[derive(Debug)]
pub struct UsernamePasswordCredential {
    client: TokenEndpointClient,
    username: String,
    password: Secret,
    tokens: RefreshTokens,
}

impl UsernamePasswordCredential {
    /// A builder.
    pub fn builder() -> UsernamePasswordCredentialBuilder {
        UsernamePasswordCredentialBuilder::default()
    }
}

impl IdentityProvider for UsernamePasswordCredential {
    fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
        Box::pin(
            self.tokens
                .acquire(&self.client, &ClientAuthentication::None, || {
                    ClientAuthentication::None.request(&self.client, || Grant::Password {
                        username: &self.username,
                        password: &self.password,
                    })
                }),
        )
    }

    fn name(&self) -> &str {
        NAME
    }
}

/// Builds a [`UsernamePasswordCredential`]. Required: user name and password. Defaults: tenant `organizations`,
/// the Azure CLI's public client id, the Redis scope.
#[derive(Debug, Default)]
pub struct UsernamePasswordCredentialBuilder {
    common: CommonBuilder,
    username: Option<String>,
    password: Option<Secret>,
}

impl UsernamePasswordCredentialBuilder {
    common_builder_methods!(user);

    /// The user name (UPN, `user@contoso.com`). Required.
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// The password. Required.
    pub fn password(mut self, password: Secret) -> Self {
        self.password = Some(password);
        self
    }

    /// Builds the credential, checking every setting.
    pub fn build(self) -> Result<UsernamePasswordCredential, Error> {
        let username = self
            .username
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| Error::configuration(format!("{NAME}: the user name is empty")))?;
        let password = self
            .password
            .filter(|p| !p.is_empty())
            .ok_or_else(|| Error::configuration(format!("{NAME}: the password is empty")))?;
        tracing::debug!("UsernamePasswordCredential: the password grant (ROPC) is deprecated");
        Ok(UsernamePasswordCredential {
            client: self.common.build_for(NAME, ClientProfile::PublicUser)?,
            username,
            password,
            tokens: RefreshTokens::default(),
        })
    }
}
