//! [`EnvironmentCredential`]: a service principal (or, deprecated, a user) described by `AZURE_*` variables.
//!
//! `AZURE_TENANT_ID` and `AZURE_CLIENT_ID` are required. Then, first match wins: `AZURE_CLIENT_SECRET` (client
//! secret); `AZURE_CLIENT_CERTIFICATE_PATH` (a PEM or PFX file, with `AZURE_CLIENT_CERTIFICATE_PASSWORD`, and the
//! `x5c` chain sent when `AZURE_CLIENT_SEND_CERTIFICATE_CHAIN` is `1` or `true`, any case); `AZURE_USERNAME` with
//! `AZURE_PASSWORD` (the resource-owner password grant, deprecated by Microsoft and refused by MFA).
//! `AZURE_AUTHORITY_HOST` chooses the cloud.

use std::path::PathBuf;

use entraid_core::{BoxFuture, Error, IdentityProvider, IdentityProviderResponse, Secret};

use crate::authority::AuthorityHost;
use crate::certificate::ClientCertificate;
use crate::client_certificate::ClientCertificateCredential;
use crate::client_secret::ClientSecretCredential;
use crate::env::Env;
use crate::http::HttpClient;
use crate::token_endpoint::{ClientProof, CommonBuilder, Grant, TokenEndpointClient};

const NAME: &str = "Environment";

/// How the environment says to authenticate.
#[derive(Debug)]
enum Inner {
    Secret(ClientSecretCredential),
    Certificate(ClientCertificateCredential),
    Password {
        client: TokenEndpointClient,
        username: String,
        password: Secret,
    },
}

/// Which kind of credential the environment described.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvironmentCredentialKind {
    /// `AZURE_CLIENT_SECRET`.
    ClientSecret,
    /// `AZURE_CLIENT_CERTIFICATE_PATH`.
    ClientCertificate,
    /// `AZURE_USERNAME` + `AZURE_PASSWORD` (deprecated).
    UsernamePassword,
}

/// A credential configured by environment variables (see the module documentation for the precedence).
///
/// ```
/// use entraid_identity::{Env, EnvironmentCredential, EnvironmentCredentialKind};
///
/// let env = Env::from_map([
///     ("AZURE_TENANT_ID", "contoso.onmicrosoft.com"),
///     ("AZURE_CLIENT_ID", "00000000-0000-0000-0000-000000000001"),
///     ("AZURE_CLIENT_SECRET", "s3cr3t"),
///     ("AZURE_USERNAME", "ignored@contoso.com"),
///     ("AZURE_PASSWORD", "ignored"),
/// ]);
/// let credential = EnvironmentCredential::builder().env(env).build().unwrap();
/// assert_eq!(credential.kind(), EnvironmentCredentialKind::ClientSecret);
/// assert!(!format!("{credential:?}").contains("s3cr3t"));
/// ```
#[derive(Debug)]
pub struct EnvironmentCredential {
    inner: Inner,
}

impl EnvironmentCredential {
    /// A builder.
    pub fn builder() -> EnvironmentCredentialBuilder {
        EnvironmentCredentialBuilder::default()
    }

    /// A credential from the process environment.
    pub fn from_env() -> Result<Self, Error> {
        Self::builder().build()
    }

    /// Which kind of credential the environment described.
    pub fn kind(&self) -> EnvironmentCredentialKind {
        match &self.inner {
            Inner::Secret(_) => EnvironmentCredentialKind::ClientSecret,
            Inner::Certificate(_) => EnvironmentCredentialKind::ClientCertificate,
            Inner::Password { .. } => EnvironmentCredentialKind::UsernamePassword,
        }
    }
}

impl IdentityProvider for EnvironmentCredential {
    fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
        match &self.inner {
            Inner::Secret(credential) => credential.request_token(),
            Inner::Certificate(credential) => credential.request_token(),
            Inner::Password {
                client,
                username,
                password,
            } => Box::pin(async move {
                let response = client
                    .request_grant(Grant::Password { username, password }, ClientProof::None)
                    .await?;
                Ok(response.into())
            }),
        }
    }

    fn name(&self) -> &str {
        NAME
    }
}

/// Builds an [`EnvironmentCredential`]. Defaults: the process environment, the Redis scope, the shared HTTP
/// client.
#[derive(Debug, Default)]
pub struct EnvironmentCredentialBuilder {
    env: Option<Env>,
    scope: Option<String>,
    http: Option<HttpClient>,
    authority_host: Option<AuthorityHost>,
}

impl EnvironmentCredentialBuilder {
    /// Where environment variables are read from. Default: the process environment.
    pub fn env(mut self, env: Env) -> Self {
        self.env = Some(env);
        self
    }

    /// The scope. Default `https://redis.azure.com/.default`.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The HTTP client. Default: [`HttpClient::shared_default`].
    pub fn http_client(mut self, http: HttpClient) -> Self {
        self.http = Some(http);
        self
    }

    /// The cloud, overriding `AZURE_AUTHORITY_HOST`.
    pub fn authority_host(mut self, host: AuthorityHost) -> Self {
        self.authority_host = Some(host);
        self
    }

