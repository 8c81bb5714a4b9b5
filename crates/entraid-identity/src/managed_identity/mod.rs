//! [`ManagedIdentityCredential`]: managed identity on every Azure host, found from the environment as MSAL does.
//!
//! Detection order: Service Fabric (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER` + `IDENTITY_SERVER_THUMBPRINT`),
//! App Service / Functions (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`), Azure ML (`MSI_ENDPOINT` + `MSI_SECRET`),
//! Cloud Shell (`MSI_ENDPOINT`), Azure Arc (`IDENTITY_ENDPOINT` + `IMDS_ENDPOINT`, or the `himds` agent on disk),
//! else IMDS. The resource is the scope without `/.default`.
//!
//! User-assigned identities are chosen by client id, object id or resource id, with each host's parameter name.
//! IMDS requests are retried as [`ImdsRetryPolicy`] says.

mod arc;
mod builder;
mod imds;
mod retry;
mod service_fabric;

use std::fmt;
use std::path::PathBuf;

use entraid_core::{BoxFuture, Error, IdentityProvider, IdentityProviderResponse, Secret};
use reqwest::Url;

use crate::form::Form;
use crate::http::{HttpClient, Request, Response, is_connect_error};

#[cfg(not(any(test, fuzzing)))]
use arc::check_arc_echo;
#[cfg(any(test, fuzzing))]
pub(crate) use arc::{arc_key_path, check_arc_echo};
pub use builder::ManagedIdentityCredentialBuilder;
use imds::host_of;
pub use retry::ImdsRetryPolicy;

const NAME: &str = "ManagedIdentity";

/// The IMDS token endpoint.
pub const IMDS_ENDPOINT: &str = "http://169.254.169.254/metadata/identity/oauth2/token";

/// The Azure Arc agent's default token endpoint.
pub const ARC_DEFAULT_ENDPOINT: &str = "http://127.0.0.1:40342/metadata/identity/oauth2/token";

/// The only folder the Azure Arc agent's key files may be in (Linux).
pub const ARC_TOKENS_DIR: &str = "/var/opt/azcmagent/tokens";

/// The Azure Arc agent's executable; its presence means Azure Arc.
pub const ARC_HIMDS_PATH: &str = "/opt/azcmagent/bin/himds";

/// The largest Azure Arc key file read: 4096 bytes.
pub const ARC_MAX_KEY_BYTES: u64 = 4096;

/// A user-assigned managed identity.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserAssignedId {
    /// By its client (application) id.
    ClientId(String),
    /// By its object (principal) id.
    ObjectId(String),
    /// By its Azure resource id (`/subscriptions/.../userAssignedIdentities/name`).
    ResourceId(String),
}

impl UserAssignedId {
    fn value(&self) -> &str {
        match self {
            Self::ClientId(v) | Self::ObjectId(v) | Self::ResourceId(v) => v,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::ClientId(_) => "client id",
            Self::ObjectId(_) => "object id",
            Self::ResourceId(_) => "resource id",
        }
    }
}

/// The managed-identity host a credential talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ManagedIdentitySource {
    /// The Instance Metadata Service (VMs, scale sets, AKS nodes, Container Instances, ...).
    Imds,
    /// App Service, Functions, Container Apps.
    AppService,
    /// Azure Arc-enabled servers.
    AzureArc,
    /// Azure Cloud Shell.
    CloudShell,
    /// Azure Machine Learning.
    AzureMl,
    /// Service Fabric.
    ServiceFabric,
}

/// Where and how to ask for tokens.
enum Source {
    Imds {
        endpoint: Url,
    },
    AppService {
        endpoint: Url,
        header: Secret,
    },
    AzureArc {
        endpoint: Url,
        tokens_dir: PathBuf,
    },
    CloudShell {
        endpoint: Url,
    },
    AzureMl {
        endpoint: Url,
        secret: Secret,
        default_client_id: Option<String>,
    },
    ServiceFabric {
        endpoint: Url,
        header: Secret,
        http: HttpClient,
    },
}

