//! The HTTP pipeline every flow shares: [`HttpClient`] and its [`HttpOptions`].
//!
//! Every request gets a timeout (default 30 s, covering connect, send and the whole body), follows no redirect,
//! reads at most 1 MiB of body (a larger one fails cleanly), and carries `User-Agent: entraid-identity/<version>`,
//! a fresh `client-request-id` (a random UUID) and `return-client-request-id: false`. TLS is rustls with the ring
//! provider; the roots are the operating system's, plus Mozilla's with the `webpki-roots` feature, plus any CA you
//! add (for example an emulator's test CA). The roots are loaded at the first HTTPS handshake, once per client (the
//! operating system's once per process), so a plain-HTTP managed identity request never reads a certificate.
//! Requests to HTTPS endpoints can go through an HTTPS proxy ([`ProxyOptions`]: an explicit URL, or `HTTPS_PROXY` and
//! `NO_PROXY` read through an [`Env`]); managed identity endpoints never do ([`HttpClient::without_proxy`]).
//! Failures become [`entraid_core::Error`]s that carry Entra's error body and the server's `Retry-After`, never a
//! request or response body.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use entraid_core::{Error, Secret, TokenResponse};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use ring::rand::SecureRandom as _;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

use crate::form::Form;
pub use crate::proxy::ProxyOptions;
pub(crate) use crate::tls_roots::crypto_provider;
use crate::tls_roots::{LazyRoots, LazyVerifier};

/// The default timeout of one request: 30 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The default timeout for establishing a connection: 10 s (or the request timeout, when shorter). A connection
/// that cannot be made in time is a connect error, which managed identity reports as "unavailable" on IMDS.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest response body read: 1 MiB. A larger body fails the request with
/// [`Error::InvalidResponse`](entraid_core::Error::InvalidResponse).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The `User-Agent` of every request: `entraid-identity/<version>`.
pub const USER_AGENT: &str = concat!("entraid-identity/", env!("CARGO_PKG_VERSION"));

/// Options for an [`HttpClient`].
///
/// Defaults: 30 s timeout (10 s to connect), the operating system's root certificates (and Mozilla's with the `webpki-roots`
/// feature), no extra CA, no proxy. Building a client reads no certificate: the roots are loaded at its first HTTPS
/// handshake.
///
/// ```
/// use std::time::Duration;
/// use entraid_identity::HttpOptions;
///
/// let client = HttpOptions::new()
///     .timeout(Duration::from_secs(10))
///     .native_roots(false)
///     .build()
///     .unwrap();
/// assert_eq!(client.timeout(), Duration::from_secs(10));
/// ```
#[derive(Clone)]
pub struct HttpOptions {
    timeout: Duration,
    connect_timeout: Duration,
    native_roots: bool,
    webpki_roots: bool,
    extra_roots: Vec<CertificateDer<'static>>,
    proxy: ProxyOptions,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpOptions")
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("native_roots", &self.native_roots)
            .field("webpki_roots", &self.webpki_roots)
            .field("extra_roots", &self.extra_roots.len())
            .field("proxy", &self.proxy)
            .finish()
    }
}

impl HttpOptions {
    /// The defaults (see the type's documentation).
    pub fn new() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            native_roots: true,
            webpki_roots: cfg!(feature = "webpki-roots"),
            extra_roots: Vec::new(),
            proxy: ProxyOptions::none(),
        }
    }

    /// The timeout of one request, from connecting to the end of the body. Default 30 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The timeout for establishing a connection (capped by the request timeout). Default 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Whether to trust the operating system's root certificates. Default `true`.
    pub fn native_roots(mut self, enabled: bool) -> Self {
        self.native_roots = enabled;
        self
    }

    /// Whether to trust Mozilla's root certificates (the `webpki-roots` feature). Default `true` when the feature
    /// is enabled.
    #[cfg(feature = "webpki-roots")]
    pub fn webpki_roots(mut self, enabled: bool) -> Self {
        self.webpki_roots = enabled;
        self
    }

    /// Trusts every certificate in a PEM bundle as a root (for example an emulator's test CA).
    ///
    /// Fails when the bundle holds no certificate.
    pub fn add_root_certificates_pem(mut self, pem: &[u8]) -> Result<Self, Error> {
        let mut found = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert
                .map_err(|e| Error::configuration(format!("unreadable CA certificate PEM: {e}")))?;
            self.extra_roots.push(cert);
            found += 1;
        }
        if found == 0 {
            return Err(Error::configuration(
                "the CA bundle holds no `-----BEGIN CERTIFICATE-----` block",
            ));
        }
        Ok(self)
    }

    /// Trusts a DER certificate as a root.
    pub fn add_root_certificate_der(mut self, der: impl Into<Vec<u8>>) -> Self {
        self.extra_roots.push(CertificateDer::from(der.into()));
        self
    }

    /// The proxy for requests to HTTPS endpoints. Default: none ([`ProxyOptions::none`]). A client built with a
    /// proxy still reaches managed identity endpoints directly ([`HttpClient::without_proxy`]).
    pub fn proxy(mut self, proxy: ProxyOptions) -> Self {
        self.proxy = proxy;
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<HttpClient, Error> {
        HttpClient::new(self)
    }

    /// The roots to trust: the extra CAs are checked now (cheap, no I/O); the operating system's and Mozilla's
    /// are added at the first handshake.
    fn lazy_roots(&self) -> Result<LazyRoots, Error> {
        let mut extra = RootCertStore::empty();
        for cert in &self.extra_roots {
            extra.add(cert.clone()).map_err(|e| {
                Error::configuration(format!("the extra CA certificate is not usable: {e}"))
            })?;
        }
        if extra.is_empty() && !self.native_roots && !self.webpki_roots {
            tracing::warn!("no root certificate is trusted: every HTTPS request will fail");
        }
        Ok(LazyRoots {
            native: self.native_roots,
            webpki: self.webpki_roots,
            extra,
        })
    }
}

