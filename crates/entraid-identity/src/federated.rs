//! Federated client assertions: [`ClientAssertionCredential`] (any assertion, from a callback or a file) and
//! [`WorkloadIdentityCredential`] (AKS workload identity: `AZURE_FEDERATED_TOKEN_FILE`).
//!
//! The assertion is sent as `client_assertion` in the client-credentials grant. A file is re-read at most every
//! 10 minutes (Kubernetes rotates the projected token at 80 % of a lifetime of at least an hour), and always
//! again after that: reading it only once is a known bug of older SDKs (AADSTS700024, expired assertion).

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use entraid_core::{
    BoxError, BoxFuture, Error, IdentityProvider, IdentityProviderResponse, Secret,
};

use crate::token_endpoint::{
    ClientProof, CommonBuilder, TokenEndpointClient, common_builder_methods,
};

/// How often an assertion file is re-read at most: 10 minutes.
pub const ASSERTION_FILE_REREAD: Duration = Duration::from_secs(600);

/// The environment variable naming the workload identity token file.
pub const AZURE_FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";

type Callback = dyn Fn() -> BoxFuture<'static, Result<Secret, BoxError>> + Send + Sync;

/// Fetches a federated token over HTTP for each token request (GitHub Actions, Azure Pipelines).
pub(crate) trait FetchAssertion: Send + Sync + fmt::Debug {
    /// A fresh assertion.
    fn fetch<'a>(&'a self, http: &'a crate::HttpClient) -> BoxFuture<'a, Result<Secret, Error>>;
}

/// Where assertions come from.
enum Source {
    Callback(Arc<Callback>),
    File(AssertionFile),
    Fetch(Box<dyn FetchAssertion>),
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Callback(_) => f.write_str("Callback"),
            Self::Fetch(fetcher) => fmt::Debug::fmt(fetcher, f),
            Self::File(file) => f
                .debug_struct("File")
                .field("path", &file.path)
                .field("reread_after", &file.reread_after)
                .finish(),
        }
    }
}

/// An assertion file, cached for at most `reread_after` on tokio's clock.
struct AssertionFile {
    credential: &'static str,
    path: PathBuf,
    reread_after: Duration,
    cache: Mutex<Option<(Secret, tokio::time::Instant)>>,
}

impl AssertionFile {
    fn new(credential: &'static str, path: PathBuf, reread_after: Duration) -> Self {
        Self {
            credential,
            path,
            reread_after,
            cache: Mutex::new(None),
        }
    }

    async fn assertion(&self) -> Result<Secret, Error> {
        let now = tokio::time::Instant::now();
        {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((assertion, read_at)) = cache.as_ref()
                && now.duration_since(*read_at) < self.reread_after
            {
                return Ok(assertion.clone());
            }
        }
        let text = tokio::fs::read_to_string(&self.path).await.map_err(|e| {
            Error::unavailable(
                self.credential,
                format!(
                    "cannot read the assertion file {}: {e}",
                    self.path.display()
                ),
            )
        })?;
        let assertion = Secret::new(text.trim().to_owned());
        if assertion.is_empty() {
            return Err(Error::unavailable(
                self.credential,
                format!("the assertion file {} is empty", self.path.display()),
            ));
        }
        tracing::debug!(
            credential = self.credential,
            path = %self.path.display(),
            bytes = assertion.len(),
            "read the client assertion file"
        );
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = Some((assertion.clone(), now));
        Ok(assertion)
    }
}

/// A client authenticating with a federated assertion (a JWT from another identity provider: Kubernetes, GitHub,
/// any OIDC issuer that Entra ID trusts through a federated identity credential), from a callback or a file.
///
/// ```
/// use entraid_identity::ClientAssertionCredential;
///
/// let credential = ClientAssertionCredential::builder()
///     .tenant_id("contoso.onmicrosoft.com")
///     .client_id("00000000-0000-0000-0000-000000000003")
///     .assertion_callback(|| async { Ok::<_, std::io::Error>("eyJ...from-my-issuer".to_owned()) })
///     .build()
///     .unwrap();
/// # let _ = credential;
/// ```
#[derive(Debug)]
pub struct ClientAssertionCredential {
    name: &'static str,
    client: TokenEndpointClient,
    source: Source,
}

