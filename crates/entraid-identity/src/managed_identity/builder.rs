//! [`ManagedIdentityCredentialBuilder`]: which host the environment says this is (the detection order of the module
//! documentation), and the source built for it.

use std::path::PathBuf;

use entraid_core::{Error, REDIS_SCOPE, Secret};
use reqwest::Url;

use super::service_fabric::pinned_client;
use super::{
    ARC_DEFAULT_ENDPOINT, ARC_HIMDS_PATH, ARC_TOKENS_DIR, IMDS_ENDPOINT, ImdsRetryPolicy,
    ManagedIdentityCredential, NAME, Source, UserAssignedId,
};
use crate::env::Env;
use crate::http::HttpClient;

/// Builds a [`ManagedIdentityCredential`]. Every setting has a default: system-assigned, the Redis scope, the host
/// the process environment says.
#[derive(Debug, Default)]
pub struct ManagedIdentityCredentialBuilder {
    id: Option<UserAssignedId>,
    scope: Option<String>,
    env: Option<Env>,
    http: Option<HttpClient>,
    retry: Option<ImdsRetryPolicy>,
    imds_endpoint: Option<String>,
    arc_tokens_dir: Option<PathBuf>,
    arc_himds_path: Option<PathBuf>,
    probe: Option<std::time::Duration>,
}

impl ManagedIdentityCredentialBuilder {
    /// A user-assigned identity. Default: the system-assigned identity.
    pub fn user_assigned(mut self, id: UserAssignedId) -> Self {
        self.id = Some(id);
        self
    }

    /// The scope. Default `https://redis.azure.com/.default`; the resource asked for is the scope without
    /// `/.default`.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Where environment variables are read from. Default: the process environment.
    pub fn env(mut self, env: Env) -> Self {
        self.env = Some(env);
        self
    }

    /// The HTTP client. Default: [`HttpClient::shared_default`]. Its proxy, if any, is never used: managed identity
    /// endpoints are reached directly ([`HttpClient::without_proxy`]). (Service Fabric uses its own client, pinned
    /// to the server's certificate thumbprint, with this client's timeout.)
    pub fn http_client(mut self, http: HttpClient) -> Self {
        self.http = Some(http);
        self
    }

    /// How IMDS requests are retried. Default [`ImdsRetryPolicy::default`].
    pub fn imds_retry_policy(mut self, policy: ImdsRetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// The IMDS token endpoint. Default: `AZURE_POD_IDENTITY_AUTHORITY_HOST` + `/metadata/identity/oauth2/token`
    /// when that variable is set, else [`IMDS_ENDPOINT`].
    pub fn imds_endpoint(mut self, url: impl Into<String>) -> Self {
        self.imds_endpoint = Some(url.into());
        self
    }

    /// Probes IMDS before the first token request, as the default chain does: one try within `timeout`, without
    /// retries; no answer (or a 400 for a system-assigned identity, or Docker Desktop's 403 "unreachable") is
    /// [`Error::CredentialUnavailable`], so a laptop is not kept waiting. Once IMDS has answered, requests are
    /// retried as usual. Only IMDS is probed; the other hosts are known from their variables. Default: no probe.
    pub fn imds_probe(mut self, timeout: std::time::Duration) -> Self {
        self.probe = Some(timeout);
        self
    }

    /// The only folder Azure Arc key files may come from. Default [`ARC_TOKENS_DIR`].
    pub fn arc_tokens_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.arc_tokens_dir = Some(dir.into());
        self
    }

