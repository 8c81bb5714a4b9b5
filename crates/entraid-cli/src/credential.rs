//! Which credential a command uses (`--credential`, `--scope`, ...), built from the process environment as an
//! application would, and the token it returns with the claims the commands print.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, ValueEnum};
use entraid_core::{Error, IdentityProvider as _, Secret, SharedIdentityProvider, Token};
use entraid_identity::{
    AzureCliCredential, AzureDeveloperCliCredential, ChainLink, ClientCertificate,
    ClientCertificateCredential, ClientSecretCredential, DefaultAzureCredential, Env,
    EnvironmentCredential, ManagedIdentityCredential, UserAssignedId, WorkloadIdentityCredential,
};

/// The scope Azure Cache for Redis and Azure Managed Redis accept.
pub(crate) const REDIS_SCOPE: &str = "https://redis.azure.com/.default";
/// The audience of a token for [`REDIS_SCOPE`].
pub(crate) const REDIS_AUDIENCES: [&str; 2] = [
    "https://redis.azure.com",
    "acca5fbb-b7e4-4009-81f1-37e38fd66d78",
];

/// A credential `--credential` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum CredentialKind {
    /// The default chain: environment, workload identity, managed identity, Azure CLI, Azure Developer CLI.
    Default,
    /// `AZURE_TENANT_ID` + `AZURE_CLIENT_ID` + `AZURE_CLIENT_SECRET` or `AZURE_CLIENT_CERTIFICATE_PATH`.
    Environment,
    /// AKS workload identity (`AZURE_FEDERATED_TOKEN_FILE`).
    WorkloadIdentity,
    /// The host's managed identity (system-assigned, or user-assigned with `--client-id`).
    ManagedIdentity,
    /// A service principal with `AZURE_CLIENT_SECRET` (never a flag: arguments are visible to other users).
    ClientSecret,
    /// A service principal with a certificate (`--certificate` or `AZURE_CLIENT_CERTIFICATE_PATH`).
    Certificate,
    /// The Azure CLI's login (`az login`).
    AzureCli,
    /// The Azure Developer CLI's login (`azd auth login`).
    AzureDeveloperCli,
}

/// The credential options every command takes.
#[derive(Debug, Clone, Args)]
pub(crate) struct CredentialArgs {
    /// The credential to use.
    #[arg(long, value_enum, default_value_t = CredentialKind::Default)]
    pub(crate) credential: CredentialKind,
    /// The scope to ask for.
    #[arg(long, default_value = REDIS_SCOPE)]
    pub(crate) scope: String,
    /// Tenant id (default: `AZURE_TENANT_ID`).
    #[arg(long, value_name = "ID")]
    pub(crate) tenant_id: Option<String>,
    /// Client id of the service principal, or of a user-assigned managed identity (default: `AZURE_CLIENT_ID`).
    #[arg(long, value_name = "ID")]
    pub(crate) client_id: Option<String>,
    /// A PEM or PFX certificate for `--credential certificate` (default: `AZURE_CLIENT_CERTIFICATE_PATH`; its
    /// password from `AZURE_CLIENT_CERTIFICATE_PASSWORD`).
    #[arg(long, value_name = "PATH")]
    pub(crate) certificate: Option<PathBuf>,
}

