//! The token-endpoint client every flow that talks to Entra ID's token endpoint shares: client credentials
//! (secret, certificate, federated assertion), the user flows (password, device code, authorization code, refresh
//! token) and on-behalf-of; the grants they send; and the builder settings they have in common.

use entraid_core::{Error, REDIS_SCOPE, Secret, TokenResponse};
use reqwest::Url;

use crate::authority::{Authority, AuthorityHost};
use crate::env::Env;
use crate::form::Form;
use crate::http::{HttpClient, Request};
#[cfg(feature = "client-certificate")]
use crate::signed_assertion::AssertionSigner;

/// The `client_assertion_type` of a JWT client assertion.
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The device code grant type.
pub(crate) const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The scopes user flows add to the resource scope, as MSAL does: an id token and a refresh token.
pub(crate) const USER_FLOW_SCOPES: &str = "openid profile offline_access";

/// The tenant user flows use when none is given (azidentity's default): any work or school account.
pub(crate) const DEFAULT_USER_TENANT: &str = "organizations";

/// The Azure CLI's public client id: the default client of the user flows (as in azidentity).
pub const AZURE_CLI_CLIENT_ID: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";

/// What one request sends to prove who the client is (borrowed from a [`ClientAuthentication`] for one request).
#[derive(Clone, Copy)]
pub(crate) enum ClientProof<'a> {
    /// `client_secret`.
    Secret(&'a Secret),
    /// `client_assertion` (a signed JWT or a federated token).
    Assertion(&'a Secret),
    /// No client authentication (a public client): the user flows.
    None,
}

/// The grant asked for.
pub(crate) enum Grant<'a> {
    /// `client_credentials`.
    ClientCredentials,
    /// `password` (ROPC, deprecated).
    Password {
        username: &'a str,
        password: &'a Secret,
    },
    /// `urn:ietf:params:oauth:grant-type:device_code` (polling; no scope is sent).
    DeviceCode { device_code: &'a Secret },
    /// `authorization_code` with its PKCE verifier.
    AuthorizationCode {
        code: &'a Secret,
        verifier: &'a Secret,
        redirect_uri: &'a str,
    },
    /// `refresh_token`.
    RefreshToken { refresh_token: &'a Secret },
    /// On-behalf-of: `urn:ietf:params:oauth:grant-type:jwt-bearer` with the incoming user token.
    OnBehalfOf { assertion: &'a Secret },
}

/// A client of one authority's token endpoint, asking for one scope: confidential (client credentials,
/// on-behalf-of) or public (the user flows), as its [`ClientProfile`] said when it was built.
#[derive(Debug, Clone)]
pub(crate) struct TokenEndpointClient {
    credential: &'static str,
    http: HttpClient,
    authority: Authority,
    token_endpoint: Url,
    client_id: String,
    scope: String,
    #[cfg(feature = "oidc-discovery")]
    discovery: Option<crate::discovery::OidcDiscovery>,
}

impl TokenEndpointClient {
    /// The authority's token endpoint.
    #[cfg(test)]
    pub(crate) fn token_endpoint(&self) -> &Url {
        &self.token_endpoint
    }

    /// The client (application) id.
    pub(crate) fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The authority.
    #[cfg(test)]
    pub(crate) fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The scope, as sent (user flows add [`USER_FLOW_SCOPES`]).
    pub(crate) fn scope(&self) -> &str {
        &self.scope
    }

    /// The HTTP client.
    pub(crate) fn http(&self) -> &HttpClient {
        &self.http
    }

    /// The credential's name (for errors and logs).
    pub(crate) fn credential(&self) -> &'static str {
        self.credential
    }

    /// The discovered configuration, when this client uses discovery.
    #[cfg(feature = "oidc-discovery")]
    async fn discovered(
        &self,
    ) -> Result<Option<std::sync::Arc<crate::discovery::OpenIdConfiguration>>, Error> {
        match &self.discovery {
            Some(discovery) => Ok(Some(discovery.get(&self.http, &self.authority).await?)),
            None => Ok(None),
        }
    }

    /// The token endpoint requests go to: discovered, or the authority's.
    pub(crate) async fn resolved_token_endpoint(&self) -> Result<Url, Error> {
        #[cfg(feature = "oidc-discovery")]
        if let Some(configuration) = self.discovered().await? {
            return Ok(configuration.token_endpoint.clone());
        }
        Ok(self.token_endpoint.clone())
    }

    /// The device authorization endpoint: discovered, or the authority's.
    #[cfg(feature = "oidc-discovery")]
    pub(crate) async fn device_code_endpoint(&self) -> Result<Url, Error> {
        if let Some(configuration) = self.discovered().await? {
            return configuration
                .device_authorization_endpoint
                .clone()
                .ok_or_else(|| {
                    Error::configuration(format!(
                        "{}: the authority's discovery document names no device_authorization_endpoint",
                        self.credential
                    ))
                });
        }
        Ok(self.authority.device_code_endpoint())
    }

    /// The authorization endpoint: discovered, or the authority's.
    #[cfg(feature = "oidc-discovery")]
    pub(crate) async fn authorize_endpoint(&self) -> Result<Url, Error> {
        if let Some(configuration) = self.discovered().await? {
            return configuration.authorization_endpoint.clone().ok_or_else(|| {
                Error::configuration(format!(
                    "{}: the authority's discovery document names no authorization_endpoint",
                    self.credential
                ))
            });
        }
        Ok(self.authority.authorize_endpoint())
    }

    /// Runs the client-credentials grant.
    pub(crate) async fn request(&self, auth: ClientProof<'_>) -> Result<TokenResponse, Error> {
        self.request_grant(Grant::ClientCredentials, auth).await
    }

    /// Runs a grant with a signed client assertion. A refused reused assertion (an identity provider that enforces
    /// unique `jti`s) is replaced by a freshly signed one, tried once; `grant` is called again for it.
    #[cfg(feature = "client-certificate")]
    pub(crate) async fn request_signed<'g>(
        &self,
        signer: &AssertionSigner,
        grant: impl Fn() -> Grant<'g>,
    ) -> Result<TokenResponse, Error> {
        let audience = self.resolved_token_endpoint().await?;
        let (assertion, reused) = signer.assertion(audience.as_str(), &self.client_id)?;
        match self
            .request_grant(grant(), ClientProof::Assertion(&assertion))
            .await
        {
            Err(Error::AuthenticationFailed { .. }) if reused => {
                tracing::debug!("a reused client assertion was refused; signing a new one");
                signer.forget();
                let (fresh, _) = signer.assertion(audience.as_str(), &self.client_id)?;
                self.request_grant(grant(), ClientProof::Assertion(&fresh))
                    .await
            }
            other => other,
        }
    }

    /// Runs a grant.
    pub(crate) async fn request_grant(
        &self,
        grant: Grant<'_>,
        auth: ClientProof<'_>,
    ) -> Result<TokenResponse, Error> {
        let mut send_scope = true;
        let form = match grant {
            Grant::ClientCredentials => Form::new().field("grant_type", "client_credentials"),
            Grant::Password { username, password } => Form::new()
                .field("grant_type", "password")
                .field("username", username)
                .secret("password", password),
            Grant::DeviceCode { device_code } => {
                send_scope = false;
                Form::new()
                    .field("grant_type", DEVICE_CODE_GRANT)
                    .secret("device_code", device_code)
            }
            Grant::AuthorizationCode {
                code,
                verifier,
                redirect_uri,
            } => Form::new()
                .field("grant_type", "authorization_code")
                .secret("code", code)
                .field("redirect_uri", redirect_uri)
                .secret("code_verifier", verifier),
            Grant::RefreshToken { refresh_token } => Form::new()
                .field("grant_type", "refresh_token")
                .secret("refresh_token", refresh_token),
            Grant::OnBehalfOf { assertion } => Form::new()
                .field("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
                .secret("assertion", assertion)
                .field("requested_token_use", "on_behalf_of"),
        };
        let form = form.field("client_id", &self.client_id);
        let form = match auth {
            ClientProof::Secret(secret) => form.secret("client_secret", secret),
            ClientProof::Assertion(assertion) => form
                .field("client_assertion_type", JWT_BEARER)
                .secret("client_assertion", assertion),
            ClientProof::None => form,
        };
        let form = if send_scope {
            form.field("scope", &self.scope)
        } else {
            form
        };
        let endpoint = self.resolved_token_endpoint().await?;
        let request = Request::post_form(self.credential, endpoint, form)
            .header("x-client-sku", "entraid-identity")?
            .header("x-client-ver", env!("CARGO_PKG_VERSION"))?;
        self.http
            .send(request)
            .await?
            .token_response(self.credential)
    }
}

/// How a client authenticates, owned by its credential: not at all (a public client), with a secret, or with a
/// certificate (each request then gets a [`ClientProof`]).
#[derive(Debug)]
pub(crate) enum ClientAuthentication {
    /// A public client.
    None,
    /// `client_secret`.
    Secret(Secret),
    /// A signed assertion (private_key_jwt).
    #[cfg(feature = "client-certificate")]
    Certificate(AssertionSigner),
}

impl ClientAuthentication {
    /// Runs a grant with this client authentication. `grant` is called again when a reused certificate assertion
    /// is refused and a fresh one is tried.
    pub(crate) async fn request<'g>(
        &self,
        client: &TokenEndpointClient,
        grant: impl Fn() -> Grant<'g>,
    ) -> Result<TokenResponse, Error> {
        match self {
            Self::None => client.request_grant(grant(), ClientProof::None).await,
            Self::Secret(secret) => {
                client
                    .request_grant(grant(), ClientProof::Secret(secret))
                    .await
            }
            #[cfg(feature = "client-certificate")]
            Self::Certificate(signer) => client.request_signed(signer, grant).await,
        }
    }
}

/// Which kind of client a builder makes: what it requires, what it defaults, and which scopes it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientProfile {
    /// Client credentials: a real tenant and a client id are required; one `/.default` scope.
    Confidential,
    /// A confidential client in a user flow (on-behalf-of): a real tenant and a client id are required; one
    /// scope, sent with [`USER_FLOW_SCOPES`].
    ConfidentialUser,
    /// A public client in a user flow: tenant `organizations` and the Azure CLI's client id by default; one scope,
    /// sent with [`USER_FLOW_SCOPES`].
    PublicUser,
}

