//! Where Entra ID lives: [`AuthorityHost`] (the cloud), [`TenantId`], and [`Authority`] (host + tenant), with the
//! three authority types of go-redis-entraid: single tenant (the default), multi-tenant and custom.
//!
//! The host comes from an explicit option, else `AZURE_AUTHORITY_HOST`, else the public cloud. HTTPS is required,
//! except for loopback addresses (a local emulator). Tenant ids are checked to hold only `[0-9A-Za-z.-]`.

use std::fmt;
use std::net::IpAddr;

use entraid_core::Error;
use reqwest::Url;

use crate::env::Env;

/// The environment variable naming the authority host (`https://login.microsoftonline.us`, ...).
pub const AZURE_AUTHORITY_HOST: &str = "AZURE_AUTHORITY_HOST";

/// The Entra ID cloud to talk to.
///
/// ```
/// use entraid_identity::AuthorityHost;
///
/// assert_eq!(AuthorityHost::UsGovernment.as_str(), "https://login.microsoftonline.us/");
/// let local = AuthorityHost::custom("https://127.0.0.1:8443").unwrap();
/// assert_eq!(local.as_str(), "https://127.0.0.1:8443/");
/// assert_eq!(local.url().unwrap().as_str(), "https://127.0.0.1:8443/");
/// assert!(AuthorityHost::custom("http://login.example.com").is_err()); // HTTPS required off loopback
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AuthorityHost {
    /// Azure public cloud: `https://login.microsoftonline.com`.
    #[default]
    Public,
    /// Azure US Government: `https://login.microsoftonline.us`.
    UsGovernment,
    /// Azure operated by 21Vianet (China): `https://login.chinacloudapi.cn`.
    China,
    /// Any other host (sovereign or private clouds, AD FS, an emulator). Build with [`AuthorityHost::custom`].
    Custom(Url),
}

impl AuthorityHost {
    /// The host's base URL as text, ending in `/`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Public => "https://login.microsoftonline.com/",
            Self::UsGovernment => "https://login.microsoftonline.us/",
            Self::China => "https://login.chinacloudapi.cn/",
            Self::Custom(url) => url.as_str(),
        }
    }

    /// The host's base URL, ending in `/`, parsed.
    pub fn url(&self) -> Result<Url, Error> {
        match self {
            Self::Custom(url) => Ok(url.clone()),
            known => checked_url(known.as_str(), "authority host"),
        }
    }

    /// A host from its URL. Well-known clouds map to their variants. The URL must be HTTPS (HTTP only for
    /// loopback addresses), without credentials, query or fragment; a path prefix is kept.
    pub fn custom(url: &str) -> Result<Self, Error> {
        let mut parsed = checked_url(url, "authority host")?;
        if !parsed.path().ends_with('/') {
            let path = format!("{}/", parsed.path());
            parsed.set_path(&path);
        }
        for known in [Self::Public, Self::UsGovernment, Self::China] {
            if known.as_str() == parsed.as_str() {
                return Ok(known);
            }
        }
        if parsed.as_str() == "https://login.partner.microsoftonline.cn/" {
            return Ok(Self::China);
        }
        Ok(Self::Custom(parsed))
    }

    /// The host named by `AZURE_AUTHORITY_HOST`, if set.
    pub fn from_env(env: &Env) -> Result<Option<Self>, Error> {
        env.get(AZURE_AUTHORITY_HOST)
            .map(|value| {
                Self::custom(&value).map_err(|e| {
                    Error::configuration(format!("{AZURE_AUTHORITY_HOST}: {}", inner_message(&e)))
                })
            })
            .transpose()
    }

    /// The explicit host, else `AZURE_AUTHORITY_HOST`, else the public cloud.
    pub fn resolve(explicit: Option<&AuthorityHost>, env: &Env) -> Result<Self, Error> {
        match explicit {
            Some(host) => Ok(host.clone()),
            None => Ok(Self::from_env(env)?.unwrap_or_default()),
        }
    }
}

fn inner_message(error: &Error) -> String {
    match error {
        Error::Configuration { message } => message.clone(),
        other => other.to_string(),
    }
}

