//! The confidential-client request every client-credentials flow shares (secret, certificate, federated
//! assertion), and the builder settings they have in common.

use entraid_core::{Error, REDIS_SCOPE, Secret, TokenResponse};
use reqwest::Url;

use crate::authority::{Authority, AuthorityHost};
use crate::env::Env;
use crate::form::Form;
use crate::http::{HttpClient, Request};

/// The `client_assertion_type` of a JWT client assertion.
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How the client proves who it is.
pub(crate) enum ClientAuth<'a> {
    /// `client_secret`.
    Secret(&'a Secret),
    /// `client_assertion` (a signed JWT or a federated token).
    Assertion(&'a Secret),
    /// No client authentication (a public client), for the password grant.
    #[cfg_attr(not(feature = "environment"), allow(dead_code))]
    None,
}

/// The grant asked for.
pub(crate) enum Grant<'a> {
    /// `client_credentials`.
    ClientCredentials,
    /// `password` (ROPC, deprecated; only the environment credential uses it).
    #[cfg_attr(not(feature = "environment"), allow(dead_code))]
    Password {
        username: &'a str,
        password: &'a Secret,
    },
}

/// A confidential client of one authority, asking for one scope.
#[derive(Debug, Clone)]
pub(crate) struct ConfidentialClient {
    credential: &'static str,
    http: HttpClient,
    #[cfg_attr(not(test), allow(dead_code))] // shown by Debug
    authority: Authority,
    token_endpoint: Url,
    client_id: String,
    scope: String,
}

impl ConfidentialClient {
    /// The token endpoint (the `aud` of client assertions).
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

    /// The scope.
    #[cfg(test)]
    pub(crate) fn scope(&self) -> &str {
        &self.scope
    }

    /// Runs the client-credentials grant.
    pub(crate) async fn request(&self, auth: ClientAuth<'_>) -> Result<TokenResponse, Error> {
        self.request_grant(Grant::ClientCredentials, auth).await
    }

    /// Runs a grant.
    pub(crate) async fn request_grant(
        &self,
        grant: Grant<'_>,
        auth: ClientAuth<'_>,
    ) -> Result<TokenResponse, Error> {
        let form = match grant {
            Grant::ClientCredentials => Form::new().field("grant_type", "client_credentials"),
            Grant::Password { username, password } => Form::new()
                .field("grant_type", "password")
                .field("username", username)
                .secret("password", password),
        };
        let form = form.field("client_id", &self.client_id);
        let form = match auth {
            ClientAuth::Secret(secret) => form.secret("client_secret", secret),
            ClientAuth::Assertion(assertion) => form
                .field("client_assertion_type", JWT_BEARER)
                .secret("client_assertion", assertion),
            ClientAuth::None => form,
        };
        let form = form.field("scope", &self.scope);
        let request = Request::post_form(self.credential, self.token_endpoint.clone(), form)
            .header("x-client-sku", "entraid-identity")?
            .header("x-client-ver", env!("CARGO_PKG_VERSION"))?;
        self.http
            .send(request)
            .await?
            .token_response(self.credential)
    }
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
    pub(crate) env: Option<Env>,
}

impl CommonBuilder {
    /// The environment to read (`AZURE_AUTHORITY_HOST`, ...): the one given, else the process environment.
    pub(crate) fn env(&self) -> Env {
        self.env.clone().unwrap_or_default()
    }

    /// Builds the client, checking every setting.
    pub(crate) fn build(self, credential: &'static str) -> Result<ConfidentialClient, Error> {
        let env = self.env();
        let authority = match (self.authority, self.tenant_id) {
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
        authority.require_real_tenant(credential)?;
        let client_id = self.client_id.unwrap_or_default();
        check_client_id(credential, &client_id)?;
        let scope = self.scope.unwrap_or_else(|| REDIS_SCOPE.to_owned());
        check_default_scope(credential, &scope)?;
        let http = match self.http {
            Some(http) => http,
            None => HttpClient::shared_default()?,
        };
        Ok(ConfidentialClient {
            credential,
            http,
            token_endpoint: authority.token_endpoint(),
            authority,
            client_id,
            scope,
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

/// Builder methods shared by every confidential-client credential's builder (a `common: CommonBuilder` field).
macro_rules! common_builder_methods {
    () => {
        /// The tenant (directory) id or domain. Required unless [`authority`](Self::authority) is set; `common`,
        /// `organizations` and `consumers` are refused.
        pub fn tenant_id(mut self, tenant_id: impl Into<String>) -> Self {
            self.common.tenant_id = Some(tenant_id.into());
            self
        }

        /// The application (client) id. Required.
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

        /// The scope to ask for. Default `https://redis.azure.com/.default`; it must end in `/.default`.
        pub fn scope(mut self, scope: impl Into<String>) -> Self {
            self.common.scope = Some(scope.into());
            self
        }

        /// The HTTP client. Default: [`HttpClient::shared_default`]($crate::HttpClient::shared_default).
        pub fn http_client(mut self, http: $crate::HttpClient) -> Self {
            self.common.http = Some(http);
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
