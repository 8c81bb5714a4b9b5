//! The request log: what each request asked, with secrets redacted, and how it was answered.

use super::faults::Endpoint;

/// The text that replaces a secret in the log.
pub const REDACTED: &str = "[redacted]";

/// Parameters whose values are secrets: redacted in the log.
const SECRET_PARAMS: &[&str] = &[
    "client_secret",
    "client_assertion",
    "assertion",
    "password",
    "refresh_token",
    "code",
    "code_verifier",
    "device_code",
    "subject_token",
];

/// Headers the log keeps; the ones marked secret are redacted (for `Authorization`, the scheme is kept).
const LOGGED_HEADERS: &[(&str, bool)] = &[
    ("metadata", false),
    ("x-identity-header", true),
    ("secret", true),
    ("authorization", true),
    ("content-type", false),
    ("accept", false),
    ("client-request-id", false),
    ("return-client-request-id", false),
    ("x-client-sku", false),
    ("x-client-ver", false),
    ("x-tfs-fedauthredirect", false),
    ("user-agent", false),
];

/// One request the emulator received.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestRecord {
    /// The endpoint it reached, `None` for an unknown path.
    pub endpoint: Option<Endpoint>,
    /// The HTTP method.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// Whether it came over HTTPS.
    pub tls: bool,
    /// Query parameters, in order, secrets redacted.
    pub query: Vec<(String, String)>,
    /// Form body parameters, in order, secrets redacted.
    pub form: Vec<(String, String)>,
    /// The headers of interest, secrets redacted.
    pub headers: hyper::HeaderMap,
    /// The status answered; 0 when the connection was reset instead.
    pub status: u16,
    /// The injected fault, if one answered this request ([`Fault::label`](super::Fault::label)).
    pub fault: Option<String>,
}

impl RequestRecord {
    /// A query or form parameter (query first).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .chain(self.form.iter())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A logged header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The OAuth `grant_type` of a token request.
    pub fn grant_type(&self) -> Option<&str> {
        self.param("grant_type")
    }
}

pub(crate) fn redact_params(params: &[(String, String)]) -> Vec<(String, String)> {
    params
        .iter()
        .map(|(k, v)| {
            if SECRET_PARAMS.contains(&k.as_str()) {
                (k.clone(), REDACTED.to_owned())
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect()
}

pub(crate) fn logged_headers(headers: &hyper::HeaderMap) -> hyper::HeaderMap {
    use hyper::header::HeaderValue;
    let redacted = HeaderValue::from_static(REDACTED);
    let mut out = hyper::HeaderMap::new();
    for (name, secret) in LOGGED_HEADERS {
        let Ok(header_name) = hyper::header::HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        for value in headers.get_all(&header_name) {
            let shown = if !secret {
                value.clone()
            } else if *name == "authorization" {
                // Only the scheme is kept (`Bearer <redacted>`).
                value
                    .to_str()
                    .ok()
                    .and_then(|v| v.split_once(' '))
                    .and_then(|(scheme, _)| {
                        HeaderValue::from_str(&format!("{scheme} {REDACTED}")).ok()
                    })
                    .unwrap_or_else(|| redacted.clone())
            } else {
                redacted.clone()
            };
            out.append(header_name.clone(), shown);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        let params = vec![
            ("client_secret".to_owned(), "s3cret".to_owned()),
            ("scope".to_owned(), "x/.default".to_owned()),
        ];
        let red = redact_params(&params);
        assert_eq!(red[0].1, REDACTED);
        assert_eq!(red[1].1, "x/.default");
        let mut headers = hyper::HeaderMap::new();
        headers.insert("authorization", "Bearer abc.def".parse().unwrap());
        headers.insert("x-identity-header", "hdr-secret".parse().unwrap());
        headers.insert("metadata", "true".parse().unwrap());
        headers.insert("x-other", "ignored".parse().unwrap());
        let logged = logged_headers(&headers);
        let text = format!("{logged:?}");
        assert!(!text.contains("abc.def") && !text.contains("hdr-secret"));
        assert!(text.contains("Bearer [redacted]"));
        assert!(!text.contains("ignored"));
        let rec = RequestRecord {
            endpoint: None,
            method: "GET".into(),
            path: "/".into(),
            tls: false,
            query: red,
            form: vec![],
            headers: logged,
            status: 200,
            fault: None,
        };
        assert_eq!(rec.header("Metadata"), Some("true"));
        assert_eq!(rec.param("scope"), Some("x/.default"));
    }
}