impl ClientAssertionCredential {
    /// A builder.
    pub fn builder() -> ClientAssertionCredentialBuilder {
        ClientAssertionCredentialBuilder::default()
    }

    async fn assertion(&self) -> Result<Secret, Error> {
        match &self.source {
            Source::Callback(callback) => {
                let assertion = callback().await.map_err(|e| Error::custom(e, true))?;
                if assertion.is_empty() {
                    return Err(Error::authentication_failed(
                        self.name,
                        "the assertion callback returned an empty assertion",
                    ));
                }
                Ok(assertion)
            }
            Source::File(file) => file.assertion().await,
            Source::Fetch(fetcher) => fetcher.fetch(self.client.http()).await,
        }
    }
}

impl IdentityProvider for ClientAssertionCredential {
    fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
        Box::pin(async move {
            let assertion = self.assertion().await?;
            let response = self
                .client
                .request(ClientProof::Assertion(&assertion))
                .await?;
            Ok(response.into())
        })
    }

    fn name(&self) -> &str {
        self.name
    }
}

/// Builds a [`ClientAssertionCredential`]. Required: tenant id (or authority), client id, and a callback or a
/// file. Default file re-read interval: 10 minutes.
#[derive(Default)]
pub struct ClientAssertionCredentialBuilder {
    common: CommonBuilder,
    callback: Option<Arc<Callback>>,
    file: Option<PathBuf>,
    reread_after: Option<Duration>,
    fetcher: Option<Box<dyn FetchAssertion>>,
}

impl fmt::Debug for ClientAssertionCredentialBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAssertionCredentialBuilder")
            .field("common", &self.common)
            .field("callback", &self.callback.is_some())
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl ClientAssertionCredentialBuilder {
    common_builder_methods!();

    /// Gets each assertion from a callback (called for every token request; cache inside it if needed).
    pub fn assertion_callback<F, Fut, S, E>(mut self, callback: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<S, E>> + Send + 'static,
        S: Into<Secret>,
        E: Into<BoxError>,
    {
        self.callback = Some(Arc::new(move || {
            let future = callback();
            Box::pin(async move { future.await.map(Into::into).map_err(Into::into) })
        }));
        self
    }

    /// Reads each assertion from a file, re-read at most every [`file_reread_interval`](Self::file_reread_interval).
    pub fn assertion_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some(path.into());
        self
    }

    /// How long a file's assertion is reused before the file is read again. Default 10 minutes.
    pub fn file_reread_interval(mut self, interval: Duration) -> Self {
        self.reread_after = Some(interval);
        self
    }

    /// Builds the credential, checking every setting.
    pub fn build(self) -> Result<ClientAssertionCredential, Error> {
        self.build_named("ClientAssertion")
    }

    /// Builds a credential that fetches each assertion over HTTP, under another name.
    pub(crate) fn build_fetching(
        common: CommonBuilder,
        name: &'static str,
        fetcher: Box<dyn FetchAssertion>,
    ) -> Result<ClientAssertionCredential, Error> {
        Self {
            common,
            fetcher: Some(fetcher),
            ..Self::default()
        }
        .build_named(name)
    }

    fn build_named(self, name: &'static str) -> Result<ClientAssertionCredential, Error> {
        if let Some(fetcher) = self.fetcher {
            return Ok(ClientAssertionCredential {
                name,
                client: self.common.build(name)?,
                source: Source::Fetch(fetcher),
            });
        }
        let source = match (self.callback, self.file) {
            (Some(_), Some(_)) => {
                return Err(Error::configuration(format!(
                    "{name}: give an assertion callback or an assertion file, not both"
                )));
            }
            (Some(callback), None) => Source::Callback(callback),
            (None, Some(path)) => Source::File(AssertionFile::new(
                name,
                path,
                self.reread_after.unwrap_or(ASSERTION_FILE_REREAD),
            )),
            (None, None) => {
                return Err(Error::configuration(format!(
                    "{name}: no assertion source; give an assertion callback or an assertion file"
                )));
            }
        };
        Ok(ClientAssertionCredential {
            name,
            client: self.common.build(name)?,
            source,
        })
    }
}