/// Checks a client-credentials scope: one scope ending in `/.default`.
pub(crate) fn check_default_scope(credential: &str, scope: &str) -> Result<(), Error> {
    if scope.is_empty() || scope.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::configuration(format!(
            "{credential}: the scope must be one non-empty scope without spaces, for example {REDIS_SCOPE}"
        )));
    }
    if !scope.ends_with("/.default") {
        return Err(Error::configuration(format!(
            "{credential}: client credentials need a `<resource>/.default` scope (for Redis: {REDIS_SCOPE}), not `{scope}`"
        )));
    }
    Ok(())
}

/// Checks a user-flow scope: one scope (the flows add the OpenID scopes themselves).
pub(crate) fn check_user_scope(credential: &str, scope: &str) -> Result<(), Error> {
    if scope.is_empty() || scope.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::configuration(format!(
            "{credential}: the scope must be one non-empty scope without spaces, for example {REDIS_SCOPE}"
        )));
    }
    Ok(())
}

/// Checks a client (application) id: non-empty, printable, no whitespace.
pub(crate) fn check_client_id(credential: &str, client_id: &str) -> Result<(), Error> {
    if client_id.is_empty() {
        return Err(Error::configuration(format!(
            "{credential}: the client id is empty; set the application (client) id, for example with AZURE_CLIENT_ID"
        )));
    }
    if client_id
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Error::configuration(format!(
            "{credential}: the client id must not hold spaces or control characters"
        )));
    }
    Ok(())
}