    /// The file whose presence means Azure Arc. Default [`ARC_HIMDS_PATH`].
    pub fn arc_himds_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.arc_himds_path = Some(path.into());
        self
    }

    /// Detects the host and builds the credential.
    pub fn build(self) -> Result<ManagedIdentityCredential, Error> {
        let env = self.env.unwrap_or_default();
        let scope = self.scope.unwrap_or_else(|| REDIS_SCOPE.to_owned());
        let resource = resource_of(&scope)?;
        if let Some(id) = &self.id
            && (id.value().is_empty() || id.value().chars().any(char::is_control))
        {
            return Err(Error::configuration(format!(
                "{NAME}: the user-assigned {} is empty or has control characters",
                id.kind()
            )));
        }
        // Managed identity endpoints are local to the host: never through a proxy, even a given client's.
        let http = match self.http {
            Some(http) => http.without_proxy(),
            None => HttpClient::shared_default()?,
        };
        let var = |name: &str| env.get(name);
        let endpoint = |name: &str, value: String| -> Result<Url, Error> {
            let url = Url::parse(&value)
                .map_err(|e| Error::configuration(format!("{NAME}: {name} is not a URL ({e})")))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(Error::configuration(format!(
                    "{NAME}: {name} must be an http or https URL"
                )));
            }
            Ok(url)
        };
        let himds = self
            .arc_himds_path
            .unwrap_or_else(|| PathBuf::from(ARC_HIMDS_PATH));
        let source = match (
            var("IDENTITY_ENDPOINT"),
            var("IDENTITY_HEADER"),
            var("IDENTITY_SERVER_THUMBPRINT"),
            var("MSI_ENDPOINT"),
            var("MSI_SECRET"),
        ) {
            (Some(ep), Some(header), Some(thumbprint), _, _) => {
                let endpoint = endpoint("IDENTITY_ENDPOINT", ep)?;
                Source::ServiceFabric {
                    http: pinned_client(&thumbprint, http.timeout())?,
                    endpoint,
                    header: Secret::new(header),
                }
            }
            (Some(ep), Some(header), None, _, _) => Source::AppService {
                endpoint: endpoint("IDENTITY_ENDPOINT", ep)?,
                header: Secret::new(header),
            },
            (_, _, _, Some(ep), Some(secret)) => Source::AzureMl {
                endpoint: endpoint("MSI_ENDPOINT", ep)?,
                secret: Secret::new(secret),
                default_client_id: var("DEFAULT_IDENTITY_CLIENT_ID"),
            },
            (_, _, _, Some(ep), None) => Source::CloudShell {
                endpoint: endpoint("MSI_ENDPOINT", ep)?,
            },
            (identity_endpoint, _, _, None, _)
                if (identity_endpoint.is_some() && env.has("IMDS_ENDPOINT")) || himds.exists() =>
            {
                Source::AzureArc {
                    endpoint: endpoint(
                        "IDENTITY_ENDPOINT",
                        identity_endpoint.unwrap_or_else(|| ARC_DEFAULT_ENDPOINT.to_owned()),
                    )?,
                    tokens_dir: self
                        .arc_tokens_dir
                        .unwrap_or_else(|| PathBuf::from(ARC_TOKENS_DIR)),
                }
            }
            _ => {
                let url = match (self.imds_endpoint, var("AZURE_POD_IDENTITY_AUTHORITY_HOST")) {
                    (Some(url), _) => url,
                    (None, Some(host)) => format!(
                        "{}/metadata/identity/oauth2/token",
                        host.trim_end_matches('/')
                    ),
                    (None, None) => IMDS_ENDPOINT.to_owned(),
                };
                Source::Imds {
                    endpoint: endpoint("the IMDS endpoint", url)?,
                }
            }
        };
        match (&source, &self.id) {
            (Source::CloudShell { .. }, Some(_)) => {
                return Err(Error::configuration(format!(
                    "{NAME}: Cloud Shell supports only its system-assigned identity, not a user-assigned one"
                )));
            }
            (Source::ServiceFabric { .. }, Some(_)) => {
                return Err(Error::configuration(format!(
                    "{NAME}: Service Fabric identities are chosen in the application manifest, not at run time"
                )));
            }
            (
                Source::AzureMl { .. },
                Some(id @ (UserAssignedId::ObjectId(_) | UserAssignedId::ResourceId(_))),
            ) => {
                return Err(Error::configuration(format!(
                    "{NAME}: Azure ML selects user-assigned identities by client id only, not by {}",
                    id.kind()
                )));
            }
            _ => {}
        }
        tracing::debug!(source = ?source.kind(), resource = %resource, "managed identity configured");
        Ok(ManagedIdentityCredential {
            source,
            resource,
            id: self.id,
            http,
            retry: self.retry.unwrap_or_default(),
            probe: self.probe,
            probed: std::sync::atomic::AtomicBool::new(false),
        })
    }
}

/// The resource of a scope: the scope without `/.default`; exactly one scope.
fn resource_of(scope: &str) -> Result<String, Error> {
    let scope = scope.trim();
    if scope.is_empty() || scope.split_whitespace().count() != 1 {
        return Err(Error::configuration(format!(
            "{NAME}: managed identity takes exactly one scope, for example {REDIS_SCOPE}"
        )));
    }
    Ok(scope.strip_suffix("/.default").unwrap_or(scope).to_owned())
}
