//! [`ManagedIdentityCredential`]: managed identity on every Azure host, found from the environment as MSAL does.
//!
//! Detection order: Service Fabric (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER` + `IDENTITY_SERVER_THUMBPRINT`),
//! App Service / Functions (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`), Azure ML (`MSI_ENDPOINT` + `MSI_SECRET`),
//! Cloud Shell (`MSI_ENDPOINT`), Azure Arc (`IDENTITY_ENDPOINT` + `IMDS_ENDPOINT`, or the `himds` agent on disk),
//! else IMDS. The resource is the scope without `/.default`.
//!
//! User-assigned identities are chosen by client id, object id or resource id, with each host's parameter name.
//! IMDS requests are retried as [`ImdsRetryPolicy`] says.

mod retry;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use entraid_core::{
    BoxFuture, Error, IdentityProvider, IdentityProviderResponse, REDIS_SCOPE, Secret,
};
use reqwest::Url;

use crate::env::Env;
use crate::form::Form;
use crate::http::{HttpClient, Request, Response, is_connect_error};

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

    /// The IMDS probe of a default chain: until IMDS has answered once, one try within the probe timeout, no
    /// retries. No answer (connection refused, timeout) is unavailable, and so are a 400 for a system-assigned
    /// identity (this host has none) and a 403 saying "unreachable" (Docker Desktop's network). `Some` is the answer
    /// to use; `None` means "IMDS is there: make the normal request, with retries".
    async fn probe(&self) -> Result<Option<Response>, Error> {
        use std::sync::atomic::Ordering;
        let (Some(timeout), Source::Imds { endpoint }) = (self.probe, &self.source) else {
            return Ok(None);
        };
        if self.probed.load(Ordering::Acquire) {
            return Ok(None);
        }
        let url = self.url("2018-02-01", Some(["client_id", "object_id", "msi_res_id"]));
        let request = Request::get(NAME, url).header("metadata", "true")?;
        let not_here = |why: String| {
            Error::unavailable(
                NAME,
                format!(
                    "{why} at {} (IMDS); this does not look like an Azure host with a managed identity",
                    host_of(endpoint)
                ),
            )
        };
        let response = match tokio::time::timeout(timeout, self.http.send(request)).await {
            Err(_) => {
                return Err(not_here(format!(
                    "no managed identity endpoint answered within {timeout:?}"
                )));
            }
            Ok(Err(e @ (Error::Transport { .. } | Error::Timeout { .. }))) => {
                return Err(not_here(format!(
                    "no managed identity endpoint answered ({e})"
                )));
            }
            Ok(Err(other)) => return Err(other),
            Ok(Ok(response)) => response,
        };
        if response.status == 400 && self.id.is_none() {
            return Err(not_here(
                "IMDS has no system-assigned identity for this host (HTTP 400)".to_owned(),
            ));
        }
        if response.status == 403 && String::from_utf8_lossy(&response.body).contains("unreachable")
        {
            return Err(not_here("IMDS is unreachable (HTTP 403)".to_owned()));
        }
        self.probed.store(true, Ordering::Release);
        if ImdsRetryPolicy::is_retryable_status(response.status) {
            Ok(None)
        } else {
            Ok(Some(response))
        }
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

    /// Azure Arc: a first request answered by a 401 challenge naming a key file, then the request again with the
    /// file's contents as Basic credentials.
    async fn fetch_arc(&self, tokens_dir: &Path) -> Result<Response, Error> {
        let url = self.url("2020-06-01", Some(["client_id", "object_id", "msi_res_id"]));
        let challenge = self
            .http
            .send(Request::get(NAME, url.clone()).header("metadata", "true")?)
            .await?;
        if challenge.status != 401 {
            if challenge.is_success() {
                return Err(Error::authentication_failed(
                    NAME,
                    "Azure Arc answered without the expected 401 challenge",
                ));
            }
            return Ok(challenge);
        }
        let header = challenge
            .headers
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Error::authentication_failed(
                    NAME,
                    "Azure Arc's 401 answer has no WWW-Authenticate header",
                )
            })?;
        let key_path = arc_key_path(header, tokens_dir)?;
        let key = read_arc_key(&key_path)?;
        let request = Request::get(NAME, url)
            .header("metadata", "true")?
            .secret_header(
                "authorization",
                &Secret::new(format!("Basic {}", key.expose_secret())),
            )?;
        self.http.send(request).await
    }
}

fn host_of(url: &Url) -> String {
    match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or("")),
        None => url.host_str().unwrap_or("").to_owned(),
    }
}