/// An HTTP client for identity requests. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct HttpClient {
    /// The client requests go through (with the proxy, when one is configured).
    inner: reqwest::Client,
    /// The same client without the proxy, when `inner` has one.
    direct: Option<reqwest::Client>,
    /// The certificate verifier both use (`None` for a caller's own rustls configuration).
    verifier: Option<Arc<LazyVerifier>>,
    timeout: Duration,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("timeout", &self.timeout)
            .field("proxy", &self.uses_proxy())
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client with the given options. Reads no certificate: the roots are loaded at the first HTTPS handshake.
    pub fn new(options: HttpOptions) -> Result<Self, Error> {
        let verifier = Arc::new(LazyVerifier::new(options.lazy_roots()?, crypto_provider()));
        let config = rustls::ClientConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::configuration(format!("TLS configuration: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
        let connect_timeout = options.connect_timeout.min(options.timeout);
        let direct = Self::reqwest_client(config.clone(), connect_timeout, None)?;
        let (inner, direct) = match options.proxy.to_reqwest()? {
            None => (direct, None),
            Some(proxy) => (
                Self::reqwest_client(config, connect_timeout, Some(proxy))?,
                Some(direct),
            ),
        };
        Ok(Self {
            inner,
            direct,
            verifier: Some(verifier),
            timeout: options.timeout,
        })
    }

    /// The client for the proxy settings a credential builder resolved: [`HttpClient::shared_default`] without a
    /// proxy, else a new client with the default options and this proxy.
    pub(crate) fn for_proxy(proxy: ProxyOptions) -> Result<Self, Error> {
        if proxy.is_enabled() {
            HttpOptions::new().proxy(proxy).build()
        } else {
            Self::shared_default()
        }
    }

    /// This client without its proxy (itself when it has none): what managed identity endpoints are reached
    /// with, since they are local to the host (IMDS's link-local address, App Service's and Arc's loopback
    /// endpoints) and must never be sent to a proxy. Shares connections and TLS roots with this client.
    pub fn without_proxy(&self) -> Self {
        match &self.direct {
            Some(direct) => Self {
                inner: direct.clone(),
                direct: None,
                verifier: self.verifier.clone(),
                timeout: self.timeout,
            },
            None => self.clone(),
        }
    }

    /// Whether requests to HTTPS endpoints go through a proxy.
    pub fn uses_proxy(&self) -> bool {
        self.direct.is_some()
    }

    /// Whether this client has loaded its root certificates (it does at its first HTTPS handshake).
    #[cfg(test)]
    fn roots_loaded(&self) -> bool {
        self.verifier.as_ref().is_some_and(|v| v.loaded())
    }

    /// A client with the default options, created once per process and shared.
    pub fn shared_default() -> Result<Self, Error> {
        static DEFAULT: OnceLock<Result<HttpClient, String>> = OnceLock::new();
        DEFAULT
            .get_or_init(|| HttpClient::new(HttpOptions::new()).map_err(|e| e.to_string()))
            .clone()
            .map_err(Error::configuration)
    }

    /// A client over a ready rustls configuration (used for Service Fabric's pinned certificate).
    pub(crate) fn from_rustls(
        config: rustls::ClientConfig,
        timeout: Duration,
    ) -> Result<Self, Error> {
        Self::with_tls(config, timeout, DEFAULT_CONNECT_TIMEOUT)
    }

    fn with_tls(
        config: rustls::ClientConfig,
        timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Self, Error> {
        let inner = Self::reqwest_client(config, connect_timeout.min(timeout), None)?;
        Ok(Self {
            inner,
            direct: None,
            verifier: None,
            timeout,
        })
    }

    fn reqwest_client(
        config: rustls::ClientConfig,
        connect_timeout: Duration,
        proxy: Option<reqwest::Proxy>,
    ) -> Result<reqwest::Client, Error> {
        // `no_proxy` first: reqwest would otherwise read the process environment's proxy variables.
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .http1_only()
            .tls_backend_preconfigured(config);
        if let Some(proxy) = proxy {
            builder = builder.proxy(proxy);
        }
        builder
            .build()
            .map_err(|e| Error::configuration(format!("HTTP client: {e}")))
    }

    /// The timeout of one request.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends a request and reads its response (any status), within the timeout and the body limit.
    pub(crate) async fn send(&self, request: Request) -> Result<Response, Error> {
        let credential = request.credential;
        let client_request_id = uuid_v4()?;
        let host = request.url.host_str().unwrap_or("").to_owned();
        let path = request.url.path().to_owned();
        tracing::debug!(
            credential,
            method = %request.method,
            host = %host,
            path = %path,
            client_request_id = %client_request_id,
            "identity request"
        );
        let mut builder = self
            .inner
            .request(request.method, request.url)
            .header("client-request-id", &client_request_id)
            .header("return-client-request-id", "false");
        for (name, value) in request.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = request.body {
            if !body.is_empty() {
                builder = builder.header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                );
            }
            builder = builder.body(body);
        }
        let started = tokio::time::Instant::now();
        let exchange = async {
            let mut response = builder
                .send()
                .await
                .map_err(|e| transport_error(credential, &host, e))?;
            let status = response.status().as_u16();
            if response
                .content_length()
                .is_some_and(|len| len > MAX_BODY_BYTES as u64)
            {
                return Err(too_large(credential, status));
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| {
                Error::transport(
                    credential,
                    format!(
                        "the connection to {host} failed while reading the response: {}",
                        root_cause(&e)
                    ),
                    Some(Box::new(e)),
                )
            })? {
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(too_large(credential, status));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Response {
                status,
                headers: response.headers().clone(),
                body,
            })
        };
        let result = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Error::timeout(credential, self.timeout)),
        };
        match &result {
            Ok(response) => tracing::debug!(
                credential,
                status = response.status,
                bytes = response.body.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                client_request_id = %client_request_id,
                "identity response"
            ),
            Err(error) => tracing::debug!(
                credential,
                error = %error,
                client_request_id = %client_request_id,
                "identity request failed"
            ),
        }
        result
    }
}