/// Builder settings every confidential-client credential shares.
#[derive(Debug, Clone, Default)]
pub(crate) struct CommonBuilder {
    pub(crate) tenant_id: Option<String>,
    pub(crate) client_id: Option<String>,
    pub(crate) authority: Option<Authority>,
    pub(crate) authority_host: Option<AuthorityHost>,
    pub(crate) scope: Option<String>,
    pub(crate) http: Option<HttpClient>,
    pub(crate) proxy: Option<crate::ProxyOptions>,
    pub(crate) env: Option<Env>,
    #[cfg(feature = "oidc-discovery")]
    pub(crate) discovery: Option<crate::discovery::OidcDiscovery>,
}

impl CommonBuilder {
    /// The environment to read (`AZURE_AUTHORITY_HOST`, ...): the one given, else the process environment.
    pub(crate) fn env(&self) -> Env {
        self.env.clone().unwrap_or_default()
    }

    /// Builds a client-credentials client, checking every setting.
    pub(crate) fn build(self, credential: &'static str) -> Result<TokenEndpointClient, Error> {
        self.build_for(credential, ClientProfile::Confidential)
    }

    /// Builds a client of the given kind, checking every setting.
    pub(crate) fn build_for(
        self,
        credential: &'static str,
        kind: ClientProfile,
    ) -> Result<TokenEndpointClient, Error> {
        let env = self.env();
        let tenant = match kind {
            ClientProfile::PublicUser => self
                .tenant_id
                .or_else(|| Some(DEFAULT_USER_TENANT.to_owned())),
            ClientProfile::Confidential | ClientProfile::ConfidentialUser => self.tenant_id,
        };
        let authority = match (self.authority, tenant) {
            (Some(authority), _) => authority,
            (None, Some(tenant)) => Authority::single_tenant(
                AuthorityHost::resolve(self.authority_host.as_ref(), &env)?,
                &tenant,
            )
            .map_err(|e| prefixed(credential, e))?,
            (None, None) => {
                return Err(Error::configuration(format!(
                    "{credential}: no tenant; set the tenant (directory) id, for example with AZURE_TENANT_ID"
                )));
            }
        };
        if kind != ClientProfile::PublicUser {
            authority.require_real_tenant(credential)?;
        }
        let client_id = match kind {
            ClientProfile::PublicUser => self
                .client_id
                .unwrap_or_else(|| AZURE_CLI_CLIENT_ID.to_owned()),
            ClientProfile::Confidential | ClientProfile::ConfidentialUser => {
                self.client_id.unwrap_or_default()
            }
        };
        check_client_id(credential, &client_id)?;
        let scope = self.scope.unwrap_or_else(|| REDIS_SCOPE.to_owned());
        let scope = match kind {
            ClientProfile::Confidential => {
                check_default_scope(credential, &scope)?;
                scope
            }
            ClientProfile::ConfidentialUser | ClientProfile::PublicUser => {
                check_user_scope(credential, &scope)?;
                format!("{scope} {USER_FLOW_SCOPES}")
            }
        };
        let http = match (self.http, self.proxy) {
            (Some(http), _) => http,
            (None, Some(proxy)) => HttpClient::for_proxy(proxy)?,
            (None, None) => HttpClient::for_proxy(crate::ProxyOptions::from_env(&env)?)?,
        };
        // User flows discover the endpoints of custom authorities (AD FS, B2C, ...), whose paths may differ.
        #[cfg(feature = "oidc-discovery")]
        let discovery = match (self.discovery, kind) {
            (Some(discovery), _) => Some(discovery),
            (None, ClientProfile::Confidential) => None,
            (None, _) => (authority.kind() == crate::authority::AuthorityKind::Custom)
                .then(crate::discovery::OidcDiscovery::shared),
        };
        Ok(TokenEndpointClient {
            credential,
            http,
            token_endpoint: authority.token_endpoint(),
            authority,
            client_id,
            scope,
            #[cfg(feature = "oidc-discovery")]
            discovery,
        })
    }
}

