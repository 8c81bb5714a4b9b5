//! OpenID Connect discovery: [`OidcDiscovery`] reads `{authority}/v2.0/.well-known/openid-configuration` and
//! caches the [`OpenIdConfiguration`] per authority.
//!
//! Entra ID's endpoints follow a fixed pattern (`{authority}/oauth2/v2.0/token`, ...), so the flows only need
//! discovery for authorities that may not: a custom authority URL (AD FS, a B2C policy, a private cloud). The user
//! flows use it for [`AuthorityKind::Custom`](crate::AuthorityKind::Custom) authorities by default, and for any
//! authority when a builder is given an [`OidcDiscovery`]. Every endpoint the document names must be HTTPS (or HTTP
//! on a loopback address); a failed discovery is not cached.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use entraid_core::Error;
use reqwest::Url;
use serde::Deserialize;

use crate::authority::{Authority, checked_url};
use crate::http::{HttpClient, Request};

const NAME: &str = "OidcDiscovery";

/// The parts of an OpenID Connect discovery document the flows use.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenIdConfiguration {
    /// The token endpoint.
    pub token_endpoint: Url,
    /// The authorization endpoint (browser sign-in), when the document names one.
    pub authorization_endpoint: Option<Url>,
    /// The device authorization endpoint (device code flow), when the document names one.
    pub device_authorization_endpoint: Option<Url>,
    /// The signing keys' URL, when the document names one.
    pub jwks_uri: Option<Url>,
    /// The issuer, with a `{tenant}` / `{tenantid}` placeholder replaced by the authority's tenant.
    pub issuer: Option<String>,
}

#[derive(Deserialize)]
struct RawConfiguration {
    token_endpoint: Option<String>,
    authorization_endpoint: Option<String>,
    device_authorization_endpoint: Option<String>,
    jwks_uri: Option<String>,
    issuer: Option<String>,
}

impl OpenIdConfiguration {
    /// Reads a discovery document, checking every endpoint it names.
    pub fn from_json(body: &[u8], tenant: &str) -> Result<Self, Error> {
        let raw: RawConfiguration = serde_json::from_slice(body).map_err(|e| {
            Error::invalid_response(format!(
                "{NAME}: the discovery document is not the expected JSON object (line {} column {})",
                e.line(),
                e.column()
            ))
        })?;
        let endpoint = |value: Option<String>, what: &str| -> Result<Option<Url>, Error> {
            value
                .map(|v| {
                    checked_url(&v, what).map_err(|e| {
                        Error::invalid_response(format!("{NAME}: the discovery document's {e}"))
                    })
                })
                .transpose()
        };
        let token_endpoint = endpoint(raw.token_endpoint, "token_endpoint")?.ok_or_else(|| {
            Error::invalid_response(format!(
                "{NAME}: the discovery document has no token_endpoint"
            ))
        })?;
        Ok(Self {
            token_endpoint,
            authorization_endpoint: endpoint(raw.authorization_endpoint, "authorization_endpoint")?,
            device_authorization_endpoint: endpoint(
                raw.device_authorization_endpoint,
                "device_authorization_endpoint",
            )?,
            jwks_uri: endpoint(raw.jwks_uri, "jwks_uri")?,
            issuer: raw
                .issuer
                .map(|i| i.replace("{tenantid}", tenant).replace("{tenant}", tenant)),
        })
    }
}

/// A cache of discovery documents, one per authority URL. Cheap to clone; clones share the cache.
///
/// ```
/// use entraid_identity::OidcDiscovery;
///
/// let private = OidcDiscovery::new(); // its own cache
/// let shared = OidcDiscovery::shared(); // the process-wide cache the flows use by default
/// assert!(private.is_empty());
/// # let _ = shared;
/// ```
#[derive(Clone, Default)]
pub struct OidcDiscovery {
    cache: Arc<Mutex<HashMap<String, Arc<OpenIdConfiguration>>>>,
}

impl fmt::Debug for OidcDiscovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcDiscovery")
            .field("cached", &self.len())
            .finish()
    }
}

impl OidcDiscovery {
    /// An empty cache of its own.
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide cache.
    pub fn shared() -> Self {
        static SHARED: OnceLock<OidcDiscovery> = OnceLock::new();
        SHARED.get_or_init(OidcDiscovery::new).clone()
    }

    /// How many authorities are cached.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<OpenIdConfiguration>>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The authority's configuration: from the cache, else fetched (and cached when it is valid).
    pub async fn get(
        &self,
        http: &HttpClient,
        authority: &Authority,
    ) -> Result<Arc<OpenIdConfiguration>, Error> {
        if let Some(found) = self.lock().get(authority.url()) {
            return Ok(found.clone());
        }
        let url = authority.openid_configuration_url();
        let response = http.send(Request::get(NAME, url)).await?;
        if !response.is_success() {
            return Err(response.error(NAME));
        }
        let configuration = Arc::new(OpenIdConfiguration::from_json(
            &response.body,
            authority.tenant().as_str(),
        )?);
        tracing::debug!(
            authority = authority.url(),
            token_endpoint = %configuration.token_endpoint,
            "OpenID Connect configuration discovered"
        );
        self.lock()
            .insert(authority.url().to_owned(), configuration.clone());
        Ok(configuration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_seed_document_and_replaces_the_tenant_placeholder() {
        let body = br#"{
          "authorization_endpoint": "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize",
          "token_endpoint": "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
          "jwks_uri": "https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys",
          "issuer": "https://login.microsoftonline.com/{tenant}/v2.0",
          "device_authorization_endpoint": "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/devicecode",
          "tenant_region_scope": null
        }"#;
        let c = OpenIdConfiguration::from_json(body, "contoso").unwrap();
        assert_eq!(
            c.issuer.as_deref(),
            Some("https://login.microsoftonline.com/contoso/v2.0")
        );
        assert!(c.token_endpoint.as_str().ends_with("/oauth2/v2.0/token"));
        assert!(c.device_authorization_endpoint.is_some());
        assert!(c.authorization_endpoint.is_some() && c.jwks_uri.is_some());
    }

    #[test]
    fn refuses_documents_without_a_usable_token_endpoint() {
        for (body, expected) in [
            (&b"{}"[..], "no token_endpoint"),
            (b"[1]", "expected JSON"),
            (b"<html>", "expected JSON"),
            (
                br#"{"token_endpoint":"http://evil.example/token"}"#,
                "must use HTTPS",
            ),
            (
                br#"{"token_endpoint":"https://ok.example/t","device_authorization_endpoint":"ftp://x"}"#,
                "must use HTTPS",
            ),
        ] {
            let err = OpenIdConfiguration::from_json(body, "t").unwrap_err();
            assert!(matches!(err, Error::InvalidResponse { .. }), "{err}");
            assert!(err.to_string().contains(expected), "{err}");
        }
    }
}
