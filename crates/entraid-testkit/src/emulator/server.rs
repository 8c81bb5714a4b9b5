//! The HTTP/HTTPS server: accept loops, connections that can be reset, routing, faults and logging.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::faults::{Endpoint, Fault, error_name_for_status, reason_phrase};
use super::http::{Req, Resp, RespBody};
use super::log::{RequestRecord, logged_headers, redact_params};
use super::util::{OrderedJson, parse_urlencoded, random_token};
use super::{Inner, discovery, mi, oidc, token_endpoint, user_endpoints};

/// The largest request body the emulator reads.
const MAX_REQUEST_BODY: usize = 1 << 20;

/// The response body: whole, or cut short (a truncated-body fault).
pub(crate) enum EmuBody {
    Full(Option<Bytes>),
    Truncated {
        data: Option<Bytes>,
        declared: u64,
        failed: bool,
    },
}

impl Body for EmuBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            EmuBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            EmuBody::Truncated { data, failed, .. } => {
                if let Some(d) = data.take() {
                    Poll::Ready(Some(Ok(Frame::data(d))))
                } else if !*failed {
                    *failed = true;
                    Poll::Ready(Some(Err(io::Error::other("injected truncated body"))))
                } else {
                    Poll::Ready(None)
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, EmuBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            EmuBody::Full(Some(d)) => SizeHint::with_exact(d.len() as u64),
            EmuBody::Full(None) => SizeHint::with_exact(0),
            EmuBody::Truncated { declared, .. } => SizeHint::with_exact(*declared),
        }
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// A connection that resets (TCP RST, zero linger) when dropped after a reset fault.
struct ConnIo {
    stream: Stream,
    reset: Arc<AtomicBool>,
}

impl Drop for ConnIo {
    fn drop(&mut self) {
        if self.reset.load(Ordering::SeqCst) {
            let tcp = match &self.stream {
                Stream::Plain(s) => s,
                Stream::Tls(t) => t.get_ref().0,
            };
            let _ = tcp.set_zero_linger();
        }
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The error a service returns to make hyper drop the connection without answering.
#[derive(Debug)]
struct ResetRequested;

impl std::fmt::Display for ResetRequested {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset by an injected fault")
    }
}

impl std::error::Error for ResetRequested {}

pub(crate) async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    inner: Arc<Inner>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        let Ok((tcp, _)) = accepted else { continue };
        let _ = tcp.set_nodelay(true);
        let tls = tls.clone();
        let inner = inner.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let is_tls = tls.is_some();
            let stream = match tls {
                Some(acceptor) => {
                    let handshake = tokio::select! {
                        r = acceptor.accept(tcp) => r,
                        _ = shutdown.changed() => return,
                    };
                    match handshake {
                        Ok(s) => Stream::Tls(Box::new(s)),
                        Err(_) => return,
                    }
                }
                None => Stream::Plain(tcp),
            };
            let reset = Arc::new(AtomicBool::new(false));
            let io = TokioIo::new(ConnIo {
                stream,
                reset: reset.clone(),
            });
            let service = hyper::service::service_fn(move |req| {
                let inner = inner.clone();
                let reset = reset.clone();
                async move { handle(inner, req, is_tls, reset).await }
            });
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
            tokio::select! {
                _ = conn => {}
                _ = shutdown.changed() => {}
            }
        });
    }
}

/// Which endpoint a path is, and its tenant.
fn route(path: &str) -> Option<(Endpoint, Option<String>)> {
    let fixed = match path {
        "/metadata/identity/oauth2/token" => Some(Endpoint::Imds),
        "/msi/token" => Some(Endpoint::AppService),
        "/arc/metadata/identity/oauth2/token" => Some(Endpoint::AzureArc),
        "/cloudshell/oauth2/token" => Some(Endpoint::CloudShell),
        "/azureml/msi/token" => Some(Endpoint::AzureMl),
        "/github/idtoken" => Some(Endpoint::GitHubOidc),
        "/pipelines/oidctoken" => Some(Endpoint::PipelinesOidc),
        _ => None,
    };
    if let Some(e) = fixed {
        return Some((e, None));
    }
    let rest = path.strip_prefix('/')?;
    let (tenant, tail) = rest.split_once('/')?;
    let endpoint = match tail {
        "oauth2/v2.0/token" => Endpoint::Token,
        "oauth2/v2.0/devicecode" => Endpoint::DeviceCode,
        "oauth2/v2.0/authorize" => Endpoint::Authorize,
        "v2.0/.well-known/openid-configuration" => Endpoint::OpenIdConfiguration,
        "discovery/v2.0/keys" => Endpoint::Keys,
        _ => return None,
    };
    Some((endpoint, Some(tenant.to_owned())))
}