/// Parses a URL that identity requests may be sent to: HTTPS, or HTTP on a loopback address; no query.
pub(crate) fn checked_url(text: &str, what: &str) -> Result<Url, Error> {
    let url = checked_url_with_query(text, what)?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::configuration(format!(
            "the {what} `{url}` must not have a query or fragment"
        )));
    }
    Ok(url)
}

/// Parses a URL that identity requests may be sent to: HTTPS, or HTTP on a loopback address; a query is allowed
/// (it is kept), a fragment is not.
pub(crate) fn checked_url_with_query(text: &str, what: &str) -> Result<Url, Error> {
    let url = Url::parse(text.trim())
        .map_err(|e| Error::configuration(format!("the {what} `{text}` is not a URL: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::configuration(format!(
            "the {what} must not hold credentials"
        )));
    }
    if url.fragment().is_some() {
        return Err(Error::configuration(format!(
            "the {what} `{url}` must not have a fragment"
        )));
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        _ => {
            return Err(Error::configuration(format!(
                "the {what} `{url}` must use HTTPS (plain HTTP is allowed only for loopback addresses)"
            )));
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::configuration(format!(
            "the {what} `{url}` has no host"
        )));
    }
    Ok(url)
}

/// Whether the URL's host is `localhost` or a loopback IP address.
pub(crate) fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// A tenant: a directory id (GUID) or a verified domain (`contoso.onmicrosoft.com`), or one of the aliases
/// `common`, `organizations`, `consumers`.
///
/// ```
/// use entraid_identity::TenantId;
///
/// assert!(TenantId::new("72f988bf-86f1-41af-91ab-2d7cd011db47").is_ok());
/// assert!(TenantId::new("contoso.onmicrosoft.com").is_ok());
/// assert!(TenantId::new("common").unwrap().is_alias());
/// assert!(TenantId::new("../evil").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TenantId(String);

impl TenantId {
    /// Checks a tenant id: 1 to 256 characters of `[0-9A-Za-z.-]`.
    pub fn new(tenant: impl Into<String>) -> Result<Self, Error> {
        let tenant = tenant.into();
        if tenant.is_empty() {
            return Err(Error::configuration(
                "the tenant id is empty; set it to your directory (tenant) id, for example with AZURE_TENANT_ID",
            ));
        }
        if tenant.len() > 256
            || !tenant
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            return Err(Error::configuration(
                "the tenant id may hold only letters, digits, `.` and `-` (a directory id or a domain)",
            ));
        }
        Ok(Self(tenant))
    }

    /// The tenant id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is `common`, `organizations` or `consumers` rather than a real tenant.
    pub fn is_alias(&self) -> bool {
        ["common", "organizations", "consumers"]
            .iter()
            .any(|alias| self.0.eq_ignore_ascii_case(alias))
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The authority types of go-redis-entraid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthorityKind {
    /// The default: one tenant, on a known or custom host.
    SingleTenant,
    /// A multi-tenant application (the tenant may be `common` or `organizations` for user flows; client
    /// credentials still need the tenant that holds the resource).
    MultiTenant,
    /// A full authority URL.
    Custom,
}

/// An Entra ID authority: a host and a tenant. The token endpoint is `{authority}/oauth2/v2.0/token`.
///
/// ```
/// use entraid_identity::{Authority, AuthorityHost};
///
/// let a = Authority::single_tenant(AuthorityHost::Public, "contoso.onmicrosoft.com").unwrap();
/// assert_eq!(a.token_endpoint().as_str(),
///     "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token");
///
/// // Custom, as the Go README writes it: `{AZURE_AUTHORITY_HOST}/{tenant}/v2.0`.
/// let c = Authority::custom("https://login.microsoftonline.us/contoso.onmicrosoft.com/v2.0").unwrap();
/// assert_eq!(c.tenant().as_str(), "contoso.onmicrosoft.com");
/// assert_eq!(c.token_endpoint().as_str(),
///     "https://login.microsoftonline.us/contoso.onmicrosoft.com/oauth2/v2.0/token");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    /// The authority URL, ending with the tenant (no trailing `/`).
    base: String,
    tenant: TenantId,
    kind: AuthorityKind,
    /// The endpoints under `base`, parsed once when the authority is made.
    endpoints: Endpoints,
}

/// An authority's endpoints, each parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoints {
    token: Url,
    device_code: Url,
    authorize: Url,
    openid_configuration: Url,
}