fn too_large(credential: &str, status: u16) -> Error {
    Error::invalid_response(format!(
        "{credential}: the response body (HTTP {status}) is larger than the {MAX_BODY_BYTES} byte limit"
    ))
}

fn transport_error(credential: &'static str, host: &str, error: reqwest::Error) -> Error {
    let cause = root_cause(&error);
    let message = if error.is_connect() {
        format!("could not connect to {host}: {cause}")
    } else {
        format!("the request to {host} failed: {cause}")
    };
    Error::transport(credential, message, Some(Box::new(error)))
}

/// The innermost cause of an error, which names what actually happened (connection refused, reset, ...).
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// Whether a transport error happened while connecting (nothing answered at that address).
pub(crate) fn is_connect_error(error: &Error) -> bool {
    match error {
        Error::Transport {
            source: Some(source),
            ..
        } => source
            .downcast_ref::<reqwest::Error>()
            .is_some_and(reqwest::Error::is_connect),
        _ => false,
    }
}

/// One request, as a flow describes it.
pub(crate) struct Request {
    credential: &'static str,
    method: Method,
    url: Url,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Option<Vec<u8>>,
}

impl Request {
    /// A GET request.
    pub(crate) fn get(credential: &'static str, url: Url) -> Self {
        Self {
            credential,
            method: Method::GET,
            url,
            headers: Vec::new(),
            body: None,
        }
    }

    /// A POST request with a form body.
    pub(crate) fn post_form(credential: &'static str, url: Url, form: Form) -> Self {
        Self {
            credential,
            method: Method::POST,
            url,
            headers: Vec::new(),
            body: Some(form.into_body()),
        }
    }

    /// A POST request with an empty body (`Content-Length: 0`, no content type).
    pub(crate) fn post_empty(credential: &'static str, url: Url) -> Self {
        Self {
            credential,
            method: Method::POST,
            url,
            headers: Vec::new(),
            body: Some(Vec::new()),
        }
    }