async fn handle(
    inner: Arc<Inner>,
    req: Request<Incoming>,
    tls: bool,
    reset: Arc<AtomicBool>,
) -> Result<Response<EmuBody>, ResetRequested> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().map(parse_urlencoded).unwrap_or_default();
    let body = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
        Ok(collected) => Some(collected.to_bytes()),
        Err(_) => None,
    };
    let is_form = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let form = match (&body, is_form) {
        (Some(b), true) => parse_urlencoded(&String::from_utf8_lossy(b)),
        _ => Vec::new(),
    };
    let req = Req {
        method: parts.method,
        path,
        query,
        form,
        headers: parts.headers,
        tls,
    };
    let routed = route(&req.path);
    let endpoint = routed.as_ref().map(|(e, _)| *e);
    let fault = endpoint.and_then(|e| inner.lock().faults.get_mut(&e).and_then(|q| q.pop_front()));

    let resp = if body.is_none() {
        Resp::simple_error(413, "invalid_request", "Request body too large")
    } else {
        match &fault {
            Some(Fault::ResetConnection) => {
                record(&inner, &req, endpoint, 0, fault.as_ref());
                reset.store(true, Ordering::SeqCst);
                return Err(ResetRequested);
            }
            Some(Fault::Status(status)) => injected_status(*status, None),
            Some(Fault::StatusRetryAfter {
                status,
                retry_after_secs,
            }) => injected_status(*status, Some(*retry_after_secs)),
            Some(Fault::Html(status)) => html_page(*status),
            Some(Fault::MalformedJson) => Resp::raw(
                200,
                "application/json; charset=utf-8",
                r#"{"token_type":"Bearer","expires_in":3599,"access_token":"eyJ0eXAiOiJKV1Qi"#,
            ),
            Some(Fault::Custom {
                status,
                content_type,
                body,
            }) => Resp::raw(*status, "text/plain", body.clone())
                .header("content-type", content_type.clone()),
            Some(Fault::Delay(delay)) => {
                tokio::time::sleep(*delay).await;
                dispatch(&inner, routed, &req).await
            }
            _ => dispatch(&inner, routed, &req).await,
        }
    };
    let resp = match &fault {
        Some(Fault::ExpiresInAsString) => restyle_expiry(resp, true),
        Some(Fault::ExpiresInAsNumber) => restyle_expiry(resp, false),
        Some(Fault::OversizedBody) => oversize(resp),
        _ => resp,
    };
    record(&inner, &req, endpoint, resp.status, fault.as_ref());
    Ok(into_hyper(
        resp,
        matches!(fault, Some(Fault::TruncatedBody)),
    ))
}

async fn dispatch(inner: &Inner, routed: Option<(Endpoint, Option<String>)>, req: &Req) -> Resp {
    let Some((endpoint, tenant)) = routed else {
        return Resp::simple_error(
            404,
            "not_found",
            "No such endpoint on the Entra ID emulator",
        );
    };
    let tenant = tenant.unwrap_or_default();
    match endpoint {
        Endpoint::Token => token_endpoint::token_endpoint(inner, &tenant, req),
        Endpoint::DeviceCode => user_endpoints::devicecode_endpoint(inner, &tenant, req),
        Endpoint::Authorize => user_endpoints::authorize_endpoint(inner, &tenant, req).await,
        Endpoint::OpenIdConfiguration => discovery::openid_configuration(inner, &tenant, req),
        Endpoint::Keys => discovery::keys_endpoint(inner, &tenant, req),
        Endpoint::Imds => mi::imds(inner, req),
        Endpoint::AppService => mi::app_service(inner, req),
        Endpoint::AzureArc => mi::arc(inner, req),
        Endpoint::CloudShell => mi::cloud_shell(inner, req),
        Endpoint::AzureMl => mi::azure_ml(inner, req),
        Endpoint::GitHubOidc => oidc::github(inner, req),
        Endpoint::PipelinesOidc => oidc::pipelines(inner, req),
    }
}

fn record(
    inner: &Inner,
    req: &Req,
    endpoint: Option<Endpoint>,
    status: u16,
    fault: Option<&Fault>,
) {
    let rec = RequestRecord {
        endpoint,
        method: req.method.to_string(),
        path: req.path.clone(),
        tls: req.tls,
        query: redact_params(&req.query),
        form: redact_params(&req.form),
        headers: logged_headers(&req.headers),
        status,
        fault: fault.map(Fault::label),
    };
    inner.lock().log.push(rec);
}