/// AKS workload identity: the projected service-account token in `AZURE_FEDERATED_TOKEN_FILE`, exchanged as a
/// client assertion for the app in `AZURE_CLIENT_ID` and `AZURE_TENANT_ID` (options override the variables;
/// `AZURE_AUTHORITY_HOST` is honoured). The file is re-read at most every 10 minutes.
///
/// Missing variables make [`build`](WorkloadIdentityCredentialBuilder::build) return
/// [`Error::CredentialUnavailable`].
#[derive(Debug)]
pub struct WorkloadIdentityCredential(ClientAssertionCredential);

impl WorkloadIdentityCredential {
    /// A builder.
    pub fn builder() -> WorkloadIdentityCredentialBuilder {
        WorkloadIdentityCredentialBuilder::default()
    }

    /// A credential configured from the process environment.
    pub fn from_env() -> Result<Self, Error> {
        Self::builder().build()
    }
}

delegate_provider!(WorkloadIdentityCredential);

/// Implements [`IdentityProvider`] for a newtype over [`ClientAssertionCredential`] (workload identity, the CI
/// credentials) by handing every call to the inner credential.
macro_rules! delegate_provider {
    ($credential:ty) => {
        impl IdentityProvider for $credential {
            fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
                self.0.request_token()
            }

            fn name(&self) -> &str {
                self.0.name()
            }
        }
    };
}
pub(crate) use delegate_provider;

/// Builds a [`WorkloadIdentityCredential`]. Defaults: tenant `AZURE_TENANT_ID`, client `AZURE_CLIENT_ID`, file
/// `AZURE_FEDERATED_TOKEN_FILE`, re-read at most every 10 minutes.
#[derive(Debug, Default)]
pub struct WorkloadIdentityCredentialBuilder {
    common: CommonBuilder,
    file: Option<PathBuf>,
    reread_after: Option<Duration>,
}

impl WorkloadIdentityCredentialBuilder {
    common_builder_methods!();

