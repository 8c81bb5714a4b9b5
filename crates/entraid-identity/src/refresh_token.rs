//! The refresh-token grant: [`RefreshTokenCredential`], and [`RefreshTokens`], which every user flow (device
//! code, browser, username/password, on-behalf-of) uses to redeem the refresh token of its last response before it
//! asks the user again.
//!
//! A refused refresh token (revoked, expired, MFA now required: any authentication failure) is forgotten and the
//! flow runs its interactive part again; a transport error or a server error is returned as it is, so the user is
//! not asked to sign in again because of a network blip. Refresh tokens are held in [`Secret`]s.

use std::fmt;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use entraid_core::{
    BoxFuture, Error, IdentityProvider, IdentityProviderResponse, RequestHint, Secret,
    TokenResponse,
};

use crate::token_endpoint::{
    ClientAuthentication, ClientProfile, CommonBuilder, Grant, TokenEndpointClient,
    common_builder_methods,
};

/// The refresh token of a user flow's last response.
#[derive(Default)]
pub(crate) struct RefreshTokens(Mutex<Option<Secret>>);

impl fmt::Debug for RefreshTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshTokens")
            .field("held", &self.current().is_some())
            .finish()
    }
}

impl RefreshTokens {
    /// Holds this refresh token.
    pub(crate) fn new(token: Secret) -> Self {
        Self(Mutex::new(Some(token)))
    }

    /// The refresh token held, if any.
    pub(crate) fn current(&self) -> Option<Secret> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Keeps the response's refresh token, when it carried one (a response without one keeps the current one).
    fn remember(&self, response: &TokenResponse) {
        if let Some(token) = response.refresh_token.as_ref().filter(|t| !t.is_empty()) {
            *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(token.clone());
        }
    }

    fn forget(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Redeems the held refresh token.
    async fn redeem(
        &self,
        client: &TokenEndpointClient,
        auth: &ClientAuthentication,
        token: &Secret,
    ) -> Result<TokenResponse, Error> {
        let response = auth
            .request(client, || Grant::RefreshToken {
                refresh_token: token,
            })
            .await?;
        self.remember(&response);
        Ok(response)
    }

    /// A user flow's token: the refresh grant first when a refresh token is held, the interactive flow when none
    /// is or when Entra refused it. The refresh token of the response is kept for next time; the rest is the
    /// provider's answer.
    pub(crate) async fn acquire<F, Fut>(
        &self,
        client: &TokenEndpointClient,
        auth: &ClientAuthentication,
        interactive: F,
    ) -> Result<IdentityProviderResponse, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<TokenResponse, Error>>,
    {
        if let Some(token) = self.current() {
            match self.redeem(client, auth, &token).await {
                Ok(response) => {
                    tracing::debug!(
                        credential = client.credential(),
                        "token from the refresh token"
                    );
                    return Ok(response.into());
                }
                Err(error @ Error::AuthenticationFailed { .. }) => {
                    tracing::debug!(
                        credential = client.credential(),
                        error = %error,
                        "the refresh token was refused; signing in again"
                    );
                    self.forget();
                }
                Err(other) => return Err(other),
            }
        }
        let response = interactive().await?;
        self.remember(&response);
        Ok(response.into())
    }
}

#[cfg(any(feature = "device-code", feature = "interactive-browser"))]
/// What an interactive user flow (device code, browser) answers as an [`IdentityProvider`], in one place: its token
/// comes from [`RefreshTokens::acquire`] as a public client (the sign-in runs only when no refresh token works),
/// and its [`RequestHint`] is interactive, for the person's time plus four HTTP request timeouts (the refresh-token
/// attempt, discovery, the flow's own request, and its last one).
pub(crate) struct InteractiveFlow<'a> {
    /// The flow's token-endpoint client.
    pub(crate) client: &'a TokenEndpointClient,
    /// The flow's refresh tokens.
    pub(crate) tokens: &'a RefreshTokens,
    /// How long the person may take.
    pub(crate) person_time: Duration,
}

#[cfg(any(feature = "device-code", feature = "interactive-browser"))]
impl InteractiveFlow<'_> {
    /// The flow's token: the refresh grant first, `sign_in` when it cannot serve.
    pub(crate) async fn request_token<F, Fut>(
        self,
        sign_in: F,
    ) -> Result<IdentityProviderResponse, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<TokenResponse, Error>>,
    {
        self.tokens
            .acquire(self.client, &ClientAuthentication::None, sign_in)
            .await
    }

    /// The flow's request hint.
    pub(crate) fn request_hint(&self) -> RequestHint {
        let http = self.client.http().timeout();
        RequestHint::interactive(self.person_time.saturating_add(http.saturating_mul(4)))
    }
}