impl Endpoints {
    /// The endpoints under an authority URL (`https://host[/prefix]/<tenant>`).
    fn under(base: &str) -> Result<Self, Error> {
        let parse = |path: &str| {
            Url::parse(&format!("{base}{path}")).map_err(|e| {
                Error::configuration(format!("the authority `{base}` makes no valid URL: {e}"))
            })
        };
        Ok(Self {
            token: parse("/oauth2/v2.0/token")?,
            device_code: parse("/oauth2/v2.0/devicecode")?,
            authorize: parse("/oauth2/v2.0/authorize")?,
            openid_configuration: parse("/v2.0/.well-known/openid-configuration")?,
        })
    }
}

impl Authority {
    /// A single-tenant authority (the default type).
    pub fn single_tenant(host: AuthorityHost, tenant: &str) -> Result<Self, Error> {
        Self::on_host(host, tenant, AuthorityKind::SingleTenant)
    }

    /// A multi-tenant authority.
    pub fn multi_tenant(host: AuthorityHost, tenant: &str) -> Result<Self, Error> {
        Self::on_host(host, tenant, AuthorityKind::MultiTenant)
    }

    fn on_host(host: AuthorityHost, tenant: &str, kind: AuthorityKind) -> Result<Self, Error> {
        let tenant = TenantId::new(tenant)?;
        let base = format!("{}{}", host.as_str(), tenant);
        Ok(Self {
            endpoints: Endpoints::under(&base)?,
            base,
            tenant,
            kind,
        })
    }

    /// A custom authority from its full URL, `https://host[/prefix]/{tenant}` with an optional trailing `/v2.0`.
    /// The last path segment is the tenant.
    pub fn custom(url: &str) -> Result<Self, Error> {
        let parsed = checked_url(url, "authority")?;
        let mut text = parsed.as_str().trim_end_matches('/').to_owned();
        if let Some(stripped) = text.strip_suffix("/v2.0") {
            text = stripped.to_owned();
        }
        let (_, last) = text.rsplit_once('/').unwrap_or(("", ""));
        if last.is_empty() || last.contains(':') || Url::parse(&text).is_ok_and(|u| u.path() == "/")
        {
            return Err(Error::configuration(format!(
                "the authority `{url}` names no tenant; write it as https://host/<tenant>"
            )));
        }
        let tenant = TenantId::new(last)?;
        Ok(Self {
            endpoints: Endpoints::under(&text)?,
            base: text,
            tenant,
            kind: AuthorityKind::Custom,
        })
    }

    /// The tenant.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The authority type.
    pub fn kind(&self) -> AuthorityKind {
        self.kind
    }

    /// The authority URL (`https://login.microsoftonline.com/<tenant>`).
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The OAuth 2.0 v2 token endpoint.
    pub fn token_endpoint(&self) -> Url {
        self.endpoints.token.clone()
    }

    /// The device authorization endpoint (`{authority}/oauth2/v2.0/devicecode`).
    pub fn device_code_endpoint(&self) -> Url {
        self.endpoints.device_code.clone()
    }

    /// The authorization endpoint browsers are sent to (`{authority}/oauth2/v2.0/authorize`).
    pub fn authorize_endpoint(&self) -> Url {
        self.endpoints.authorize.clone()
    }

    /// The OpenID Connect discovery document (`{authority}/v2.0/.well-known/openid-configuration`).
    pub fn openid_configuration_url(&self) -> Url {
        self.endpoints.openid_configuration.clone()
    }

