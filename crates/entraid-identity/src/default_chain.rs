//! [`DefaultAzureCredential`]: the same code on a laptop, in CI and in production.
//!
//! The chain, in order (as azidentity): Environment → Workload identity → Managed identity (with
//! `AZURE_CLIENT_ID`, when set, as the user-assigned identity's client id) → Azure CLI → Azure Developer CLI.
//! `AZURE_TOKEN_CREDENTIALS` narrows it: `dev` (the two CLIs), `prod` (environment, workload identity, managed
//! identity), or one credential by name (`EnvironmentCredential`, `WorkloadIdentityCredential`,
//! `ManagedIdentityCredential`, `AzureCliCredential`, `AzureDeveloperCliCredential`, any case; the short names
//! `Environment`, ..., `AzureDeveloperCli` too); any other value is a construction error.
//!
//! A link that is unavailable passes to the next one; an authentication failure stops the chain; the first link
//! that succeeds is kept for every later request. Inside the chain the managed-identity link probes IMDS for
//! [`IMDS_PROBE_TIMEOUT`] (1 s) without retries before its first request, so a laptop is not kept waiting, and the
//! developer tools' failures count as unavailable. A link that cannot be built (missing variables) is unavailable
//! with that reason. When every link is unavailable, the error lists each one and why, one per line, with a hint
//! (for example "run `az login`"). When a single credential is named by `AZURE_TOKEN_CREDENTIALS`, it behaves as
//! on its own: no IMDS probe, and a developer tool's failure is returned as it is.

use std::ffi::OsString;
use std::fmt;
use std::time::Duration;

use entraid_core::{
    BoxFuture, Error, IdentityProvider, IdentityProviderResponse, SharedIdentityProvider,
};

use crate::authority::AuthorityHost;
use crate::chain::{ChainedCredential, Unavailable};
use crate::env::Env;
use crate::http::HttpClient;
use crate::{
    AzureCliCredential, AzureDeveloperCliCredential, EnvironmentCredential,
    ManagedIdentityCredential, UserAssignedId, WorkloadIdentityCredential,
};

/// The environment variable that narrows the chain: `dev`, `prod` or one credential's name.
pub const AZURE_TOKEN_CREDENTIALS: &str = "AZURE_TOKEN_CREDENTIALS";

/// How long the managed-identity link waits for IMDS before calling it unavailable: 1 s.
pub const IMDS_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

const NAME: &str = "DefaultAzureCredential";

/// A link of the default chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChainLink {
    /// [`EnvironmentCredential`].
    Environment,
    /// [`WorkloadIdentityCredential`].
    WorkloadIdentity,
    /// [`ManagedIdentityCredential`].
    ManagedIdentity,
    /// [`AzureCliCredential`].
    AzureCli,
    /// [`AzureDeveloperCliCredential`].
    AzureDeveloperCli,
}

impl ChainLink {
    /// Every link, in the chain's order.
    pub const ALL: [ChainLink; 5] = [
        ChainLink::Environment,
        ChainLink::WorkloadIdentity,
        ChainLink::ManagedIdentity,
        ChainLink::AzureCli,
        ChainLink::AzureDeveloperCli,
    ];

    /// The provider's name in errors and logs (`Environment`, `AzureCli`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Environment => "Environment",
            Self::WorkloadIdentity => "WorkloadIdentity",
            Self::ManagedIdentity => "ManagedIdentity",
            Self::AzureCli => "AzureCli",
            Self::AzureDeveloperCli => "AzureDeveloperCli",
        }
    }

    /// The name `AZURE_TOKEN_CREDENTIALS` takes (`EnvironmentCredential`, `AzureCliCredential`, ...).
    pub fn credential_name(self) -> &'static str {
        match self {
            Self::Environment => "EnvironmentCredential",
            Self::WorkloadIdentity => "WorkloadIdentityCredential",
            Self::ManagedIdentity => "ManagedIdentityCredential",
            Self::AzureCli => "AzureCliCredential",
            Self::AzureDeveloperCli => "AzureDeveloperCliCredential",
        }
    }

    /// The links an `AZURE_TOKEN_CREDENTIALS` value selects (unset or empty: all of them).
    ///
    /// ```
    /// use entraid_identity::ChainLink;
    ///
    /// assert_eq!(ChainLink::select(Some("dev")).unwrap(), [ChainLink::AzureCli, ChainLink::AzureDeveloperCli]);
    /// assert_eq!(ChainLink::select(Some("azureclicredential")).unwrap(), [ChainLink::AzureCli]);
    /// assert_eq!(ChainLink::select(None).unwrap().len(), 5);
    /// assert!(ChainLink::select(Some("laptop")).is_err());
    /// ```
    pub fn select(value: Option<&str>) -> Result<Vec<ChainLink>, Error> {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return Ok(Self::ALL.to_vec());
        };
        let lower = value.to_ascii_lowercase();
        match lower.as_str() {
            "dev" => return Ok(vec![Self::AzureCli, Self::AzureDeveloperCli]),
            "prod" => {
                return Ok(vec![
                    Self::Environment,
                    Self::WorkloadIdentity,
                    Self::ManagedIdentity,
                ]);
            }
            _ => {}
        }
        if let Some(link) = Self::ALL.into_iter().find(|l| {
            lower == l.credential_name().to_ascii_lowercase()
                || lower == l.name().to_ascii_lowercase()
        }) {
            return Ok(vec![link]);
        }
        let names: Vec<&str> = Self::ALL.iter().map(|l| l.credential_name()).collect();
        Err(Error::configuration(format!(
            "{AZURE_TOKEN_CREDENTIALS} is `{value}`; use `dev`, `prod` or one of {} (any case)",
            names.join(", ")
        )))
    }
}

