//! The emulator's own HTTP types, owned by no endpoint: a parsed request ([`Req`]) and a response before it goes on
//! the wire ([`Resp`]). The router (`server.rs`) builds a `Req` and turns a `Resp` into hyper's response; every
//! endpoint takes one and returns the other.

use bytes::Bytes;
use hyper::Method;

use super::Inner;
use super::util::OrderedJson;

/// A parsed request.
pub(crate) struct Req {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) form: Vec<(String, String)>,
    pub(crate) headers: hyper::HeaderMap,
    pub(crate) tls: bool,
}

impl Req {
    /// A query parameter, by name (the first, when repeated).
    pub(crate) fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A form field of the body, by name (the first, when repeated).
    pub(crate) fn form_param(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A request header, by case-insensitive name, when it is text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The base URL of the listener the request came in on.
    pub(crate) fn base<'a>(&self, inner: &'a Inner) -> &'a str {
        if self.tls {
            &inner.https_url
        } else {
            &inner.http_url
        }
    }
}

/// A response body before it is encoded.
pub(crate) enum RespBody {
    Json(OrderedJson),
    Raw(&'static str, Bytes),
    Empty,
}

/// A response before it goes on the wire.
pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: RespBody,
}

impl Resp {
    pub(crate) fn json(status: u16, body: OrderedJson) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: RespBody::Json(body),
        }
    }

    pub(crate) fn raw(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: RespBody::Raw(content_type, body.into()),
        }
    }

    pub(crate) fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// A simple `{"error":..,"error_description":..}` body (managed-identity hosts, OIDC endpoints).
    pub(crate) fn simple_error(status: u16, error: &str, description: &str) -> Self {
        Self::json(
            status,
            OrderedJson::new()
                .with("error", error)
                .with("error_description", description),
        )
    }

    pub(crate) fn body_bytes(&self) -> (Option<&'static str>, Bytes) {
        match &self.body {
            RespBody::Json(j) => (
                Some("application/json; charset=utf-8"),
                Bytes::from(j.to_json_string()),
            ),
            RespBody::Raw(ct, b) => (Some(*ct), b.clone()),
            RespBody::Empty => (None, Bytes::new()),
        }
    }
}
