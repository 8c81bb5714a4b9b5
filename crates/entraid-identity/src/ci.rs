//! CI federation: [`GitHubActionsCredential`] and [`AzurePipelinesCredential`] fetch the CI system's OIDC token
//! (a fresh one for each token request) and send it to Entra ID as the client assertion of the client-credentials
//! grant, for an app with a federated identity credential that trusts that CI issuer and subject.
//!
//! - GitHub Actions: `GET $ACTIONS_ID_TOKEN_REQUEST_URL` with `audience=api://AzureADTokenExchange` added to its
//!   query, `Authorization: Bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN`; the answer is `{"count":..,"value":"<jwt>"}`.
//!   The workflow needs `permissions: id-token: write`.
//! - Azure Pipelines: `POST $SYSTEM_OIDCREQUESTURI?api-version=7.1&serviceConnectionId=<id>` with an empty body,
//!   `Authorization: Bearer <System.AccessToken>` and `X-TFS-FedAuthRedirect: Suppress`; the answer is
//!   `{"oidcToken":".."}`.
//!
//! Any other OIDC issuer (the seeds' generic `oidc`) works with
//! [`ClientAssertionCredential`](crate::ClientAssertionCredential), from a file or a callback.

use std::fmt;

use entraid_core::{BoxFuture, Error, IdentityProvider, IdentityProviderResponse, Secret};
use reqwest::Url;

use crate::authority::checked_url_with_query;
use crate::env::Env;
use crate::federated::{
    ClientAssertionCredential, ClientAssertionCredentialBuilder, FetchAssertion, delegate_provider,
};
use crate::http::{HttpClient, Request, Response};
use crate::token_endpoint::{CommonBuilder, common_builder_methods};

/// The audience of federated tokens for Entra ID.
const FEDERATED_AUDIENCE: &str = "api://AzureADTokenExchange";

/// Reads a JSON string field of a CI system's answer, or explains what is wrong (never quoting the body).
fn token_field(
    credential: &'static str,
    response: Response,
    field: &str,
    hint: &str,
) -> Result<Secret, Error> {
    if !response.is_success() {
        let status = response.status;
        let message = serde_json::from_slice::<serde_json::Value>(&response.body)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned));
        let detail = message.map(|m| format!(": {m}")).unwrap_or_default();
        return Err(if matches!(status, 401 | 403) {
            Error::AuthenticationFailed {
                credential: credential.into(),
                message: format!("the OIDC token request was refused{detail}; {hint}"),
                status: Some(status),
                entra: None,
            }
        } else {
            Error::from_http_status(credential, status, response.retry_after(), &response.body)
        });
    }
    serde_json::from_slice::<serde_json::Value>(&response.body)
        .ok()
        .and_then(|v| v.get(field).and_then(|t| t.as_str()).map(Secret::from))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Error::invalid_response(format!(
                "{credential}: the OIDC token answer has no string `{field}`"
            ))
        })
}

/// A CI system's OIDC token endpoint: GitHub (`GET`, answer field `value`) or Azure Pipelines (`POST` with an
/// empty body and `X-TFS-FedAuthRedirect: Suppress`, answer field `oidcToken`), with its bearer token.
struct OidcEndpoint {
    credential: &'static str,
    url: Url,
    token: Secret,
    post: bool,
    field: &'static str,
    hint: &'static str,
}

impl fmt::Debug for OidcEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcEndpoint")
            .field("url", &self.url.as_str())
            .field("post", &self.post)
            .finish_non_exhaustive()
    }
}

impl FetchAssertion for OidcEndpoint {
    fn fetch<'a>(&'a self, http: &'a HttpClient) -> BoxFuture<'a, Result<Secret, Error>> {
        Box::pin(async move {
            let request = if self.post {
                Request::post_empty(self.credential, self.url.clone())
                    .header("x-tfs-fedauthredirect", "Suppress")?
            } else {
                Request::get(self.credential, self.url.clone())
            };
            let bearer = Secret::new(format!("Bearer {}", self.token.expose_secret()));
            let request = request
                .header("accept", "application/json")?
                .secret_header("authorization", &bearer)?;
            let response = http.send(request).await?;
            token_field(self.credential, response, self.field, self.hint)
        })
    }
}