#[cfg(any(feature = "device-code", feature = "interactive-browser"))]
/// The `IdentityProvider` of an interactive user flow: a credential type with `fn flow(&self) -> InteractiveFlow<'_>`
/// (its client, refresh tokens and the person's time), `async fn sign_in(&self)` and a `NAME` in scope.
macro_rules! interactive_identity_provider {
    ($credential:ty) => {
        impl entraid_core::IdentityProvider for $credential {
            fn request_token(
                &self,
            ) -> entraid_core::BoxFuture<
                '_,
                Result<entraid_core::IdentityProviderResponse, entraid_core::Error>,
            > {
                Box::pin(self.flow().request_token(|| self.sign_in()))
            }

            fn name(&self) -> &str {
                NAME
            }

            fn request_hint(&self) -> entraid_core::RequestHint {
                self.flow().request_hint()
            }
        }
    };
}
#[cfg(any(feature = "device-code", feature = "interactive-browser"))]
pub(crate) use interactive_identity_provider;

/// A refresh token you already hold, redeemed with the refresh-token grant. Every answer's new refresh token
/// replaces the old one; a refused refresh token is an authentication failure (there is no user to ask).
///
/// A public client by default (the Azure CLI's client id, tenant `organizations`); give
/// [`client_secret`](RefreshTokenCredentialBuilder::client_secret) for a confidential one.
///
/// ```
/// use entraid_identity::RefreshTokenCredential;
///
/// let credential = RefreshTokenCredential::builder()
///     .tenant_id("contoso.onmicrosoft.com")
///     .refresh_token("0.AQ-refresh-token".into())
///     .build()
///     .unwrap();
/// assert!(!format!("{credential:?}").contains("0.AQ"));
/// ```
#[derive(Debug)]
pub struct RefreshTokenCredential {
    client: TokenEndpointClient,
    auth: ClientAuthentication,
    tokens: RefreshTokens,
}

const NAME: &str = "RefreshToken";

impl RefreshTokenCredential {
    /// A builder.
    pub fn builder() -> RefreshTokenCredentialBuilder {
        RefreshTokenCredentialBuilder::default()
    }
}

impl IdentityProvider for RefreshTokenCredential {
    fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
        Box::pin(async move {
            let token = self
                .tokens
                .current()
                .ok_or_else(|| Error::authentication_failed(NAME, "no refresh token is held"))?;
            let response = self.tokens.redeem(&self.client, &self.auth, &token).await?;
            Ok(response.into())
        })
    }

    fn name(&self) -> &str {
        NAME
    }
}

/// Builds a [`RefreshTokenCredential`]. Required: the refresh token. Defaults: tenant `organizations`, the Azure
/// CLI's public client id, the Redis scope.
#[derive(Debug, Default)]
pub struct RefreshTokenCredentialBuilder {
    common: CommonBuilder,
    refresh_token: Option<Secret>,
    secret: Option<Secret>,
}

impl RefreshTokenCredentialBuilder {
    common_builder_methods!(user);

    /// The refresh token. Required.
    pub fn refresh_token(mut self, token: Secret) -> Self {
        self.refresh_token = Some(token);
        self
    }

    /// A client secret, for a confidential client. Default: none (a public client).
    pub fn client_secret(mut self, secret: Secret) -> Self {
        self.secret = Some(secret);
        self
    }

    /// Builds the credential, checking every setting.
    pub fn build(self) -> Result<RefreshTokenCredential, Error> {
        let token = self
            .refresh_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::configuration(format!("{NAME}: the refresh token is empty")))?;
        let auth = match self.secret {
            Some(secret) if secret.is_empty() => {
                return Err(Error::configuration(format!(
                    "{NAME}: the client secret is empty"
                )));
            }
            Some(secret) => ClientAuthentication::Secret(secret),
            None => ClientAuthentication::None,
        };
        Ok(RefreshTokenCredential {
            client: self.common.build_for(NAME, ClientProfile::PublicUser)?,
            auth,
            tokens: RefreshTokens::new(token),
        })
    }
}
