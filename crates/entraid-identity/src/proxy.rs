//! [`ProxyOptions`]: the HTTPS proxy identity requests to token endpoints may go through (never managed identity).

use std::fmt;

use entraid_core::Error;
use reqwest::Url;

use crate::env::Env;

/// The proxy for identity requests to HTTPS endpoints (token endpoints, discovery, federated-token issuers).
///
/// Only HTTPS requests go through it (as a `CONNECT` tunnel, so the proxy never sees the request); plain-HTTP
/// requests and hosts matched by the no-proxy list go directly, and managed identity endpoints (IMDS, App
/// Service, Arc, Cloud Shell, Azure ML, Service Fabric) never use it. The proxy URL may carry
/// `user:password@` (sent as `Proxy-Authorization: Basic`); `Debug` never shows it.
///
/// ```
/// use entraid_identity::{Env, ProxyOptions};
///
/// let explicit = ProxyOptions::https("http://proxy.contoso.com:3128")?.no_proxy("localhost, .internal");
/// assert!(explicit.is_enabled());
///
/// let env = Env::from_map([("HTTPS_PROXY", "proxy.contoso.com:3128"), ("NO_PROXY", "login.internal")]);
/// let from_env = ProxyOptions::from_env(&env)?;
/// assert!(from_env.is_enabled());
/// assert!(!ProxyOptions::from_env(&Env::from_map::<&str, &str>([]))?.is_enabled());
/// # Ok::<(), entraid_core::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct ProxyOptions {
    https: Option<Url>,
    no_proxy: Option<String>,
}

impl fmt::Debug for ProxyOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password: only where it points is shown.
        let proxy = self.https.as_ref().map(|url| {
            format!(
                "{}://{}:{}",
                url.scheme(),
                url.host_str().unwrap_or(""),
                url.port_or_known_default().unwrap_or(0)
            )
        });
        f.debug_struct("ProxyOptions")
            .field("https", &proxy)
            .field(
                "credentials",
                &self
                    .https
                    .as_ref()
                    .is_some_and(|u| !u.username().is_empty() || u.password().is_some()),
            )
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

impl ProxyOptions {
    /// No proxy: every request goes directly (the default).
    pub fn none() -> Self {
        Self::default()
    }

    /// HTTPS requests go through the proxy at `url` (`http://host:port`, `https://host:port`, or `host:port`,
    /// which means `http://`). Fails on anything else, without repeating the URL (it may hold a password).
    pub fn https(url: &str) -> Result<Self, Error> {
        Ok(Self {
            https: Some(parse_proxy_url(url, "the HTTPS proxy")?),
            no_proxy: None,
        })
    }

    /// Hosts reached directly, `NO_PROXY` style: comma-separated host names (each matching its subdomains too;
    /// a leading dot is allowed), IP addresses or CIDR ranges, or `*` for every host.
    pub fn no_proxy(mut self, list: impl Into<String>) -> Self {
        self.no_proxy = Some(list.into());
        self
    }

    /// The proxy `HTTPS_PROXY` (or `https_proxy`) names, with the no-proxy list of `NO_PROXY` (or `no_proxy`),
    /// read through `env` (never the process environment unless `env` is it). No variable set: no proxy.
    /// `HTTP_PROXY` is not read: identity endpoints that take secrets are HTTPS.
    pub fn from_env(env: &Env) -> Result<Self, Error> {
        let Some((name, url)) = ["HTTPS_PROXY", "https_proxy"]
            .into_iter()
            .find_map(|name| env.get(name).map(|value| (name, value)))
        else {
            return Ok(Self::none());
        };
        let https = parse_proxy_url(&url, name)?;
        let no_proxy = env.get("NO_PROXY").or_else(|| env.get("no_proxy"));
        Ok(Self {
            https: Some(https),
            no_proxy,
        })
    }

    /// Whether a proxy is configured.
    pub fn is_enabled(&self) -> bool {
        self.https.is_some()
    }

    pub(crate) fn to_reqwest(&self) -> Result<Option<reqwest::Proxy>, Error> {
        let Some(url) = &self.https else {
            return Ok(None);
        };
        // `*` bypasses the proxy for every host (hyper-util's matcher applies it to names only, not to IPs).
        if self
            .no_proxy
            .as_deref()
            .is_some_and(|list| list.split(',').any(|entry| entry.trim() == "*"))
        {
            return Ok(None);
        }
        let proxy = reqwest::Proxy::https(url.as_str())
            .map_err(|_| Error::configuration("the HTTPS proxy URL is not usable"))?;
        Ok(Some(
            proxy.no_proxy(
                self.no_proxy
                    .as_deref()
                    .and_then(reqwest::NoProxy::from_string),
            ),
        ))
    }
}

/// Parses a proxy URL; the error names `what`, never the value (it may carry a password).
fn parse_proxy_url(value: &str, what: &str) -> Result<Url, Error> {
    let value = value.trim();
    let with_scheme = if value.contains("://") {
        value.to_owned()
    } else {
        format!("http://{value}")
    };
    let url = Url::parse(&with_scheme)
        .map_err(|_| Error::configuration(format!("{what} is not a proxy URL")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(Error::configuration(format!(
            "{what} must be an http:// or https:// proxy URL with a host"
        )));
    }
    Ok(url)
}