/// Checks Azure Arc's challenge (`Basic realm=<path>`) and returns the key file's path, rebuilt from its file name
/// inside the expected folder: the path must end in `.key` and its folder must be exactly `tokens_dir`.
pub(crate) fn arc_key_path(challenge: &str, tokens_dir: &Path) -> Result<PathBuf, Error> {
    let refuse = |why: &str| {
        Error::authentication_failed(NAME, format!("refusing Azure Arc's challenge: {why}"))
    };
    let realm = challenge
        .trim()
        .strip_prefix("Basic realm=")
        .or_else(|| challenge.trim().strip_prefix("basic realm="))
        .ok_or_else(|| refuse("it is not `Basic realm=<path>`"))?
        .trim()
        .trim_matches('"');
    let path = Path::new(realm);
    let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
        return Err(refuse("the realm names no file"));
    };
    if !file_name.ends_with(".key") || file_name.len() <= ".key".len() {
        return Err(refuse("the key file's name does not end in .key"));
    }
    if path.parent() != Some(tokens_dir) {
        return Err(refuse(&format!(
            "the key file is not directly inside {}",
            tokens_dir.display()
        )));
    }
    Ok(tokens_dir.join(file_name))
}

/// Reads an Azure Arc key file after checking that it is a file of at most 4096 bytes.
fn read_arc_key(path: &Path) -> Result<Secret, Error> {
    let metadata = std::fs::metadata(path).map_err(|e| {
        Error::authentication_failed(
            NAME,
            format!("cannot read the Azure Arc key file {}: {e}", path.display()),
        )
    })?;
    if !metadata.is_file() {
        return Err(Error::authentication_failed(
            NAME,
            format!("the Azure Arc key {} is not a file", path.display()),
        ));
    }
    if metadata.len() > ARC_MAX_KEY_BYTES {
        return Err(Error::authentication_failed(
            NAME,
            format!(
                "the Azure Arc key file {} is {} bytes, over the {ARC_MAX_KEY_BYTES} byte limit",
                path.display(),
                metadata.len()
            ),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| {
        Error::authentication_failed(
            NAME,
            format!("cannot read the Azure Arc key file {}: {e}", path.display()),
        )
    })?;
    if bytes.len() as u64 > ARC_MAX_KEY_BYTES {
        return Err(Error::authentication_failed(
            NAME,
            "the Azure Arc key file grew over the limit while it was read",
        ));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::authentication_failed(NAME, "the Azure Arc key file is not text"))?;
    Ok(Secret::new(text.trim().to_owned()))
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

/// Azure Arc and user-assigned identities: fail closed unless the answer names the identity asked for, in the
/// response body (`client_id`, `object_id`, `msi_res_id`) or in the token's claims (`appid`/`azp`, `oid`,
/// `xms_mirid`).
pub(crate) fn check_arc_echo(body: &[u8], id: &UserAssignedId) -> Result<(), Error> {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let claims = value
        .get("access_token")
        .and_then(|t| t.as_str())
        .and_then(|t| entraid_core::Claims::from_jwt(t).ok());
    let (fields, claim_names): (&[&str], &[&str]) = match id {
        UserAssignedId::ClientId(_) => (&["client_id"], &["appid", "azp"]),
        UserAssignedId::ObjectId(_) => (&["object_id"], &["oid"]),
        UserAssignedId::ResourceId(_) => (&["msi_res_id", "mi_res_id"], &["xms_mirid"]),
    };
    let from_body = fields
        .iter()
        .filter_map(|n| value.get(*n).and_then(|v| v.as_str()));
    let from_claims = claim_names.iter().filter_map(|n| {
        claims
            .as_ref()
            .and_then(|c| c.get(n))
            .and_then(|v| v.as_str())
    });
    let mut echoed = from_body.chain(from_claims).peekable();
    if echoed.peek().is_none() {
        return Err(Error::authentication_failed(
            NAME,
            format!(
                "Azure Arc's answer does not say which identity it is for; refusing it, as the user-assigned {} \
                 cannot be confirmed",
                id.kind()
            ),
        ));
    }
    if echoed.all(|v| v.eq_ignore_ascii_case(id.value())) {
        Ok(())
    } else {
        Err(Error::authentication_failed(
            NAME,
            format!(
                "Azure Arc answered for another identity than the user-assigned {} asked for; refusing the token",
                id.kind()
            ),
        ))
    }
}

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

/// An HTTP client for Service Fabric: the server's certificate must have the given SHA-1 thumbprint.
fn pinned_client(thumbprint: &str, timeout: std::time::Duration) -> Result<HttpClient, Error> {
    let hex: String = thumbprint
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect();
    if hex.len() != 40 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::configuration(format!(
            "{NAME}: IDENTITY_SERVER_THUMBPRINT must be a SHA-1 thumbprint (40 hex digits)"
        )));
    }
    let mut sha1 = [0u8; 20];
    for (i, byte) in sha1.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| Error::configuration(format!("{NAME}: bad IDENTITY_SERVER_THUMBPRINT")))?;
    }
    let provider = crate::http::crypto_provider();
    let verifier = Arc::new(PinnedThumbprint {
        sha1,
        provider: provider.clone(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::configuration(format!("TLS configuration: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    HttpClient::from_rustls(config, timeout)
}

/// Accepts exactly the server certificate whose SHA-1 thumbprint is pinned (Service Fabric's own certificate is
/// not issued by a public CA); handshake signatures are still verified.
#[derive(Debug)]
struct PinnedThumbprint {
    sha1: [u8; 20],
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for PinnedThumbprint {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, end_entity);
        if digest.as_ref() == self.sha1 {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the server certificate's thumbprint is not IDENTITY_SERVER_THUMBPRINT".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn arc_challenges_are_checked() {
        let dir = Path::new("/var/opt/azcmagent/tokens");
        assert_eq!(
            arc_key_path("Basic realm=/var/opt/azcmagent/tokens/abc.key", dir).unwrap(),
            dir.join("abc.key")
        );
        assert_eq!(
            arc_key_path("Basic realm=\"/var/opt/azcmagent/tokens/abc.key\"", dir).unwrap(),
            dir.join("abc.key")
        );
        for bad in [
            "Bearer realm=/var/opt/azcmagent/tokens/abc.key",
            "Basic realm=/var/opt/azcmagent/tokens/abc.txt",
            "Basic realm=/var/opt/azcmagent/tokens/.key",
            "Basic realm=/etc/abc.key",
            "Basic realm=/var/opt/azcmagent/tokens/sub/abc.key",
            "Basic realm=/var/opt/azcmagent/tokens/../abc.key",
            "Basic realm=/var/opt/azcmagent/tokens/",
            "Basic realm=",
            "Basic realm=abc.key",
        ] {
            let err = arc_key_path(bad, dir).unwrap_err();
            assert!(
                matches!(err, Error::AuthenticationFailed { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn arc_key_files_are_size_checked_before_reading() {
        let dir = std::env::temp_dir().join(format!("entraid-arc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = dir.join("ok.key");
        std::fs::write(&ok, "the-key\n").unwrap();
        assert_eq!(read_arc_key(&ok).unwrap().expose_secret(), "the-key");
        let big = dir.join("big.key");
        std::fs::write(&big, vec![b'a'; 4097]).unwrap();
        let err = read_arc_key(&big).unwrap_err();
        assert!(err.to_string().contains("4097 bytes"), "{err}");
        let err = read_arc_key(&dir.join("missing.key")).unwrap_err();
        assert!(err.to_string().contains("cannot read"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn arc_echo_fails_closed() {
        let body = br#"{"access_token":"x","client_id":"CID"}"#;
        assert!(check_arc_echo(body, &UserAssignedId::ClientId("cid".into())).is_ok());
        let err = check_arc_echo(body, &UserAssignedId::ClientId("other".into())).unwrap_err();
        assert!(err.to_string().contains("another identity"), "{err}");
        let err = check_arc_echo(body, &UserAssignedId::ObjectId("cid".into())).unwrap_err();
        assert!(err.to_string().contains("cannot be confirmed"), "{err}");
        assert!(check_arc_echo(b"not json", &UserAssignedId::ClientId("cid".into())).is_err());
        // The token's claims count too: oid for an object id, xms_mirid for a resource id.
        let jwt =
            entraid_core::unsigned_jwt(&serde_json::json!({"oid": "o-1", "xms_mirid": "/sub/r"}));
        let body = format!(r#"{{"access_token":"{jwt}","client_id":"c"}}"#);
        assert!(check_arc_echo(body.as_bytes(), &UserAssignedId::ObjectId("o-1".into())).is_ok());
        assert!(check_arc_echo(body.as_bytes(), &UserAssignedId::ObjectId("o-2".into())).is_err());
        assert!(
            check_arc_echo(
                body.as_bytes(),
                &UserAssignedId::ResourceId("/SUB/R".into())
            )
            .is_ok()
        );
    }
}