    /// Reads the environment and builds the credential. Missing variables give
    /// [`Error::CredentialUnavailable`]; present but unusable ones (an unreadable certificate file, a bad tenant)
    /// give [`Error::Configuration`].
    pub fn build(self) -> Result<EnvironmentCredential, Error> {
        let env = self.env.unwrap_or_default();
        let (Some(tenant_id), Some(client_id)) =
            (env.get("AZURE_TENANT_ID"), env.get("AZURE_CLIENT_ID"))
        else {
            let missing: Vec<&str> = ["AZURE_TENANT_ID", "AZURE_CLIENT_ID"]
                .into_iter()
                .filter(|v| !env.has(v))
                .collect();
            return Err(Error::unavailable(
                NAME,
                format!(
                    "{} not set (set them with AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH to use a \
                     service principal)",
                    missing.join(" and ")
                ),
            ));
        };
        #[allow(
            clippy::needless_update,
            reason = "CommonBuilder has more fields with some features"
        )]
        let common = CommonBuilder {
            tenant_id: Some(tenant_id),
            client_id: Some(client_id),
            authority: None,
            authority_host: self.authority_host,
            scope: self.scope,
            http: self.http,
            env: Some(env.clone()),
            ..CommonBuilder::default()
        };
        let inner = if let Some(secret) = env.get("AZURE_CLIENT_SECRET") {
            let mut builder = ClientSecretCredential::builder().secret(Secret::new(secret));
            builder.common = common;
            Inner::Secret(builder.build()?)
        } else if let Some(path) = env.get("AZURE_CLIENT_CERTIFICATE_PATH") {
            let password = env
                .get("AZURE_CLIENT_CERTIFICATE_PASSWORD")
                .map(Secret::new);
            let certificate = ClientCertificate::from_file(PathBuf::from(&path), password.as_ref())
                .map_err(|e| match e {
                    Error::Configuration { message } => Error::configuration(format!(
                        "{NAME}: AZURE_CLIENT_CERTIFICATE_PATH: {message}"
                    )),
                    other => other,
                })?;
            let send_chain = env
                .get("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN")
                .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
            let mut builder = ClientCertificateCredential::builder()
                .certificate(certificate)
                .send_certificate_chain(send_chain);
            builder.common = common;
            Inner::Certificate(builder.build()?)
        } else if let (Some(username), Some(password)) =
            (env.get("AZURE_USERNAME"), env.get("AZURE_PASSWORD"))
        {
            tracing::warn!(
                "EnvironmentCredential: using AZURE_USERNAME/AZURE_PASSWORD (the deprecated password grant)"
            );
            Inner::Password {
                client: common.build(NAME)?,
                username,
                password: Secret::new(password),
            }
        } else {
            return Err(Error::unavailable(
                NAME,
                "set AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH, or AZURE_USERNAME and AZURE_PASSWORD",
            ));
        };
        Ok(EnvironmentCredential { inner })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http() -> HttpClient {
        HttpClient::new(crate::HttpOptions::new().native_roots(false)).unwrap()
    }

    fn build(vars: &[(&str, &str)]) -> Result<EnvironmentCredential, Error> {
        EnvironmentCredential::builder()
            .env(Env::from_map(vars.iter().copied()))
            .http_client(http())
            .build()
    }

    const IDS: [(&str, &str); 2] = [("AZURE_TENANT_ID", "t"), ("AZURE_CLIENT_ID", "c")];

    #[test]
    fn precedence_secret_then_certificate_then_password() {
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut vars = IDS.to_vec();
            vars.extend_from_slice(extra);
            build(&vars)
        };
        let all = [
            ("AZURE_CLIENT_SECRET", "s"),
            ("AZURE_CLIENT_CERTIFICATE_PATH", "/nonexistent.pem"),
            ("AZURE_USERNAME", "u"),
            ("AZURE_PASSWORD", "p"),
        ];
        assert_eq!(
            with(&all).unwrap().kind(),
            EnvironmentCredentialKind::ClientSecret
        );
        // The certificate comes next: an unreadable file is a configuration error naming the variable.
        let err = with(&all[1..]).unwrap_err();
        assert!(matches!(err, Error::Configuration { .. }), "{err}");
        assert!(
            err.to_string().contains("AZURE_CLIENT_CERTIFICATE_PATH"),
            "{err}"
        );
        assert_eq!(
            with(&all[2..]).unwrap().kind(),
            EnvironmentCredentialKind::UsernamePassword
        );
        let err = with(&all[2..3]).unwrap_err();
        assert!(
            err.is_unavailable() && err.to_string().contains("AZURE_CLIENT_SECRET"),
            "{err}"
        );
    }

    #[test]
    fn tenant_and_client_are_required() {
        let err = build(&[("AZURE_CLIENT_SECRET", "s")]).unwrap_err();
        assert!(err.is_unavailable(), "{err}");
        assert!(
            err.to_string()
                .contains("AZURE_TENANT_ID and AZURE_CLIENT_ID"),
            "{err}"
        );
        let err = build(&[("AZURE_TENANT_ID", "t"), ("AZURE_CLIENT_SECRET", "s")]).unwrap_err();
        assert!(err.to_string().contains("AZURE_CLIENT_ID not set"), "{err}");
        let err = build(&[
            ("AZURE_TENANT_ID", "common"),
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_CLIENT_SECRET", "s"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("name the tenant"), "{err}");
    }
}