/// A credential ready to ask, with the default chain kept concretely so the winner can be named.
pub(crate) struct Credential {
    provider: SharedIdentityProvider,
    chain: Option<Arc<DefaultAzureCredential>>,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl CredentialArgs {
    fn tenant(&self) -> Result<String, Error> {
        self.tenant_id
            .clone()
            .or_else(|| var("AZURE_TENANT_ID"))
            .ok_or_else(|| {
                Error::configuration("no tenant: pass --tenant-id or set AZURE_TENANT_ID")
            })
    }

    fn client(&self) -> Result<String, Error> {
        self.client_id
            .clone()
            .or_else(|| var("AZURE_CLIENT_ID"))
            .ok_or_else(|| {
                Error::configuration("no client id: pass --client-id or set AZURE_CLIENT_ID")
            })
    }

    /// Builds the credential `--credential` names.
    pub(crate) fn build(&self) -> Result<Credential, Error> {
        let single = |provider: SharedIdentityProvider| Credential {
            provider,
            chain: None,
        };
        Ok(match self.credential {
            CredentialKind::Default => {
                let mut builder = DefaultAzureCredential::builder().scope(&self.scope);
                if let Some(tenant) = &self.tenant_id {
                    builder = builder.tenant_id(tenant);
                }
                if let Some(client) = &self.client_id {
                    builder = builder.managed_identity_client_id(client);
                }
                let chain = Arc::new(builder.build()?);
                Credential {
                    provider: SharedIdentityProvider::new(chain.clone()),
                    chain: Some(chain),
                }
            }
            CredentialKind::Environment => single(SharedIdentityProvider::new(
                EnvironmentCredential::builder()
                    .scope(&self.scope)
                    .build()?,
            )),
            CredentialKind::WorkloadIdentity => {
                let mut builder = WorkloadIdentityCredential::builder().scope(&self.scope);
                if let Some(tenant) = &self.tenant_id {
                    builder = builder.tenant_id(tenant);
                }
                if let Some(client) = &self.client_id {
                    builder = builder.client_id(client);
                }
                single(SharedIdentityProvider::new(builder.build()?))
            }
            CredentialKind::ManagedIdentity => {
                let mut builder = ManagedIdentityCredential::builder().scope(&self.scope);
                if let Some(client) = &self.client_id {
                    builder = builder.user_assigned(UserAssignedId::ClientId(client.clone()));
                }
                single(SharedIdentityProvider::new(builder.build()?))
            }
            CredentialKind::ClientSecret => {
                let secret = var("AZURE_CLIENT_SECRET").ok_or_else(|| {
                    Error::configuration("--credential client-secret reads the secret from AZURE_CLIENT_SECRET, which is not set")
                })?;
                single(SharedIdentityProvider::new(
                    ClientSecretCredential::builder()
                        .tenant_id(self.tenant()?)
                        .client_id(self.client()?)
                        .secret(Secret::new(secret))
                        .scope(&self.scope)
                        .build()?,
                ))
            }
            CredentialKind::Certificate => {
                let path = self
                    .certificate
                    .clone()
                    .or_else(|| var("AZURE_CLIENT_CERTIFICATE_PATH").map(PathBuf::from))
                    .ok_or_else(|| {
                        Error::configuration(
                            "no certificate: pass --certificate or set AZURE_CLIENT_CERTIFICATE_PATH",
                        )
                    })?;
                let password = var("AZURE_CLIENT_CERTIFICATE_PASSWORD").map(Secret::new);
                let certificate = ClientCertificate::from_file(&path, password.as_ref())?;
                single(SharedIdentityProvider::new(
                    ClientCertificateCredential::builder()
                        .tenant_id(self.tenant()?)
                        .client_id(self.client()?)
                        .certificate(certificate)
                        .scope(&self.scope)
                        .build()?,
                ))
            }
            CredentialKind::AzureCli => {
                let mut builder = AzureCliCredential::builder().scope(&self.scope);
                if let Some(tenant) = &self.tenant_id {
                    builder = builder.tenant_id(tenant);
                }
                single(SharedIdentityProvider::new(builder.build()?))
            }
            CredentialKind::AzureDeveloperCli => {
                let mut builder = AzureDeveloperCliCredential::builder().scope(&self.scope);
                if let Some(tenant) = &self.tenant_id {
                    builder = builder.tenant_id(tenant);
                }
                single(SharedIdentityProvider::new(builder.build()?))
            }
        })
    }

    /// Every link of the default chain, each built on its own (a link that cannot be built is reported as
    /// unavailable with the reason), for `entraid doctor`.
    pub(crate) fn chain_links(&self) -> Vec<(ChainLink, Result<SharedIdentityProvider, Error>)> {
        let env = Env::process();
        ChainLink::ALL
            .into_iter()
            .map(|link| {
                let built: Result<SharedIdentityProvider, Error> = match link {
                    ChainLink::Environment => EnvironmentCredential::builder()
                        .env(env.clone())
                        .scope(&self.scope)
                        .build()
                        .map(SharedIdentityProvider::new),
                    ChainLink::WorkloadIdentity => WorkloadIdentityCredential::builder()
                        .scope(&self.scope)
                        .build()
                        .map(SharedIdentityProvider::new),
                    ChainLink::ManagedIdentity => {
                        let mut builder = ManagedIdentityCredential::builder()
                            .env(env.clone())
                            .scope(&self.scope)
                            // As inside the chain: a short probe instead of IMDS's retries.
                            .imds_probe(entraid_identity::IMDS_PROBE_TIMEOUT);
                        if let Some(client) =
                            self.client_id.clone().or_else(|| var("AZURE_CLIENT_ID"))
                        {
                            builder = builder.user_assigned(UserAssignedId::ClientId(client));
                        }
                        builder.build().map(SharedIdentityProvider::new)
                    }
                    ChainLink::AzureCli => AzureCliCredential::builder()
                        .env(env.clone())
                        .scope(&self.scope)
                        .build()
                        .map(SharedIdentityProvider::new),
                    ChainLink::AzureDeveloperCli => AzureDeveloperCliCredential::builder()
                        .env(env.clone())
                        .scope(&self.scope)
                        .build()
                        .map(SharedIdentityProvider::new),
                    _ => Err(Error::unavailable(
                        link.name(),
                        "not known to this version of entraid",
                    )),
                };
                (link, built)
            })
            .collect()
    }
}

impl Credential {
    /// The provider, to hand to a token manager.
    pub(crate) fn provider(&self) -> SharedIdentityProvider {
        self.provider.clone()
    }

