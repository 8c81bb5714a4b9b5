//! [`OnBehalfOfCredential`]: a middle-tier service exchanging the token a user sent it for a token to Redis as
//! that user (the on-behalf-of flow), authenticating with a client secret or a certificate.
//!
//! `POST {authority}/oauth2/v2.0/token` with `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`,
//! `assertion=<the user's token>`, `requested_token_use=on_behalf_of`, the scope, and the client's secret or signed
//! assertion. Later requests redeem the refresh token of the last answer first.

use entraid_core::{BoxFuture, Error, IdentityProvider, IdentityProviderResponse, Secret};

use crate::refresh_token::RefreshTokens;
use crate::signed_assertion::{CertificateSettings, certificate_builder_methods};
use crate::token_endpoint::{
    ClientAuthentication, ClientProfile, CommonBuilder, Grant, TokenEndpointClient,
    common_builder_methods,
};

const NAME: &str = "OnBehalfOf";

/// A service acting for the user whose token it received.
///
/// ```
/// use entraid_identity::OnBehalfOfCredential;
///
/// # let incoming_token = String::from("eyJ...the-users-token");
/// let credential = OnBehalfOfCredential::builder()
///     .tenant_id("contoso.onmicrosoft.com")
///     .client_id("00000000-0000-0000-0000-000000000004")
///     .client_secret("s3cr3t".into())
///     .user_assertion(incoming_token.into())
///     .build()
///     .unwrap();
/// assert!(!format!("{credential:?}").contains("s3cr3t"));
/// ```
#[derive(Debug)]
pub struct OnBehalfOfCredential {
    client: TokenEndpointClient,
    auth: ClientAuthentication,
    user_assertion: Secret,
    tokens: RefreshTokens,
}

impl OnBehalfOfCredential {
    /// A builder.
    pub fn builder() -> OnBehalfOfCredentialBuilder {
        OnBehalfOfCredentialBuilder::default()
    }
}

impl IdentityProvider for OnBehalfOfCredential {
    fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
        Box::pin(self.tokens.acquire(&self.client, &self.auth, || {
            self.auth.request(&self.client, || Grant::OnBehalfOf {
                assertion: &self.user_assertion,
            })
        }))
    }

    fn name(&self) -> &str {
        NAME
    }
}

/// Builds an [`OnBehalfOfCredential`]. Required: tenant id (or authority), client id, the user's token, and a
/// client secret or a certificate. Default scope: Redis.
#[derive(Debug, Default)]
pub struct OnBehalfOfCredentialBuilder {
    common: CommonBuilder,
    user_assertion: Option<Secret>,
    secret: Option<Secret>,
    signing: CertificateSettings,
}

impl OnBehalfOfCredentialBuilder {
    common_builder_methods!();

    /// The token the user sent this service (its `aud` is this app). Required.
    pub fn user_assertion(mut self, token: Secret) -> Self {
        self.user_assertion = Some(token);
        self
    }

    /// Authenticates the service with a client secret.
    pub fn client_secret(mut self, secret: Secret) -> Self {
        self.secret = Some(secret);
        self
    }

    certificate_builder_methods!("Authenticates the service with a certificate (private_key_jwt).");

    /// Builds the credential, checking every setting.
    pub fn build(self) -> Result<OnBehalfOfCredential, Error> {
        let user_assertion = self
            .user_assertion
            .filter(|a| !a.is_empty())
            .ok_or_else(|| {
                Error::configuration(format!(
                    "{NAME}: the user's token (user assertion) is empty"
                ))
            })?;
        let auth = match (self.secret, self.signing.signer()) {
            (Some(_), Some(_)) => {
                return Err(Error::configuration(format!(
                    "{NAME}: give a client secret or a certificate, not both"
                )));
            }
            (Some(secret), None) if secret.is_empty() => {
                return Err(Error::configuration(format!(
                    "{NAME}: the client secret is empty"
                )));
            }
            (Some(secret), None) => ClientAuthentication::Secret(secret),
            (None, Some(signer)) => ClientAuthentication::Certificate(signer),
            (None, None) => {
                return Err(Error::configuration(format!(
                    "{NAME}: the service must authenticate: give a client secret or a certificate"
                )));
            }
        };
        Ok(OnBehalfOfCredential {
            client: self
                .common
                .build_for(NAME, ClientProfile::ConfidentialUser)?,
            auth,
            user_assertion,
            tokens: RefreshTokens::default(),
        })
    }
}
