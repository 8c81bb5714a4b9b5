//! A small HTTP/1.1 client for tests: hyper over tokio (and tokio-rustls for `https`), one connection per
//! request, a whole-request timeout, and a cap on the body it reads.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use serde_json::Value;
use tokio::net::TcpStream;

use super::util::form_encode;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL is not `http://host:port/...` or `https://host:port/...`.
    #[error("unsupported URL: {0}")]
    Url(String),
    /// Connecting failed.
    #[error("connect failed: {0}")]
    Connect(#[source] std::io::Error),
    /// The TLS handshake failed.
    #[error("TLS handshake failed: {0}")]
    Tls(#[source] std::io::Error),
    /// The HTTP exchange failed (connection reset or closed before a response, a malformed response).
    #[error("HTTP failed: {0}")]
    Http(#[from] hyper::Error),
    /// The body ended before its `Content-Length`, or the connection broke while reading it.
    #[error("reading the body failed: {0}")]
    Body(String),
    /// The body was larger than the client's limit.
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
    /// The whole exchange took longer than the timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: hyper::HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl HttpResponse {
    /// A header by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A tiny HTTP/1.1 client. Defaults: 30 s timeout, 4 MiB body limit, no redirects followed.
#[derive(Clone)]
pub struct HttpClient {
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
    max_body: usize,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("timeout", &self.timeout)
            .field("max_body", &self.max_body)
            .finish_non_exhaustive()
    }
}

struct Target {
    tls: bool,
    host: String,
    port: u16,
    path_and_query: String,
}

fn parse_url(url: &str) -> Result<Target, ClientError> {
    let bad = || ClientError::Url(url.to_owned());
    let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(bad());
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
        None => (authority, if tls { 443 } else { 80 }),
    };
    if host.is_empty() {
        return Err(bad());
    }
    let path_and_query = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    Ok(Target {
        tls,
        host: host.to_owned(),
        port,
        path_and_query,
    })
}

impl HttpClient {
    /// A client whose `https` requests trust what this rustls config trusts.
    pub fn new(tls: Arc<rustls::ClientConfig>) -> Self {
        Self {
            tls,
            timeout: Duration::from_secs(30),
            max_body: 4 << 20,
        }
    }

    /// Sets the whole-request timeout (on tokio's clock).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the largest body it reads.
    #[must_use]
    pub fn max_body(mut self, max: usize) -> Self {
        self.max_body = max;
        self
    }

    /// `GET url` with these headers.
    pub async fn get(
        &self,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<HttpResponse, ClientError> {
        self.request("GET", url, headers, None).await
    }

    /// `POST url` with a form body.
    pub async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Result<HttpResponse, ClientError> {
        let body = form_encode(form);
        self.request(
            "POST",
            url,
            headers,
            Some(("application/x-www-form-urlencoded", body.into_bytes())),
        )
        .await
    }

    /// Any request: method, URL, headers, and an optional body with its content type.
    pub async fn request(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<HttpResponse, ClientError> {
        match tokio::time::timeout(self.timeout, self.exchange(method, url, headers, body)).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout(self.timeout)),
        }
    }

    async fn exchange(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<HttpResponse, ClientError> {
        let target = parse_url(url)?;
        let tcp = TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(ClientError::Connect)?;
        let _ = tcp.set_nodelay(true);
        let mut builder = Request::builder()
            .method(method)
            .uri(&target.path_and_query)
            .header("host", format!("{}:{}", target.host, target.port));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let payload = match body {
            Some((content_type, bytes)) => {
                builder = builder.header("content-type", content_type);
                Bytes::from(bytes)
            }
            None => Bytes::new(),
        };
        let request = builder
            .body(Full::new(payload))
            .map_err(|e| ClientError::Url(format!("{url}: {e}")))?;
        if target.tls {
            let name = ServerName::try_from(target.host.clone())
                .map_err(|_| ClientError::Url(url.to_owned()))?;
            let stream = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(ClientError::Tls)?;
            self.send(TokioIo::new(stream), request).await
        } else {
            self.send(TokioIo::new(tcp), request).await
        }
    }

    async fn send<T>(
        &self,
        io: T,
        request: Request<Full<Bytes>>,
    ) -> Result<HttpResponse, ClientError>
    where
        T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        let result = async {
            let response = sender.send_request(request).await?;
            let (parts, body) = response.into_parts();
            let collected = Limited::new(body, self.max_body)
                .collect()
                .await
                .map_err(|e| {
                    if e.downcast_ref::<http_body_util::LengthLimitError>()
                        .is_some()
                    {
                        ClientError::TooLarge(self.max_body)
                    } else {
                        ClientError::Body(e.to_string())
                    }
                })?;
            Ok(HttpResponse {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body: collected.to_bytes(),
            })
        }
        .await;
        driver.abort();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = parse_url("https://127.0.0.1:8443/t/oauth2/v2.0/token?x=1").unwrap();
        assert!(t.tls);
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 8443));
        assert_eq!(t.path_and_query, "/t/oauth2/v2.0/token?x=1");
        let t = parse_url("http://localhost?x=1").unwrap();
        assert_eq!((t.port, t.path_and_query.as_str()), (80, "/?x=1"));
        assert!(matches!(parse_url("ftp://x"), Err(ClientError::Url(_))));
        assert!(matches!(parse_url("http://:80/"), Err(ClientError::Url(_))));
        assert!(matches!(
            parse_url("http://h:notaport/"),
            Err(ClientError::Url(_))
        ));
    }
}