fn injected_status(status: u16, retry_after: Option<u64>) -> Resp {
    let resp = Resp::json(
        status,
        OrderedJson::new()
            .with("error", error_name_for_status(status))
            .with(
                "error_description",
                format!("Injected fault: HTTP {status} {}", reason_phrase(status)),
            )
            .with("error_codes", Value::Array(Vec::new()))
            .with("trace_id", crate::keys::random_uuid())
            .with("correlation_id", crate::keys::random_uuid()),
    );
    match retry_after {
        Some(secs) => resp.header("retry-after", secs.to_string()),
        None => resp,
    }
}

fn html_page(status: u16) -> Resp {
    let reason = reason_phrase(status);
    Resp::raw(
        status,
        "text/html; charset=utf-8",
        format!(
            "<!DOCTYPE html>\n<html><head><title>{status} {reason}</title></head>\
             <body><h1>{status} {reason}</h1><p>The service is unavailable. Please try again later.</p>\
             </body></html>\n"
        ),
    )
}

/// Rewrites the expiry fields of a JSON answer as strings (`true`) or numbers (`false`).
fn restyle_expiry(mut resp: Resp, as_string: bool) -> Resp {
    if let RespBody::Json(json) = &mut resp.body {
        for (key, value) in &mut json.0 {
            if !matches!(
                key.as_str(),
                "expires_in" | "ext_expires_in" | "expires_on" | "refresh_in"
            ) {
                continue;
            }
            let n = match value {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.parse::<i64>().ok(),
                _ => None,
            };
            if let Some(n) = n {
                *value = if as_string {
                    Value::String(n.to_string())
                } else {
                    Value::from(n)
                };
            }
        }
    }
    resp
}

/// Adds a 2 MiB padding field to a JSON answer (or makes a 2 MiB body of any other).
fn oversize(mut resp: Resp) -> Resp {
    const SIZE: usize = 2 << 20;
    match &mut resp.body {
        RespBody::Json(json) => json.push("padding", "x".repeat(SIZE)),
        _ => {
            resp.body = RespBody::Raw("application/json; charset=utf-8", {
                let mut s = String::with_capacity(SIZE + 20);
                s.push_str("{\"padding\":\"");
                s.push_str(&"x".repeat(SIZE));
                s.push_str("\"}");
                Bytes::from(s)
            });
        }
    }
    resp
}

fn into_hyper(resp: Resp, truncate: bool) -> Response<EmuBody> {
    let (content_type, bytes) = resp.body_bytes();
    let body = if truncate && bytes.len() > 1 {
        let declared = bytes.len() as u64;
        EmuBody::Truncated {
            data: Some(bytes.slice(..bytes.len() / 2)),
            declared,
            failed: false,
        }
    } else {
        EmuBody::Full(if bytes.is_empty() { None } else { Some(bytes) })
    };
    let mut response = Response::new(body);
    *response.status_mut() = hyper::StatusCode::from_u16(resp.status)
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    if let Some(ct) = content_type {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    headers.insert(
        "cache-control",
        HeaderValue::from_static("no-store, no-cache"),
    );
    headers.insert(
        "x-ms-request-id",
        HeaderValue::from_str(&random_token(12)).unwrap_or(HeaderValue::from_static("0")),
    );
    for (name, value) in resp.headers {
        if let (Ok(name), Ok(value)) = (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.insert(name, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            route("/t1/oauth2/v2.0/token"),
            Some((Endpoint::Token, Some("t1".into())))
        );
        assert_eq!(
            route("/t1/v2.0/.well-known/openid-configuration"),
            Some((Endpoint::OpenIdConfiguration, Some("t1".into())))
        );
        assert_eq!(
            route("/metadata/identity/oauth2/token"),
            Some((Endpoint::Imds, None))
        );
        assert_eq!(route("/t1/oauth2/v2.0/nope"), None);
        assert_eq!(route("/"), None);
    }

    #[test]
    fn expiry_restyling() {
        let resp = Resp::json(
            200,
            OrderedJson::new()
                .with("expires_in", "3599")
                .with("expires_on", 17)
                .with("resource", "r"),
        );
        let RespBody::Json(j) = restyle_expiry(resp, false).body else {
            panic!("json")
        };
        assert_eq!(
            j.to_json_string(),
            r#"{"expires_in":3599,"expires_on":17,"resource":"r"}"#
        );
        let resp = Resp::json(200, OrderedJson::new().with("expires_in", 5));
        let RespBody::Json(j) = restyle_expiry(resp, true).body else {
            panic!("json")
        };
        assert_eq!(j.get("expires_in"), Some(&Value::String("5".into())));
    }
}
