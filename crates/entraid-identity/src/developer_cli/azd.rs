//! The Azure Developer CLI credential: `azd auth token`, its expiry from the RFC 3339 `expiresOn`.

use super::*;

const NAME: &str = "AzureDeveloperCli";

pub(super) static SPEC: Spec = Spec {
    name: NAME,
    program: "azd",
    title: "the Azure Developer CLI",
    owner: "azd's",
    command: "azd auth token",
    token_field: "token",
    login: "azd auth login",
    login_markers: &["azd auth login"],
    json_stderr: true,
};

/// The user logged in to the Azure Developer CLI (`azd auth login`).
///
/// ```
/// use entraid_identity::AzureDeveloperCliCredential;
///
/// let credential = AzureDeveloperCliCredential::builder().tenant_id("contoso.onmicrosoft.com").build().unwrap();
/// assert_eq!(
///     credential.arguments(),
///     ["auth", "token", "-o", "json", "--no-prompt", "--scope", "https://redis.azure.com/.default",
///      "--tenant-id", "contoso.onmicrosoft.com"]
/// );
/// ```
#[derive(Debug)]
pub struct AzureDeveloperCliCredential {
    cli: Cli,
    scope: String,
}

impl AzureDeveloperCliCredential {
    /// A builder.
    pub fn builder() -> AzureDeveloperCliCredentialBuilder {
        AzureDeveloperCliCredentialBuilder::default()
    }

    /// A credential with every setting at its default.
    pub fn new() -> Result<Self, Error> {
        Self::builder().build()
    }

    /// The arguments `azd` is run with.
    pub fn arguments(&self) -> Vec<&str> {
        let mut args = vec![
            "auth",
            "token",
            "-o",
            "json",
            "--no-prompt",
            "--scope",
            &self.scope,
        ];
        if let Some(tenant) = &self.cli.tenant {
            args.extend(["--tenant-id", tenant.as_str()]);
        }
        args
    }

    async fn get(&self) -> Result<IdentityProviderResponse, Error> {
        let (parsed, token) = self.cli.run(&self.arguments()).await?;
        let expires_on = azd_expiry(&parsed, &token)?;
        Ok(IdentityProviderResponse::access_token(token, expires_on))
    }
}

/// The expiry in azd's output: the RFC 3339 `expiresOn`, else the token's `exp` claim (with a DEBUG note).
/// Works on any JSON.
pub(super) fn azd_expiry(parsed: &serde_json::Value, token: &Secret) -> Result<SystemTime, Error> {
    if let Some(at) = parsed
        .get("expiresOn")
        .and_then(|v| v.as_str())
        .and_then(parse_expires_on)
    {
        return Ok(at);
    }
    let at = exp_of(token).ok_or_else(|| {
        Error::invalid_response(format!(
            "{NAME}: azd's output has no RFC 3339 expiresOn (and the token no exp claim)"
        ))
    })?;
    tracing::debug!("azd's expiresOn could not be read; using the token's exp claim");
    Ok(at)
}

impl IdentityProvider for AzureDeveloperCliCredential {
    fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
        Box::pin(async move { self.cli.finish(self.get().await) })
    }

    fn name(&self) -> &str {
        NAME
    }
}

/// Builds an [`AzureDeveloperCliCredential`]. Defaults: the Redis scope, azd's default tenant, `PATH`, 10 s.
#[derive(Debug, Default)]
pub struct AzureDeveloperCliCredentialBuilder {
    options: ToolOptions,
}

impl AzureDeveloperCliCredentialBuilder {
    tool_builder_methods!("azd auth login");

    /// Builds the credential, checking the scope and the tenant.
    pub fn build(self) -> Result<AzureDeveloperCliCredential, Error> {
        Ok(AzureDeveloperCliCredential {
            scope: self.options.scope(&SPEC)?,
            cli: self.options.cli(&SPEC)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_azd_json_error_lines() {
        let stderr = "{\"type\":\"consoleMessage\",\"timestamp\":\"2025-06-17T10:30:00Z\",\"data\":{\"message\":\"\\nERROR: fetching token: not logged in, run `azd auth login` to login\\n\"}}\n";
        let err = classify(
            &SPEC,
            &Output {
                stdout: Vec::new(),
                stderr: stderr.to_owned(),
                code: Some(1),
            },
        );
        assert!(
            err.is_unavailable() && err.to_string().contains("`azd auth login`"),
            "{err}"
        );
    }
}