    /// The credential that produced the last token: the chain's selected link, or the credential's own name.
    pub(crate) fn winner(&self) -> String {
        match &self.chain {
            Some(chain) => match chain.selected() {
                Some(link) => format!("{} (DefaultAzureCredential)", link.credential_name()),
                None => "DefaultAzureCredential".to_owned(),
            },
            None => self.provider.name().to_owned(),
        }
    }

    /// Asks for one token.
    pub(crate) async fn token(&self) -> Result<TokenInfo, Error> {
        let response = self.provider.request_token().await?;
        TokenInfo::from_token(Token::from_response(response, SystemTime::now())?)
    }
}

/// A token and the claims the commands print.
#[derive(Debug)]
pub(crate) struct TokenInfo {
    /// The token.
    pub(crate) token: Token,
    /// `oid`: the Redis username.
    pub(crate) oid: String,
    /// `tid`.
    pub(crate) tid: Option<String>,
    /// `aud` (the first one when it is an array).
    pub(crate) aud: Option<String>,
    /// `iat`, unix seconds.
    pub(crate) iat: Option<i64>,
    /// When the token was received, unix seconds.
    pub(crate) received: i64,
    /// Expiry, unix seconds.
    pub(crate) expires: i64,
}

fn unix(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

impl TokenInfo {
    pub(crate) fn from_token(token: Token) -> Result<Self, Error> {
        let claims = token.claims();
        let aud = match claims.get("aud") {
            Some(serde_json::Value::String(a)) => Some(a.clone()),
            Some(serde_json::Value::Array(items)) => {
                items.iter().find_map(|a| a.as_str()).map(str::to_owned)
            }
            _ => None,
        };
        Ok(Self {
            oid: token.username().to_owned(),
            tid: claims.tid().map(str::to_owned),
            aud,
            iat: claims.iat(),
            received: unix(token.received_at()),
            expires: unix(token.expires_on()),
            token,
        })
    }

    /// Whether the audience is one Redis accepts.
    pub(crate) fn audience_is_redis(&self) -> bool {
        self.aud
            .as_deref()
            .is_some_and(|a| REDIS_AUDIENCES.contains(&a.trim_end_matches('/')))
    }

    /// Seconds from now to expiry (negative once expired).
    pub(crate) fn expires_in(&self) -> i64 {
        self.expires - unix(SystemTime::now())
    }

    /// The local clock minus the token's `iat` at receipt (positive: this clock is ahead, or the token came from
    /// a cache; negative: this clock is behind Entra's).
    pub(crate) fn clock_skew(&self) -> Option<i64> {
        self.iat.map(|iat| self.received - iat)
    }
}

/// `2026-12-01 09:30:00 UTC` from unix seconds (proleptic Gregorian, no leap seconds).
pub(crate) fn utc(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// `in 59 min 58 s`, `3 s ago`.
pub(crate) fn relative(seconds: i64) -> String {
    let d = Duration::from_secs(seconds.unsigned_abs());
    let (h, m, s) = (
        d.as_secs() / 3600,
        d.as_secs() % 3600 / 60,
        d.as_secs() % 60,
    );
    let text = match (h, m) {
        (0, 0) => format!("{s} s"),
        (0, _) => format!("{m} min {s} s"),
        _ => format!("{h} h {m} min"),
    };
    if seconds >= 0 {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_and_relative_times() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_796_117_400), "2026-12-01 09:30:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(relative(3598), "in 59 min 58 s");
        assert_eq!(relative(-3), "3 s ago");
        assert_eq!(relative(7300), "in 2 h 1 min");
    }
}