/// The variable's value, or the name pushed onto `missing`.
fn required<T>(value: Option<T>, name: &'static str, missing: &mut Vec<&'static str>) -> Option<T> {
    if value.is_none() {
        missing.push(name);
    }
    value
}

/// Resolves tenant and client from the builder, then the environment variables (first set wins). Returns, as
/// missing, the first variable of each that is still unset.
fn ids_from_env(
    common: &mut CommonBuilder,
    env: &Env,
    tenant_vars: &[&'static str],
    client_vars: &[&'static str],
) -> Vec<&'static str> {
    if common.tenant_id.is_none() && common.authority.is_none() {
        common.tenant_id = tenant_vars.iter().find_map(|v| env.get(v));
    }
    if common.client_id.is_none() {
        common.client_id = client_vars.iter().find_map(|v| env.get(v));
    }
    let mut missing = Vec::new();
    if common.tenant_id.is_none() && common.authority.is_none() {
        missing.extend(tenant_vars.first());
    }
    if common.client_id.is_none() {
        missing.extend(client_vars.first());
    }
    missing
}

impl OidcEndpoint {
    /// The endpoint's URL from `var` (or the builder), checked.
    fn checked_url(credential: &'static str, url: &str, var: &str) -> Result<Url, Error> {
        checked_url_with_query(url, var).map_err(|e| crate::token_endpoint::prefixed(credential, e))
    }

    /// The client-assertion credential that fetches its assertion here.
    fn into_credential(self, common: CommonBuilder) -> Result<ClientAssertionCredential, Error> {
        ClientAssertionCredentialBuilder::build_fetching(common, self.credential, Box::new(self))
    }
}

#[cfg(feature = "github-actions")]
pub use github::{GitHubActionsCredential, GitHubActionsCredentialBuilder};

#[cfg(feature = "github-actions")]
mod github {
    //! GitHub Actions.

    use super::*;

    const NAME: &str = "GitHubActions";

    /// A GitHub Actions workflow, federated with an app in Entra ID.
    ///
    /// ```
    /// use entraid_identity::{Env, GitHubActionsCredential};
    ///
    /// // In a workflow with `permissions: id-token: write`, GitHub sets the two ACTIONS_ variables.
    /// let env = Env::from_map([
    ///     ("AZURE_TENANT_ID", "contoso.onmicrosoft.com"),
    ///     ("AZURE_CLIENT_ID", "00000000-0000-0000-0000-000000000005"),
    ///     ("ACTIONS_ID_TOKEN_REQUEST_URL", "https://pipelines.actions.githubusercontent.com/x/idtoken?api-version=2.0"),
    ///     ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "request-token"),
    /// ]);
    /// let credential = GitHubActionsCredential::builder().env(env).build().unwrap();
    /// assert!(!format!("{credential:?}").contains("request-token"));
    /// ```
    #[derive(Debug)]
    pub struct GitHubActionsCredential(ClientAssertionCredential);

    impl GitHubActionsCredential {
        /// A builder.
        pub fn builder() -> GitHubActionsCredentialBuilder {
            GitHubActionsCredentialBuilder::default()
        }
    }

    delegate_provider!(GitHubActionsCredential);

    /// Builds a [`GitHubActionsCredential`]. Defaults: tenant `AZURE_TENANT_ID`, client `AZURE_CLIENT_ID`, the
    /// OIDC endpoint `ACTIONS_ID_TOKEN_REQUEST_URL` and its bearer token `ACTIONS_ID_TOKEN_REQUEST_TOKEN`, audience
    /// `api://AzureADTokenExchange`. Missing values make `build` return [`Error::CredentialUnavailable`].
    #[derive(Debug, Default)]
    pub struct GitHubActionsCredentialBuilder {
        common: CommonBuilder,
        request_url: Option<String>,
        request_token: Option<Secret>,
        audience: Option<String>,
    }

    impl GitHubActionsCredentialBuilder {
        common_builder_methods!();

        /// The OIDC token endpoint. Default: `ACTIONS_ID_TOKEN_REQUEST_URL`.
        pub fn request_url(mut self, url: impl Into<String>) -> Self {
            self.request_url = Some(url.into());
            self
        }

        /// The bearer token of the OIDC token endpoint. Default: `ACTIONS_ID_TOKEN_REQUEST_TOKEN`.
        pub fn request_token(mut self, token: Secret) -> Self {
            self.request_token = Some(token);
            self
        }

        /// The audience asked for. Default `api://AzureADTokenExchange`.
        pub fn audience(mut self, audience: impl Into<String>) -> Self {
            self.audience = Some(audience.into());
            self
        }

        /// Builds the credential.
        pub fn build(mut self) -> Result<GitHubActionsCredential, Error> {
            let env = self.common.env();
            let mut missing = ids_from_env(
                &mut self.common,
                &env,
                &["AZURE_TENANT_ID"],
                &["AZURE_CLIENT_ID"],
            );
            let url = required(
                self.request_url
                    .or_else(|| env.get("ACTIONS_ID_TOKEN_REQUEST_URL")),
                "ACTIONS_ID_TOKEN_REQUEST_URL",
                &mut missing,
            );
            let token = required(
                self.request_token
                    .or_else(|| env.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN").map(Secret::new)),
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
                &mut missing,
            );
            let (Some(url), Some(token)) = (url, token) else {
                return Err(unavailable(&missing));
            };
            if !missing.is_empty() {
                return Err(unavailable(&missing));
            }
            let mut url = OidcEndpoint::checked_url(NAME, &url, "ACTIONS_ID_TOKEN_REQUEST_URL")?;
            url.query_pairs_mut().append_pair(
                "audience",
                self.audience.as_deref().unwrap_or(FEDERATED_AUDIENCE),
            );
            let fetcher = OidcEndpoint {
                credential: NAME,
                url,
                token,
                post: false,
                field: "value",
                hint: "does the workflow have `permissions: id-token: write`?",
            };
            Ok(GitHubActionsCredential(
                fetcher.into_credential(self.common)?,
            ))
        }
    }

    fn unavailable(missing: &[&str]) -> Error {
        Error::unavailable(
            NAME,
            format!(
                "set {} (GitHub sets the ACTIONS_ variables in jobs with `permissions: id-token: write`)",
                missing.join(", ")
            ),
        )
    }
}

#[cfg(feature = "azure-pipelines")]
pub use pipelines::{AzurePipelinesCredential, AzurePipelinesCredentialBuilder};

#[cfg(feature = "azure-pipelines")]
mod pipelines {
    //! Azure Pipelines.

    use super::*;

    const NAME: &str = "AzurePipelines";

    /// An Azure Pipelines job using a service connection with workload identity federation.
    ///
    /// ```
    /// use entraid_identity::{AzurePipelinesCredential, Env};
    ///
    /// let env = Env::from_map([
    ///     ("AZURESUBSCRIPTION_TENANT_ID", "contoso.onmicrosoft.com"),
    ///     ("AZURESUBSCRIPTION_CLIENT_ID", "00000000-0000-0000-0000-000000000006"),
    ///     ("AZURESUBSCRIPTION_SERVICE_CONNECTION_ID", "my-connection-id"),
    ///     ("SYSTEM_OIDCREQUESTURI", "https://dev.azure.com/org/project-id/_apis/distributedtask/hubs/build/plans/plan/jobs/job/oidctoken"),
    ///     ("SYSTEM_ACCESSTOKEN", "system-access-token"),
    /// ]);
    /// let credential = AzurePipelinesCredential::builder().env(env).build().unwrap();
    /// assert!(!format!("{credential:?}").contains("system-access-token"));
    /// ```
    #[derive(Debug)]
    pub struct AzurePipelinesCredential(ClientAssertionCredential);

    impl AzurePipelinesCredential {
        /// A builder.
        pub fn builder() -> AzurePipelinesCredentialBuilder {
            AzurePipelinesCredentialBuilder::default()
        }
    }

    delegate_provider!(AzurePipelinesCredential);

    /// Builds an [`AzurePipelinesCredential`]. Defaults: tenant `AZURESUBSCRIPTION_TENANT_ID` else
    /// `AZURE_TENANT_ID`, client `AZURESUBSCRIPTION_CLIENT_ID` else `AZURE_CLIENT_ID`, service connection
    /// `AZURESUBSCRIPTION_SERVICE_CONNECTION_ID`, the OIDC endpoint `SYSTEM_OIDCREQUESTURI`, the bearer token
    /// `SYSTEM_ACCESSTOKEN`. Missing values make `build` return [`Error::CredentialUnavailable`].
    #[derive(Debug, Default)]
    pub struct AzurePipelinesCredentialBuilder {
        common: CommonBuilder,
        service_connection_id: Option<String>,
        request_uri: Option<String>,
        system_access_token: Option<Secret>,
    }

    impl AzurePipelinesCredentialBuilder {
        common_builder_methods!();

        /// The service connection's id. Default: `AZURESUBSCRIPTION_SERVICE_CONNECTION_ID`.
        pub fn service_connection_id(mut self, id: impl Into<String>) -> Self {
            self.service_connection_id = Some(id.into());
            self
        }

        /// The OIDC token endpoint. Default: `SYSTEM_OIDCREQUESTURI`.
        pub fn request_uri(mut self, uri: impl Into<String>) -> Self {
            self.request_uri = Some(uri.into());
            self
        }

        /// The job's `System.AccessToken`. Default: `SYSTEM_ACCESSTOKEN`.
        pub fn system_access_token(mut self, token: Secret) -> Self {
            self.system_access_token = Some(token);
            self
        }

        /// Builds the credential.
        pub fn build(mut self) -> Result<AzurePipelinesCredential, Error> {
            let env = self.common.env();
            let mut missing = ids_from_env(
                &mut self.common,
                &env,
                &["AZURESUBSCRIPTION_TENANT_ID", "AZURE_TENANT_ID"],
                &["AZURESUBSCRIPTION_CLIENT_ID", "AZURE_CLIENT_ID"],
            );
            let connection = required(
                self.service_connection_id
                    .or_else(|| env.get("AZURESUBSCRIPTION_SERVICE_CONNECTION_ID")),
                "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID",
                &mut missing,
            );
            let uri = required(
                self.request_uri
                    .or_else(|| env.get("SYSTEM_OIDCREQUESTURI")),
                "SYSTEM_OIDCREQUESTURI",
                &mut missing,
            );
            let token = required(
                self.system_access_token
                    .or_else(|| env.get("SYSTEM_ACCESSTOKEN").map(Secret::new)),
                "SYSTEM_ACCESSTOKEN",
                &mut missing,
            );
            let (Some(connection), Some(uri), Some(token)) = (connection, uri, token) else {
                return Err(unavailable(&missing));
            };
            if !missing.is_empty() {
                return Err(unavailable(&missing));
            }
            let mut url = OidcEndpoint::checked_url(NAME, &uri, "SYSTEM_OIDCREQUESTURI")?;
            url.query_pairs_mut()
                .append_pair("api-version", "7.1")
                .append_pair("serviceConnectionId", &connection);
            let fetcher = OidcEndpoint {
                credential: NAME,
                url,
                token,
                post: true,
                field: "oidcToken",
                hint: "check the service connection id and that the task passes System.AccessToken",
            };
            Ok(AzurePipelinesCredential(
                fetcher.into_credential(self.common)?,
            ))
        }
    }

    fn unavailable(missing: &[&str]) -> Error {
        Error::unavailable(
            NAME,
            format!(
                "set {} (a pipeline task with a workload identity federation service connection sets them; \
                 map SYSTEM_ACCESSTOKEN from $(System.AccessToken))",
                missing.join(", ")
            ),
        )
    }
}