    /// Adds a header whose value is not secret.
    pub(crate) fn header(mut self, name: &'static str, value: &str) -> Result<Self, Error> {
        let value = HeaderValue::from_str(value).map_err(|_| {
            Error::configuration(format!(
                "the value for the `{name}` header has characters HTTP headers cannot carry"
            ))
        })?;
        self.headers.push((HeaderName::from_static(name), value));
        Ok(self)
    }

    /// Adds a header whose value is secret: it is marked sensitive so no HTTP layer logs it.
    pub(crate) fn secret_header(
        mut self,
        name: &'static str,
        value: &Secret,
    ) -> Result<Self, Error> {
        let mut value = HeaderValue::from_str(value.expose_secret()).map_err(|_| {
            Error::configuration(format!(
                "the secret for the `{name}` header has characters HTTP headers cannot carry"
            ))
        })?;
        value.set_sensitive(true);
        self.headers.push((HeaderName::from_static(name), value));
        Ok(self)
    }
}

/// A response, read in full (at most [`MAX_BODY_BYTES`]).
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The body may hold a token: only its length is shown.
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl Response {
    /// Whether the status is 2xx.
    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The server's requested delay before retrying (`retry-after-ms`, `x-ms-retry-after-ms`, `Retry-After`).
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        retry_after(&self.headers, SystemTime::now())
    }

    /// The error for a failed status: an authentication failure when Entra refused (400/401/403 with an error
    /// body), else an HTTP error with its status, `Retry-After` and any Entra error body.
    pub(crate) fn error(&self, credential: &'static str) -> Error {
        Error::from_http_status(credential, self.status, self.retry_after(), &self.body)
    }

    /// The token response of a 2xx answer, or the error for any other status.
    pub(crate) fn token_response(self, credential: &'static str) -> Result<TokenResponse, Error> {
        if !self.is_success() {
            return Err(self.error(credential));
        }
        let status = self.status;
        let response = TokenResponse::from_json(&self.body).map_err(|e| match e {
            Error::InvalidResponse { reason } => {
                Error::invalid_response(format!("{credential} (HTTP {status}): {reason}"))
            }
            other => other,
        })?;
        note_unreadable(credential, &response);
        Ok(response)
    }
}

/// The DEBUG note for a token response whose expiry could not be read: the token's own `exp` stands in for it
/// (see `Token::from_response`). Names the fields and the rules, never a value.
pub(crate) fn note_unreadable(credential: &str, response: &TokenResponse) {
    for unreadable in response.unreadable() {
        tracing::debug!(
            credential,
            field = unreadable.field,
            reason = unreadable.reason,
            "a time field of the token response could not be read; it is left out, and the token's own exp \
             claim is used when no other expiry is left"
        );
    }
}

/// Reads `retry-after-ms`, `x-ms-retry-after-ms` (milliseconds) or `Retry-After` (seconds or an HTTP date).
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(ms) = headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            return Some(Duration::from_millis(ms));
        }
    }
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = entraid_core::date::parse_http_date(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Random bytes from the operating system.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], Error> {
    let mut bytes = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| {
            Error::custom(
                "the operating system's random number generator failed",
                false,
            )
        })?;
    Ok(bytes)
}