    /// Client credentials need a real tenant: `common`, `organizations` and `consumers` are refused.
    pub(crate) fn require_real_tenant(&self, credential: &str) -> Result<(), Error> {
        if self.tenant.is_alias() {
            return Err(Error::configuration(format!(
                "{credential}: the tenant `{}` cannot be used with client credentials; name the tenant \
                 (directory) id or domain that holds the Redis resource, for example with AZURE_TENANT_ID",
                self.tenant
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(AuthorityHost::default(), AuthorityHost::Public);
        assert_eq!(
            AuthorityHost::China.url().unwrap().as_str(),
            "https://login.chinacloudapi.cn/"
        );
        for known in [
            AuthorityHost::Public,
            AuthorityHost::UsGovernment,
            AuthorityHost::China,
        ] {
            assert_eq!(known.url().unwrap().as_str(), known.as_str());
        }
        assert_eq!(
            AuthorityHost::custom("https://login.microsoftonline.us").unwrap(),
            AuthorityHost::UsGovernment
        );
        assert_eq!(
            AuthorityHost::custom("https://login.partner.microsoftonline.cn/").unwrap(),
            AuthorityHost::China
        );
        for ok in [
            "http://localhost:8080",
            "http://127.0.0.5:1",
            "http://[::1]:99/",
            "https://adfs.contoso.com/adfs",
        ] {
            assert!(AuthorityHost::custom(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            AuthorityHost::custom("https://adfs.contoso.com/adfs")
                .unwrap()
                .as_str(),
            "https://adfs.contoso.com/adfs/"
        );
        for bad in [
            "http://login.microsoftonline.com",
            "http://10.0.0.1",
            "ftp://x",
            "not a url",
            "https://user:pw@login.microsoftonline.com",
            "https://login.microsoftonline.com/?x=1",
            "https://login.microsoftonline.com/#f",
        ] {
            let err = AuthorityHost::custom(bad).unwrap_err();
            assert!(matches!(err, Error::Configuration { .. }), "{bad}: {err}");
            assert!(!err.to_string().contains("pw@"), "{err}");
        }
    }

    #[test]
    fn host_precedence_explicit_then_env_then_public() {
        let env = Env::from_map([(AZURE_AUTHORITY_HOST, "https://login.microsoftonline.us/")]);
        assert_eq!(
            AuthorityHost::resolve(None, &env).unwrap(),
            AuthorityHost::UsGovernment
        );
        assert_eq!(
            AuthorityHost::resolve(Some(&AuthorityHost::China), &env).unwrap(),
            AuthorityHost::China
        );
        assert_eq!(
            AuthorityHost::resolve(None, &Env::from_map::<&str, &str>([])).unwrap(),
            AuthorityHost::Public
        );
        let bad = Env::from_map([(AZURE_AUTHORITY_HOST, "http://evil.example")]);
        let err = AuthorityHost::resolve(None, &bad).unwrap_err();
        assert!(err.to_string().contains("AZURE_AUTHORITY_HOST"), "{err}");
    }

    #[test]
    fn tenants() {
        for ok in [
            "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "contoso.onmicrosoft.com",
            "a",
        ] {
            assert!(TenantId::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/b", "a b", "tenant?x", "%2e%2e", "ten\nant", "é"] {
            assert!(TenantId::new(bad).is_err(), "{bad:?}");
        }
        assert!(TenantId::new("x".repeat(257)).is_err());
        for alias in ["common", "Organizations", "consumers"] {
            assert!(TenantId::new(alias).unwrap().is_alias());
        }
        assert!(!TenantId::new("contoso").unwrap().is_alias());
    }

    #[test]
    fn authorities() {
        let a = Authority::multi_tenant(AuthorityHost::China, "t1").unwrap();
        assert_eq!(a.kind(), AuthorityKind::MultiTenant);
        assert_eq!(a.url(), "https://login.chinacloudapi.cn/t1");
        let local = AuthorityHost::custom("https://127.0.0.1:4443/prefix").unwrap();
        let a = Authority::single_tenant(local, "t2").unwrap();
        assert_eq!(
            a.token_endpoint().as_str(),
            "https://127.0.0.1:4443/prefix/t2/oauth2/v2.0/token"
        );
        let c = Authority::custom("https://login.example.com/t3/").unwrap();
        assert_eq!(c.kind(), AuthorityKind::Custom);
        assert_eq!(c.tenant().as_str(), "t3");
        for bad in [
            "https://login.example.com",
            "https://login.example.com/",
            "https://login.example.com/v2.0",
            "https://login.example.com/a%20b",
            "http://login.example.com/t",
        ] {
            assert!(Authority::custom(bad).is_err(), "{bad}");
        }
        let common = Authority::multi_tenant(AuthorityHost::Public, "common").unwrap();
        let err = common.require_real_tenant("ClientSecret").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("`common`") && text.contains("name the tenant"),
            "{text}"
        );
        assert!(a.require_real_tenant("ClientSecret").is_ok());
    }
}