impl fmt::Display for ChainLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.credential_name())
    }
}

/// The default chain (see the module documentation).
///
/// ```
/// use entraid_identity::{ChainLink, DefaultAzureCredential, Env};
///
/// let env = Env::from_map([("AZURE_TOKEN_CREDENTIALS", "prod")]);
/// let credential = DefaultAzureCredential::builder().env(env).build().unwrap();
/// assert_eq!(
///     credential.links(),
///     [ChainLink::Environment, ChainLink::WorkloadIdentity, ChainLink::ManagedIdentity]
/// );
/// ```
#[derive(Debug)]
pub struct DefaultAzureCredential {
    chain: ChainedCredential,
    links: Vec<ChainLink>,
}

impl DefaultAzureCredential {
    /// A builder.
    pub fn builder() -> DefaultAzureCredentialBuilder {
        DefaultAzureCredentialBuilder::default()
    }

    /// The chain as the process environment configures it.
    pub fn new() -> Result<Self, Error> {
        Self::builder().build()
    }

    /// The links, in order.
    pub fn links(&self) -> &[ChainLink] {
        &self.links
    }

    /// The link kept after the first success, if one succeeded.
    pub fn selected(&self) -> Option<ChainLink> {
        let name = self.chain.selected_name()?;
        self.links.iter().copied().find(|l| l.name() == name)
    }
}

impl IdentityProvider for DefaultAzureCredential {
    fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
        self.chain.request_token()
    }

    fn name(&self) -> &str {
        NAME
    }
}

/// Builds a [`DefaultAzureCredential`]. Defaults: the process environment, the Redis scope, the shared HTTP client,
/// `AZURE_AUTHORITY_HOST` or the public cloud, the tools' default tenants, `PATH`, a 10 s tool timeout and a 1 s
/// IMDS probe.
#[derive(Debug, Default)]
pub struct DefaultAzureCredentialBuilder {
    env: Option<Env>,
    http: Option<HttpClient>,
    scope: Option<String>,
    tenant_id: Option<String>,
    authority_host: Option<AuthorityHost>,
    search_path: Option<OsString>,
    cli_timeout: Option<Duration>,
    probe_timeout: Option<Duration>,
    managed_identity_client_id: Option<String>,
}

impl DefaultAzureCredentialBuilder {
    /// Where environment variables are read from (`AZURE_*`, `AZURE_TOKEN_CREDENTIALS`, the managed-identity
    /// variables, `PATH`). Default: the process environment.
    pub fn env(mut self, env: Env) -> Self {
        self.env = Some(env);
        self
    }

    /// The HTTP client of every link. Default: [`HttpClient::shared_default`].
    pub fn http_client(mut self, http: HttpClient) -> Self {
        self.http = Some(http);
        self
    }

    /// The scope. Default `https://redis.azure.com/.default`.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The tenant the developer tools ask for a token from. Default: each tool's own.
    pub fn tenant_id(mut self, tenant_id: impl Into<String>) -> Self {
        self.tenant_id = Some(tenant_id.into());
        self
    }

    /// The cloud of the environment link, overriding `AZURE_AUTHORITY_HOST`.
    pub fn authority_host(mut self, host: AuthorityHost) -> Self {
        self.authority_host = Some(host);
        self
    }

    /// Where `az` and `azd` are looked for (a `PATH`-style list). Default: the environment's `PATH`.
    pub fn cli_search_path(mut self, path: impl Into<OsString>) -> Self {
        self.search_path = Some(path.into());
        self
    }

    /// How long `az` and `azd` may run. Default 10 s.
    pub fn cli_timeout(mut self, timeout: Duration) -> Self {
        self.cli_timeout = Some(timeout);
        self
    }

    /// How long the managed-identity link waits for IMDS the first time. Default [`IMDS_PROBE_TIMEOUT`] (1 s).
    pub fn imds_probe_timeout(mut self, timeout: Duration) -> Self {
        self.probe_timeout = Some(timeout);
        self
    }

    /// The user-assigned managed identity's client id. Default: `AZURE_CLIENT_ID`, else the system-assigned one.
    pub fn managed_identity_client_id(mut self, client_id: impl Into<String>) -> Self {
        self.managed_identity_client_id = Some(client_id.into());
        self
    }