/// Prefixes a configuration error with the credential's name.
pub(crate) fn prefixed(credential: &str, error: Error) -> Error {
    match error {
        Error::Configuration { message } => {
            Error::configuration(format!("{credential}: {message}"))
        }
        other => other,
    }
}

/// Builder methods shared by every token-endpoint credential's builder (a `common: CommonBuilder` field).
/// `common_builder_methods!()` documents the client-credentials rules; `common_builder_methods!(user)` the user
/// flows' defaults.
macro_rules! common_builder_methods {
    () => {
        $crate::token_endpoint::common_builder_methods!(@
            "The tenant (directory) id or domain. Required unless [`authority`](Self::authority) is set; `common`, \
             `organizations` and `consumers` are refused.",
            "The application (client) id. Required.",
            "The scope to ask for. Default `https://redis.azure.com/.default`; it must end in `/.default`."
        );
    };
    (user) => {
        $crate::token_endpoint::common_builder_methods!(@
            "The tenant (directory) id or domain. Default `organizations` (any work or school account).",
            "The application (client) id of a public client. Default: the Azure CLI's \
             ([`AZURE_CLI_CLIENT_ID`](crate::AZURE_CLI_CLIENT_ID)).",
            "The scope to ask for. Default `https://redis.azure.com/.default`; `openid profile offline_access` \
             are added to it."
        );
        /// OpenID Connect discovery for the authority's endpoints, with this cache. Default: discovery only for
        /// custom authorities ([`Authority::custom`](crate::Authority::custom)), with
        /// [`OidcDiscovery::shared`](crate::OidcDiscovery::shared).
        pub fn oidc_discovery(mut self, discovery: $crate::OidcDiscovery) -> Self {
            self.common.discovery = Some(discovery);
            self
        }
    };
    (@ $tenant:literal, $client:literal, $scope:literal) => {
        #[doc = $tenant]
        pub fn tenant_id(mut self, tenant_id: impl Into<String>) -> Self {
            self.common.tenant_id = Some(tenant_id.into());
            self
        }

        #[doc = $client]
        pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
            self.common.client_id = Some(client_id.into());
            self
        }

        /// A full authority (single-tenant, multi-tenant or custom); overrides the tenant id and host.
        pub fn authority(mut self, authority: $crate::Authority) -> Self {
            self.common.authority = Some(authority);
            self
        }

        /// The cloud. Default: `AZURE_AUTHORITY_HOST`, else the public cloud.
        pub fn authority_host(mut self, host: $crate::AuthorityHost) -> Self {
            self.common.authority_host = Some(host);
            self
        }

        #[doc = $scope]
        pub fn scope(mut self, scope: impl Into<String>) -> Self {
            self.common.scope = Some(scope.into());
            self
        }

        /// The HTTP client. Default: [`HttpClient::shared_default`]($crate::HttpClient::shared_default), or a
        /// client with the proxy of [`proxy`](Self::proxy) or of `HTTPS_PROXY` / `NO_PROXY` in the
        /// [`env`](Self::env).
        pub fn http_client(mut self, http: $crate::HttpClient) -> Self {
            self.common.http = Some(http);
            self
        }

        /// The proxy for the token endpoint. Default: `HTTPS_PROXY` and `NO_PROXY` (or their lower-case forms)
        /// from the [`env`](Self::env); [`ProxyOptions::none`]($crate::ProxyOptions::none) turns that off. Not
        /// used with an [`http_client`](Self::http_client) (give that one its proxy in
        /// [`HttpOptions::proxy`]($crate::HttpOptions::proxy)).
        pub fn proxy(mut self, proxy: $crate::ProxyOptions) -> Self {
            self.common.proxy = Some(proxy);
            self
        }

        /// Where environment variables are read from. Default: the process environment.
        pub fn env(mut self, env: $crate::Env) -> Self {
            self.common.env = Some(env);
            self
        }
    };
}
pub(crate) use common_builder_methods;