impl Source {
    fn kind(&self) -> ManagedIdentitySource {
        match self {
            Self::Imds { .. } => ManagedIdentitySource::Imds,
            Self::AppService { .. } => ManagedIdentitySource::AppService,
            Self::AzureArc { .. } => ManagedIdentitySource::AzureArc,
            Self::CloudShell { .. } => ManagedIdentitySource::CloudShell,
            Self::AzureMl { .. } => ManagedIdentitySource::AzureMl,
            Self::ServiceFabric { .. } => ManagedIdentitySource::ServiceFabric,
        }
    }

    fn endpoint(&self) -> &Url {
        match self {
            Self::Imds { endpoint }
            | Self::AppService { endpoint, .. }
            | Self::AzureArc { endpoint, .. }
            | Self::CloudShell { endpoint }
            | Self::AzureMl { endpoint, .. }
            | Self::ServiceFabric { endpoint, .. } => endpoint,
        }
    }
}

/// A managed identity.
///
/// ```
/// use entraid_identity::{Env, ManagedIdentityCredential, ManagedIdentitySource, UserAssignedId};
///
/// // On App Service the platform sets IDENTITY_ENDPOINT and IDENTITY_HEADER.
/// let env = Env::from_map([
///     ("IDENTITY_ENDPOINT", "http://127.0.0.1:41741/msi/token"),
///     ("IDENTITY_HEADER", "platform-secret"),
/// ]);
/// let credential = ManagedIdentityCredential::builder()
///     .user_assigned(UserAssignedId::ClientId("00000000-0000-0000-0000-000000000002".into()))
///     .env(env)
///     .build()
///     .unwrap();
/// assert_eq!(credential.source(), ManagedIdentitySource::AppService);
/// assert!(!format!("{credential:?}").contains("platform-secret"));
/// ```
pub struct ManagedIdentityCredential {
    source: Source,
    resource: String,
    id: Option<UserAssignedId>,
    http: HttpClient,
    retry: ImdsRetryPolicy,
    probe: Option<std::time::Duration>,
    probed: std::sync::atomic::AtomicBool,
}

impl fmt::Debug for ManagedIdentityCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagedIdentityCredential")
            .field("source", &self.source.kind())
            .field("endpoint", &self.source.endpoint().as_str())
            .field("resource", &self.resource)
            .field("user_assigned", &self.id)
            .field("imds_probe", &self.probe)
            .finish_non_exhaustive()
    }
}

impl ManagedIdentityCredential {
    /// A builder.
    pub fn builder() -> ManagedIdentityCredentialBuilder {
        ManagedIdentityCredentialBuilder::default()
    }

    /// A system-assigned identity on whatever host the process environment says, for the Redis scope.
    pub fn system_assigned() -> Result<Self, Error> {
        Self::builder().build()
    }

    /// The host this credential talks to.
    pub fn source(&self) -> ManagedIdentitySource {
        self.source.kind()
    }