/// A random (version 4) UUID, as `client-request-id` and `jti` take it.
pub(crate) fn uuid_v4() -> Result<String, Error> {
    let mut b = random_bytes::<16>()?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|byte| format!("{byte:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn uuids_are_v4_and_distinct() {
        let a = uuid_v4().unwrap();
        let b = uuid_v4().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        let groups: Vec<&str> = a.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(groups[2].starts_with('4'));
        assert!(matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'));
    }

    #[test]
    fn retry_after_forms() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers, now), None);
        headers.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(7)));
        headers.insert(
            "retry-after",
            HeaderValue::from_static("Sun, 06 Nov 1994 08:50:07 GMT"),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(30)));
        headers.insert(
            "retry-after",
            HeaderValue::from_static("Sun, 06 Nov 1994 08:00:00 GMT"),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::ZERO));
        headers.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now), None);
        headers.insert("x-ms-retry-after-ms", HeaderValue::from_static("1500"));
        assert_eq!(
            retry_after(&headers, now),
            Some(Duration::from_millis(1500))
        );
        headers.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_millis(250)));
    }

    /// The `Retry-After` that panicked in the date parser (issue 12), and its neighbours: no panic, no value.
    #[test]
    fn absurd_retry_after_dates_are_ignored() {
        let now = UNIX_EPOCH + Duration::from_secs(1_750_000_000);
        for value in [
            "Sun, 06 Nov 300000000000 08:49:37 GMT",
            "Sun, 06 Nov 9223372036854775807 08:49:37 GMT",
            "Sun, 06 Nov -9223372036854775808 08:49:37 GMT",
            "Sun, 06 Nov 10000 08:49:37 GMT",
            "Sun, 06 Nov 1969 08:49:37 GMT",
            "Sun, 06 Nov 1994 99999999999999999999:00:00 GMT",
        ] {
            let mut headers = HeaderMap::new();
            headers.insert("retry-after", HeaderValue::from_static(value));
            assert_eq!(retry_after(&headers, now), None, "{value}");
            let response = Response {
                status: 503,
                headers,
                body: Vec::new(),
            };
            let err = response.error("ManagedIdentity");
            assert!(matches!(err, Error::Http { status: 503, .. }), "{err}");
            assert_eq!(err.retry_after(), None);
        }
        // The largest date still read is the end of 9999.
        assert_eq!(
            entraid_core::date::parse_http_date("Fri, 31 Dec 9999 23:59:59 GMT"),
            Some(UNIX_EPOCH + Duration::from_secs(253_402_300_799))
        );
        // Huge numeric values are durations, not times: kept as they are (the caller caps its waits).
        let mut headers = HeaderMap::new();
        headers.insert(
            "retry-after",
            HeaderValue::from_static("18446744073709551615"),
        );
        assert_eq!(
            retry_after(&headers, now),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    /// Building a client and a plain-HTTP request read no root certificate; the first HTTPS handshake loads
    /// them, once, for the client and the clients derived from it.
    #[tokio::test]
    async fn roots_are_loaded_at_the_first_https_handshake_only() {
        let emu = entraid_testkit::emulator::Emulator::start().await.unwrap();
        let client = HttpOptions::new()
            .add_root_certificates_pem(emu.ca_cert_pem().as_bytes())
            .unwrap()
            .build()
            .unwrap();
        assert!(!client.roots_loaded());
        let get = |base: &str| {
            Request::get(
                "test",
                Url::parse(&format!(
                    "{base}/common/v2.0/.well-known/openid-configuration"
                ))
                .unwrap(),
            )
        };
        let response = client.send(get(emu.http_url())).await.unwrap();
        assert!(response.status > 0);
        assert!(
            !client.roots_loaded(),
            "a plain-HTTP request loaded the roots"
        );
        let direct = client.without_proxy();
        let response = client.send(get(emu.https_url())).await.unwrap();
        assert!(response.status > 0);
        assert!(client.roots_loaded());
        assert!(
            direct.roots_loaded(),
            "a derived client loads its own roots again"
        );
        // A client trusting nothing fails the handshake, not the build.
        let untrusting = HttpOptions::new().native_roots(false);
        #[cfg(feature = "webpki-roots")]
        let untrusting = untrusting.webpki_roots(false);
        let untrusting = untrusting.build().unwrap();
        let err = untrusting.send(get(emu.https_url())).await.unwrap_err();
        assert!(matches!(err, Error::Transport { .. }), "{err}");
        assert!(err.to_string().contains("no root certificate"), "{err}");
    }

    #[test]
    fn proxy_options_hide_credentials_and_need_a_host() {
        let options = ProxyOptions::https("https://alice:s3cr3t@proxy.example:8443")
            .unwrap()
            .no_proxy("localhost");
        let shown = format!("{:?}", HttpOptions::new().proxy(options.clone()));
        assert!(shown.contains("https://proxy.example:8443"), "{shown}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("alice"),
            "{shown}"
        );
        let client = HttpOptions::new().proxy(options).build().unwrap();
        assert!(client.uses_proxy());
        assert!(!client.without_proxy().uses_proxy());
        assert!(!HttpOptions::new().build().unwrap().uses_proxy());
        assert!(ProxyOptions::https("http://").is_err());
        assert!(ProxyOptions::https("socks5://proxy:1080").is_err());
        assert!(!ProxyOptions::none().is_enabled());
    }

    #[test]
    fn options_reject_a_bundle_without_certificates() {
        let err = HttpOptions::new()
            .add_root_certificates_pem(b"not a pem")
            .unwrap_err();
        assert!(
            err.to_string().contains("no `-----BEGIN CERTIFICATE-----`"),
            "{err}"
        );
        let client = HttpOptions::new().native_roots(false).build().unwrap();
        assert_eq!(client.timeout(), DEFAULT_TIMEOUT);
        assert!(format!("{client:?}").starts_with("HttpClient"));
    }
}