    /// The token file. Default: `AZURE_FEDERATED_TOKEN_FILE`.
    pub fn token_file_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some(path.into());
        self
    }

    /// How long the file's token is reused before the file is read again. Default 10 minutes.
    pub fn file_reread_interval(mut self, interval: Duration) -> Self {
        self.reread_after = Some(interval);
        self
    }

    /// Builds the credential.
    pub fn build(mut self) -> Result<WorkloadIdentityCredential, Error> {
        const NAME: &str = "WorkloadIdentity";
        let env = self.common.env();
        if self.common.tenant_id.is_none() && self.common.authority.is_none() {
            self.common.tenant_id = env.get("AZURE_TENANT_ID");
        }
        if self.common.client_id.is_none() {
            self.common.client_id = env.get("AZURE_CLIENT_ID");
        }
        let file = self
            .file
            .or_else(|| env.get(AZURE_FEDERATED_TOKEN_FILE).map(PathBuf::from));
        let mut missing = Vec::new();
        if self.common.tenant_id.is_none() && self.common.authority.is_none() {
            missing.push("AZURE_TENANT_ID");
        }
        if self.common.client_id.is_none() {
            missing.push("AZURE_CLIENT_ID");
        }
        if file.is_none() {
            missing.push(AZURE_FEDERATED_TOKEN_FILE);
        }
        let Some(file) = file.filter(|_| missing.is_empty()) else {
            return Err(Error::unavailable(
                NAME,
                format!(
                    "set {} (the AKS workload identity webhook sets them in pods that use it)",
                    missing.join(", ")
                ),
            ));
        };
        let builder = ClientAssertionCredentialBuilder {
            common: self.common,
            callback: None,
            file: Some(file),
            reread_after: self.reread_after,
            fetcher: None,
        };
        Ok(WorkloadIdentityCredential(builder.build_named(NAME)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Env;

    fn temp_file(name: &str, contents: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("entraid-assert-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[tokio::test(start_paused = true)]
    async fn the_file_is_reread_after_ten_minutes_and_not_before() {
        let path = temp_file("reread", "first\n");
        let file = AssertionFile::new("WorkloadIdentity", path.clone(), ASSERTION_FILE_REREAD);
        assert_eq!(file.assertion().await.unwrap().expose_secret(), "first");
        std::fs::write(&path, "second").unwrap();
        tokio::time::advance(Duration::from_secs(599)).await;
        assert_eq!(file.assertion().await.unwrap().expose_secret(), "first");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(file.assertion().await.unwrap().expose_secret(), "second");
        std::fs::write(&path, "third").unwrap();
        tokio::time::advance(Duration::from_secs(600)).await;
        assert_eq!(file.assertion().await.unwrap().expose_secret(), "third");
        // A file that disappears is an error once the cached assertion is due for a re-read, never a stale token.
        std::fs::remove_file(&path).unwrap();
        tokio::time::advance(Duration::from_secs(600)).await;
        let err = file.assertion().await.unwrap_err();
        assert!(
            err.is_unavailable() && err.to_string().contains("cannot read"),
            "{err}"
        );
        std::fs::write(&path, "  \n").unwrap();
        let err = file.assertion().await.unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
    }

    #[test]
    fn workload_identity_reads_the_environment_and_options_override_it() {
        let path = temp_file("env", "jwt");
        let env = Env::from_map([
            ("AZURE_TENANT_ID", "tenant-a"),
            ("AZURE_CLIENT_ID", "client-a"),
            (AZURE_FEDERATED_TOKEN_FILE, path.to_str().unwrap()),
        ]);
        let http = crate::HttpClient::new(crate::HttpOptions::new().native_roots(false)).unwrap();
        let credential = WorkloadIdentityCredential::builder()
            .env(env.clone())
            .http_client(http.clone())
            .build()
            .unwrap();
        assert_eq!(credential.name(), "WorkloadIdentity");
        assert_eq!(credential.0.client.client_id(), "client-a");
        assert!(
            credential
                .0
                .client
                .token_endpoint()
                .as_str()
                .contains("/tenant-a/")
        );
        let credential = WorkloadIdentityCredential::builder()
            .env(env)
            .http_client(http.clone())
            .tenant_id("tenant-b")
            .client_id("client-b")
            .token_file_path("/other/file")
            .build()
            .unwrap();
        assert_eq!(credential.0.client.client_id(), "client-b");
        assert!(
            credential
                .0
                .client
                .token_endpoint()
                .as_str()
                .contains("/tenant-b/")
        );
        assert!(format!("{credential:?}").contains("/other/file"));

        let err = WorkloadIdentityCredential::builder()
            .env(Env::from_map([("AZURE_CLIENT_ID", "c")]))
            .http_client(http)
            .build()
            .unwrap_err();
        assert!(err.is_unavailable(), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("AZURE_TENANT_ID")
                && text.contains(AZURE_FEDERATED_TOKEN_FILE)
                && !text.contains("AZURE_CLIENT_ID,"),
            "{text}"
        );
    }

    #[test]
    fn assertion_credential_needs_exactly_one_source() {
        let base = || {
            ClientAssertionCredential::builder()
                .tenant_id("t")
                .client_id("c")
                .env(Env::from_map::<&str, &str>([]))
        };
        assert!(
            base()
                .build()
                .unwrap_err()
                .to_string()
                .contains("no assertion source")
        );
        let both = base()
            .assertion_file("/x")
            .assertion_callback(|| async { Ok::<_, std::io::Error>("a".to_owned()) })
            .build()
            .unwrap_err();
        assert!(both.to_string().contains("not both"), "{both}");
    }
}