    /// The resource tokens are asked for.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    fn url(&self, api_version: &str, selector_names: Option<[&str; 3]>) -> Url {
        let mut url = self.source.endpoint().clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("api-version", api_version)
                .append_pair("resource", &self.resource);
            if let (Some(names), Some(id)) = (selector_names, &self.id) {
                let name = match id {
                    UserAssignedId::ClientId(_) => names[0],
                    UserAssignedId::ObjectId(_) => names[1],
                    UserAssignedId::ResourceId(_) => names[2],
                };
                query.append_pair(name, id.value());
            }
        }
        url
    }

    async fn fetch(&self) -> Result<Response, Error> {
        match &self.source {
            Source::Imds { .. } => {
                let url = self.url("2018-02-01", Some(["client_id", "object_id", "msi_res_id"]));
                let mut first = true;
                retry::send_with_retries(&self.retry, || {
                    let request = Request::get(NAME, url.clone()).header("metadata", "true");
                    let was_first = std::mem::replace(&mut first, false);
                    let url = &url;
                    async move {
                        match self.http.send(request?).await {
                            Err(e) if was_first && is_connect_error(&e) => Err(Error::unavailable(
                                NAME,
                                format!(
                                    "no managed identity endpoint answered at {} (IMDS); this does not look like \
                                     an Azure host with a managed identity: {e}",
                                    host_of(url)
                                ),
                            )),
                            other => other,
                        }
                    }
                })
                .await
            }
            Source::AppService { header, .. } => {
                let url = self.url("2019-08-01", Some(["client_id", "object_id", "mi_res_id"]));
                let request = Request::get(NAME, url).secret_header("x-identity-header", header)?;
                self.http.send(request).await
            }
            Source::AzureArc { tokens_dir, .. } => self.fetch_arc(tokens_dir).await,
            Source::CloudShell { endpoint } => {
                let form = Form::new().field("resource", &self.resource);
                let request =
                    Request::post_form(NAME, endpoint.clone(), form).header("metadata", "true")?;
                self.http.send(request).await
            }
            Source::AzureMl {
                endpoint,
                secret,
                default_client_id,
            } => {
                let mut url = endpoint.clone();
                {
                    let mut query = url.query_pairs_mut();
                    query
                        .append_pair("api-version", "2017-09-01")
                        .append_pair("resource", &self.resource);
                    let client_id = match &self.id {
                        Some(UserAssignedId::ClientId(id)) => Some(id.as_str()),
                        _ => default_client_id.as_deref(),
                    };
                    if let Some(id) = client_id {
                        query.append_pair("clientid", id);
                    }
                }
                let request = Request::get(NAME, url).secret_header("secret", secret)?;
                self.http.send(request).await
            }
            Source::ServiceFabric { header, http, .. } => {
                let url = self.url("2019-07-01-preview", None);
                let request = Request::get(NAME, url)
                    .secret_header("secret", header)?
                    .header("accept", "application/json")?;
                http.send(request).await
            }
        }
    }
}