    /// Reads `AZURE_TOKEN_CREDENTIALS` and builds every selected link. An invalid `AZURE_TOKEN_CREDENTIALS` is an
    /// [`Error::Configuration`]; a link that cannot be built becomes an unavailable link with the reason.
    pub fn build(self) -> Result<DefaultAzureCredential, Error> {
        let env = self.env.clone().unwrap_or_default();
        let links = ChainLink::select(env.get(AZURE_TOKEN_CREDENTIALS).as_deref())?;
        let single = links.len() == 1;
        let mut chain = ChainedCredential::builder().name(NAME);
        for &link in &links {
            let provider = match self.link(link, &env, single) {
                Ok(provider) => provider,
                Err(error) => {
                    let reason = match error {
                        Error::CredentialUnavailable { message, .. } => message,
                        other => other.to_string(),
                    };
                    tracing::debug!(credential = link.name(), reason = %reason, "link unavailable");
                    SharedIdentityProvider::new(Unavailable {
                        name: link.name(),
                        reason,
                    })
                }
            };
            chain = chain.push_shared(provider);
        }
        Ok(DefaultAzureCredential {
            chain: chain.build()?,
            links,
        })
    }

    fn link(
        &self,
        link: ChainLink,
        env: &Env,
        single: bool,
    ) -> Result<SharedIdentityProvider, Error> {
        /// Applies the options that are set (`Some`) to a builder, by method name.
        macro_rules! set {
            ($b:ident, $($method:ident = $value:expr),+) => {
                $(if let Some(value) = $value.clone() {
                    $b = $b.$method(value);
                })+
            };
        }
        let mi_client_id = self
            .managed_identity_client_id
            .clone()
            .or_else(|| env.get("AZURE_CLIENT_ID"))
            .map(UserAssignedId::ClientId);
        let probe = (!single).then(|| self.probe_timeout.unwrap_or(IMDS_PROBE_TIMEOUT));
        Ok(match link {
            ChainLink::Environment => {
                let mut b = EnvironmentCredential::builder().env(env.clone());
                set!(
                    b,
                    http_client = self.http,
                    scope = self.scope,
                    authority_host = self.authority_host
                );
                SharedIdentityProvider::new(b.build()?)
            }
            ChainLink::WorkloadIdentity => {
                let mut b = WorkloadIdentityCredential::builder().env(env.clone());
                set!(
                    b,
                    http_client = self.http,
                    scope = self.scope,
                    authority_host = self.authority_host
                );
                SharedIdentityProvider::new(b.build()?)
            }
            ChainLink::ManagedIdentity => {
                let mut b = ManagedIdentityCredential::builder().env(env.clone());
                set!(
                    b,
                    http_client = self.http,
                    scope = self.scope,
                    user_assigned = mi_client_id,
                    imds_probe = probe
                );
                SharedIdentityProvider::new(b.build()?)
            }
            ChainLink::AzureCli => {
                let mut b = AzureCliCredential::builder()
                    .env(env.clone())
                    .in_chain(!single);
                set!(
                    b,
                    search_path = self.search_path,
                    timeout = self.cli_timeout,
                    tenant_id = self.tenant_id,
                    scope = self.scope
                );
                SharedIdentityProvider::new(b.build()?)
            }
            ChainLink::AzureDeveloperCli => {
                let mut b = AzureDeveloperCliCredential::builder()
                    .env(env.clone())
                    .in_chain(!single);
                set!(
                    b,
                    search_path = self.search_path,
                    timeout = self.cli_timeout,
                    tenant_id = self.tenant_id,
                    scope = self.scope
                );
                SharedIdentityProvider::new(b.build()?)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_selection_value() {
        use ChainLink::*;
        assert_eq!(ChainLink::select(None).unwrap(), ChainLink::ALL);
        assert_eq!(ChainLink::select(Some("")).unwrap(), ChainLink::ALL);
        assert_eq!(
            ChainLink::select(Some("DEV")).unwrap(),
            [AzureCli, AzureDeveloperCli]
        );
        assert_eq!(
            ChainLink::select(Some("Prod")).unwrap(),
            [Environment, WorkloadIdentity, ManagedIdentity]
        );
        for link in ChainLink::ALL {
            for name in [
                link.credential_name().to_owned(),
                link.credential_name().to_ascii_uppercase(),
                link.credential_name().to_ascii_lowercase(),
                link.name().to_owned(),
            ] {
                assert_eq!(ChainLink::select(Some(&name)).unwrap(), [link], "{name}");
            }
        }
        assert_eq!(
            ChainLink::select(Some("AzureCLICredential")).unwrap(),
            [AzureCli]
        );
        for bad in ["development", "dev,prod", " dev", "ClientSecretCredential"] {
            let err = ChainLink::select(Some(bad)).unwrap_err();
            assert!(matches!(err, Error::Configuration { .. }), "{bad}");
            assert!(
                err.to_string()
                    .contains("`dev`, `prod` or one of EnvironmentCredential"),
                "{err}"
            );
        }
    }
}
