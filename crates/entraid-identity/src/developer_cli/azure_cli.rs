//! The Azure CLI credential: `az account get-access-token`, its expiry from `expires_on` or the token's `exp`.

use super::*;

const NAME: &str = "AzureCli";

pub(super) static SPEC: Spec = Spec {
    name: NAME,
    program: "az",
    title: "the Azure CLI",
    owner: "the Azure CLI's",
    command: "az account get-access-token",
    token_field: "accessToken",
    login: "az login",
    login_markers: &["az login", "az account set"],
    json_stderr: false,
};

/// The user (or service principal) logged in to the Azure CLI (`az login`).
///
/// ```no_run
/// use entraid_core::IdentityProvider;
/// use entraid_identity::AzureCliCredential;
///
/// # async fn run() -> Result<(), entraid_core::Error> {
/// let credential = AzureCliCredential::new()?;
/// let token = credential.request_token().await?; // runs `az account get-access-token ...`
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AzureCliCredential {
    cli: Cli,
    resource: String,
}

impl AzureCliCredential {
    /// A builder.
    pub fn builder() -> AzureCliCredentialBuilder {
        AzureCliCredentialBuilder::default()
    }

    /// A credential with every setting at its default.
    pub fn new() -> Result<Self, Error> {
        Self::builder().build()
    }

    /// The arguments `az` is run with.
    pub fn arguments(&self) -> Vec<&str> {
        let mut args = vec![
            "account",
            "get-access-token",
            "-o",
            "json",
            "--resource",
            &self.resource,
        ];
        if let Some(tenant) = &self.cli.tenant {
            args.extend(["--tenant", tenant.as_str()]);
        }
        args
    }

    async fn get(&self) -> Result<IdentityProviderResponse, Error> {
        let (parsed, token) = self.cli.run(&self.arguments()).await?;
        let expires_on = az_expiry(&parsed, &token)?;
        Ok(IdentityProviderResponse::access_token(token, expires_on))
    }
}

/// The expiry in the Azure CLI's output: `expires_on` (unix seconds), else the token's `exp` claim (old CLIs'
/// `expiresOn` is local time without an offset; `exp` is the same instant, exactly). Works on any JSON.
pub(super) fn az_expiry(parsed: &serde_json::Value, token: &Secret) -> Result<SystemTime, Error> {
    if let Some(at) = unix_seconds(parsed.get("expires_on")) {
        return Ok(at);
    }
    if parsed.get("expires_on").is_some() {
        tracing::debug!("the Azure CLI's expires_on could not be read (or is out of range)");
    }
    let at = exp_of(token).ok_or_else(|| {
        Error::invalid_response(format!(
            "{NAME}: the Azure CLI's output has no usable expiry (expires_on or expiresOn)"
        ))
    })?;
    if parsed.get("expiresOn").is_some() {
        tracing::debug!(
            "the Azure CLI gave only a local-time expiresOn; using the token's exp claim"
        );
    }
    Ok(at)
}

impl IdentityProvider for AzureCliCredential {
    fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
        Box::pin(async move { self.cli.finish(self.get().await) })
    }

    fn name(&self) -> &str {
        NAME
    }
}

/// Builds an [`AzureCliCredential`]. Defaults: the Redis scope, the CLI's default tenant, `PATH`, 10 s.
#[derive(Debug, Default)]
pub struct AzureCliCredentialBuilder {
    options: ToolOptions,
}

impl AzureCliCredentialBuilder {
    tool_builder_methods!("az login");

    /// Builds the credential, checking the scope and the tenant.
    pub fn build(self) -> Result<AzureCliCredential, Error> {
        let scope = self.options.scope(&SPEC)?;
        let resource = scope.strip_suffix("/.default").unwrap_or(&scope).to_owned();
        check_scope(NAME, &resource)?;
        Ok(AzureCliCredential {
            cli: self.options.cli(&SPEC)?,
            resource,
        })
    }
}

/// Unix seconds (number or string), when a representable time (the lifetime cap is the token's to check).
fn unix_seconds(value: Option<&serde_json::Value>) -> Option<SystemTime> {
    let seconds: u64 = match value? {
        serde_json::Value::Number(n) => n.as_u64()?,
        serde_json::Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    // The same range as every other expiry: up to the end of 9999.
    entraid_core::date::unix_time(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_on_as_number_or_string() {
        let at = UNIX_EPOCH + Duration::from_secs(1_750_170_600);
        assert_eq!(
            unix_seconds(Some(&serde_json::json!(1_750_170_600))),
            Some(at)
        );
        assert_eq!(
            unix_seconds(Some(&serde_json::json!("1750170600"))),
            Some(at)
        );
        assert_eq!(unix_seconds(Some(&serde_json::json!("soon"))), None);
        assert_eq!(unix_seconds(None), None);
    }

    #[test]
    fn arguments_are_exact_and_checked() {
        let c = AzureCliCredential::builder()
            .tenant_id("contoso.onmicrosoft.com")
            .search_path("/nonexistent")
            .build()
            .unwrap();
        assert_eq!(
            c.arguments(),
            [
                "account",
                "get-access-token",
                "-o",
                "json",
                "--resource",
                "https://redis.azure.com",
                "--tenant",
                "contoso.onmicrosoft.com"
            ]
        );
        for bad in [
            "a b",
            "https://x/.default;rm -rf",
            "--debug",
            "$(x)",
            "",
            "x\ny",
        ] {
            let err = AzureCliCredential::builder()
                .scope(bad)
                .build()
                .unwrap_err();
            assert!(matches!(err, Error::Configuration { .. }), "{bad:?}: {err}");
        }
        let err = AzureCliCredential::builder()
            .tenant_id("a;b")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("AzureCli"), "{err}");
    }
}