impl IdentityProvider for ManagedIdentityCredential {
    fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
        Box::pin(async move {
            let response = match self.probe().await? {
                Some(response) => response,
                None => self.fetch().await?,
            };
            if response.is_success()
                && let (ManagedIdentitySource::AzureArc, Some(id)) = (self.source(), &self.id)
            {
                check_arc_echo(&response.body, id)?;
            }
            Ok(response.token_response(NAME)?.into())
        })
    }

    fn name(&self) -> &str {
        NAME
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::Env;

    fn http() -> HttpClient {
        HttpClient::new(crate::HttpOptions::new().native_roots(false)).unwrap()
    }

    fn build(
        vars: &[(&str, &str)],
        id: Option<UserAssignedId>,
    ) -> Result<ManagedIdentityCredential, Error> {
        let mut b = ManagedIdentityCredential::builder()
            .env(Env::from_map(vars.iter().copied()))
            .http_client(http())
            .arc_himds_path("/nonexistent/himds");
        if let Some(id) = id {
            b = b.user_assigned(id);
        }
        b.build()
    }

    #[test]
    fn detects_every_host_in_order() {
        let thumb = "AB".repeat(20);
        let cases: Vec<(Vec<(&str, &str)>, ManagedIdentitySource)> = vec![
            (vec![], ManagedIdentitySource::Imds),
            (
                vec![
                    (
                        "IDENTITY_ENDPOINT",
                        "https://localhost:2377/metadata/identity/oauth2/token",
                    ),
                    ("IDENTITY_HEADER", "h"),
                    ("IDENTITY_SERVER_THUMBPRINT", &thumb),
                ],
                ManagedIdentitySource::ServiceFabric,
            ),
            (
                vec![
                    ("IDENTITY_ENDPOINT", "http://localhost:4141/msi/token"),
                    ("IDENTITY_HEADER", "h"),
                ],
                ManagedIdentitySource::AppService,
            ),
            (
                vec![
                    ("MSI_ENDPOINT", "http://127.0.0.1:1/msi"),
                    ("MSI_SECRET", "s"),
                ],
                ManagedIdentitySource::AzureMl,
            ),
            (
                vec![("MSI_ENDPOINT", "http://localhost:50342/oauth2/token")],
                ManagedIdentitySource::CloudShell,
            ),
            (
                vec![
                    (
                        "IDENTITY_ENDPOINT",
                        "http://localhost:40342/metadata/identity/oauth2/token",
                    ),
                    ("IMDS_ENDPOINT", "http://localhost:40342"),
                ],
                ManagedIdentitySource::AzureArc,
            ),
            // IDENTITY_ENDPOINT alone is no host at all: IMDS.
            (
                vec![("IDENTITY_ENDPOINT", "http://localhost:1/x")],
                ManagedIdentitySource::Imds,
            ),
        ];
        for (vars, expected) in cases {
            let credential = build(&vars, None).unwrap();
            assert_eq!(credential.source(), expected, "{vars:?}");
            assert_eq!(credential.resource(), "https://redis.azure.com");
        }
        // The himds agent on disk means Arc, at the default endpoint.
        let dir = std::env::temp_dir().join(format!("entraid-himds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let himds = dir.join("himds");
        std::fs::write(&himds, b"").unwrap();
        let credential = ManagedIdentityCredential::builder()
            .env(Env::from_map::<&str, &str>([]))
            .http_client(http())
            .arc_himds_path(&himds)
            .build()
            .unwrap();
        assert_eq!(credential.source(), ManagedIdentitySource::AzureArc);
        assert_eq!(credential.source.endpoint().as_str(), ARC_DEFAULT_ENDPOINT);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn builds_each_hosts_url_with_its_parameter_names() {
        let id = |n: u8| match n {
            0 => UserAssignedId::ClientId("cid".into()),
            1 => UserAssignedId::ObjectId("oid".into()),
            _ => UserAssignedId::ResourceId("/sub/rid".into()),
        };
        let imds: Vec<String> = (0..3)
            .map(|n| {
                build(&[], Some(id(n)))
                    .unwrap()
                    .url("2018-02-01", Some(["client_id", "object_id", "msi_res_id"]))
                    .to_string()
            })
            .collect();
        assert_eq!(
            imds[0],
            "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fredis.azure.com&client_id=cid"
        );
        assert!(imds[1].ends_with("&object_id=oid"));
        assert!(imds[2].ends_with("&msi_res_id=%2Fsub%2Frid"));
        let env = [("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://10.0.0.9:8080/")];
        assert_eq!(
            build(&env, None).unwrap().source.endpoint().as_str(),
            "http://10.0.0.9:8080/metadata/identity/oauth2/token"
        );
    }

    #[test]
    fn refuses_what_a_host_cannot_do() {
        let shell = [("MSI_ENDPOINT", "http://localhost:50342/oauth2/token")];
        let err = build(&shell, Some(UserAssignedId::ClientId("c".into()))).unwrap_err();
        assert!(err.to_string().contains("Cloud Shell"), "{err}");
        let ml = [
            ("MSI_ENDPOINT", "http://127.0.0.1:1/msi"),
            ("MSI_SECRET", "s"),
        ];
        assert!(build(&ml, Some(UserAssignedId::ClientId("c".into()))).is_ok());
        let err = build(&ml, Some(UserAssignedId::ObjectId("o".into()))).unwrap_err();
        assert!(err.to_string().contains("client id only"), "{err}");
        let bad_thumb = [
            ("IDENTITY_ENDPOINT", "https://localhost:2377/"),
            ("IDENTITY_HEADER", "h"),
            ("IDENTITY_SERVER_THUMBPRINT", "xyz"),
        ];
        assert!(
            build(&bad_thumb, None)
                .unwrap_err()
                .to_string()
                .contains("40 hex")
        );
        let bad_url = [("MSI_ENDPOINT", "not a url")];
        assert!(
            build(&bad_url, None)
                .unwrap_err()
                .to_string()
                .contains("MSI_ENDPOINT")
        );
        let err = ManagedIdentityCredential::builder()
            .env(Env::from_map::<&str, &str>([]))
            .http_client(http())
            .scope("a/.default b/.default")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("exactly one scope"), "{err}");
        let err = build(&[], Some(UserAssignedId::ClientId(String::new()))).unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
    }
}