#[cfg(test)]
mod tests {
    use super::*;

    fn builder() -> CommonBuilder {
        CommonBuilder {
            tenant_id: Some("contoso".into()),
            client_id: Some("app".into()),
            env: Some(Env::from_map::<&str, &str>([])),
            http: Some(HttpClient::new(crate::HttpOptions::new().native_roots(false)).unwrap()),
            ..CommonBuilder::default()
        }
    }

    #[test]
    fn builds_with_defaults() {
        let client = builder().build("ClientSecret").unwrap();
        assert_eq!(client.scope(), REDIS_SCOPE);
        assert_eq!(client.client_id(), "app");
        assert_eq!(
            client.token_endpoint().as_str(),
            "https://login.microsoftonline.com/contoso/oauth2/v2.0/token"
        );
        assert_eq!(client.authority().tenant().as_str(), "contoso");
    }

    #[test]
    fn honours_authority_host_env_and_overrides() {
        let mut b = builder();
        b.env = Some(Env::from_map([(
            "AZURE_AUTHORITY_HOST",
            "https://login.microsoftonline.us",
        )]));
        assert_eq!(
            b.clone().build("x").unwrap().token_endpoint().as_str(),
            "https://login.microsoftonline.us/contoso/oauth2/v2.0/token"
        );
        b.authority_host = Some(AuthorityHost::China);
        assert_eq!(
            b.clone().build("x").unwrap().token_endpoint().as_str(),
            "https://login.chinacloudapi.cn/contoso/oauth2/v2.0/token"
        );
        b.authority = Some(Authority::custom("https://127.0.0.1:9/other/v2.0").unwrap());
        assert_eq!(
            b.build("x").unwrap().token_endpoint().as_str(),
            "https://127.0.0.1:9/other/oauth2/v2.0/token"
        );
    }

    #[test]
    fn refuses_bad_settings() {
        let cases: Vec<(CommonBuilder, &str)> = vec![
            (
                CommonBuilder {
                    tenant_id: None,
                    ..builder()
                },
                "no tenant",
            ),
            (
                CommonBuilder {
                    tenant_id: Some("organizations".into()),
                    ..builder()
                },
                "cannot be used with client credentials",
            ),
            (
                CommonBuilder {
                    tenant_id: Some("a/b".into()),
                    ..builder()
                },
                "only letters",
            ),
            (
                CommonBuilder {
                    client_id: None,
                    ..builder()
                },
                "client id is empty",
            ),
            (
                CommonBuilder {
                    scope: Some("https://redis.azure.com".into()),
                    ..builder()
                },
                "/.default",
            ),
            (
                CommonBuilder {
                    scope: Some("a/.default b/.default".into()),
                    ..builder()
                },
                "without spaces",
            ),
        ];
        for (b, expected) in cases {
            let err = b.build("ClientSecret").unwrap_err();
            assert!(matches!(err, Error::Configuration { .. }), "{err}");
            let text = err.to_string();
            assert!(
                text.contains(expected) && text.contains("ClientSecret"),
                "{text}"
            );
        }
    }
}
