//! Errors: [`Error`], the one error type every layer speaks, and [`EntraError`], the body Entra ID sends when it
//! refuses a request.
//!
//! Errors tell *unavailable* (this credential cannot work here; a chain may try the next one) from *failed*
//! (it was tried and refused; a chain must stop), and [`Error::is_retryable`] tells whether trying again can help.
//! No error ever contains a secret: messages are built from status codes, claim names and Entra's own error text.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::jwt::JwtError;

/// A boxed error from a user's own code.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The error body Entra ID (and the managed-identity endpoints) send with a failed request.
///
/// ```
/// use entraid_core::EntraError;
///
/// let body = br#"{"error":"invalid_client","error_description":"AADSTS70002: Error validating credentials.\r\nTrace ID: t",
///   "error_codes":[70002,50012],"trace_id":"t","correlation_id":"c","timestamp":"2025-06-17 10:30:00Z"}"#;
/// let err = EntraError::from_json(body).unwrap();
/// assert_eq!(err.error, "invalid_client");
/// assert!(err.has_code(50012));
/// assert_eq!(err.trace_id.as_deref(), Some("t"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct EntraError {
    /// The OAuth error code: `invalid_client`, `invalid_grant`, `authorization_pending`, ...
    pub error: String,
    /// The human-readable description, usually starting with `AADSTSnnnnn:`.
    #[serde(default)]
    pub error_description: Option<String>,
    /// The AADSTS error codes.
    #[serde(default)]
    pub error_codes: Vec<i64>,
    /// When Entra saw the request.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// Entra's trace id, for support requests.
    #[serde(default)]
    pub trace_id: Option<String>,
    /// The correlation id (the `client-request-id` the client sent, when it sent one).
    #[serde(default)]
    pub correlation_id: Option<String>,
    /// A link to documentation about the error.
    #[serde(default)]
    pub error_uri: Option<String>,
    /// A claims challenge (for conditional access), as a JSON string.
    #[serde(default)]
    pub claims: Option<String>,
    /// The SDK-style error type (`CredentialUnavailableError`, ...) some tools print.
    #[serde(default)]
    pub error_type: Option<String>,
}

impl EntraError {
    /// Parses an Entra error body. `None` when the body is not a JSON object with a string `error` field.
    pub fn from_json(body: &[u8]) -> Option<Self> {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        // Some endpoints nest the error: {"error": {"code": "...", "message": "..."}}.
        if let Some(inner) = value.get("error").filter(|e| e.is_object()) {
            let code = inner.get("code").and_then(|c| c.as_str())?;
            return Some(Self {
                error: code.to_owned(),
                error_description: inner
                    .get("message")
                    .and_then(|m| m.as_str())
                    .map(str::to_owned),
                ..Self::default()
            });
        }
        value.get("error")?.as_str()?;
        serde_json::from_value(value).ok()
    }

    /// Whether the AADSTS code appears in `error_codes` or in the description.
    pub fn has_code(&self, code: i64) -> bool {
        self.error_codes.contains(&code)
            || self
                .error_description
                .as_deref()
                .is_some_and(|d| d.contains(&format!("AADSTS{code}")))
    }

    /// The first line of the description, without the trace/correlation/timestamp lines Entra appends.
    pub fn summary(&self) -> Option<&str> {
        let description = self.error_description.as_deref()?;
        description
            .split(['\r', '\n'])
            .map(str::trim)
            .find(|line| !line.is_empty())
    }
}

impl fmt::Display for EntraError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.error)?;
        if let Some(summary) = self.summary() {
            write!(f, ": {summary}")?;
        }
        if !self.error_codes.is_empty() {
            let codes: Vec<String> = self
                .error_codes
                .iter()
                .map(|c| format!("AADSTS{c}"))
                .collect();
            write!(f, " [{}]", codes.join(", "))?;
        }
        if let Some(trace) = &self.trace_id {
            write!(f, " (trace id {trace}")?;
            if let Some(correlation) = &self.correlation_id {
                write!(f, ", correlation id {correlation}")?;
            }
            f.write_str(")")?;
        } else if let Some(correlation) = &self.correlation_id {
            write!(f, " (correlation id {correlation})")?;
        }
        Ok(())
    }
}

/// Formats ` (HTTP 400)` style suffixes inside error messages.
struct Suffix<'a>(Option<u16>, Option<&'a EntraError>);

impl fmt::Display for Suffix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(status) = self.0 {
            write!(f, " (HTTP {status})")?;
        }
        if let Some(entra) = self.1 {
            write!(f, ": {entra}")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong getting or reading a token.
///
/// Each variant names the credential that failed (`credential`), so a chain can report every link.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The identity provider answered, but the answer is not a usable token response.
    #[error("invalid identity provider response: {reason}")]
    InvalidResponse {
        /// What is wrong with it (never the body itself, which may hold a token).
        reason: String,
    },

    /// The access token is not a readable JWT.
    #[error("invalid access token: {0}")]
    InvalidToken(#[from] JwtError),

    /// The access token lacks a claim this library needs (or has it with the wrong type).
    #[error("access token has no string `{claim}` claim; Redis needs it as the username")]
    MissingClaim {
        /// The claim name, for example `oid`.
        claim: &'static str,
    },

    /// The token had already expired when it arrived.
    #[error("access token expired {seconds_ago} s before it was received")]
    TokenExpired {
        /// How long before receipt it expired.
        seconds_ago: u64,
    },

    /// This credential cannot work in this environment (missing variables, no managed-identity endpoint, CLI not
    /// installed or not logged in). A chain tries the next credential.
    #[error("{credential} is unavailable: {message}")]
    CredentialUnavailable {
        /// The credential, for example `ManagedIdentity`.
        credential: Cow<'static, str>,
        /// Why, with a hint where one helps (for example "run `az login`").
        message: String,
    },

    /// The credential was tried and refused (wrong secret, unknown client, MFA required, ...). Trying again does
    /// not help, and a chain stops here.
    #[error("{credential} authentication failed: {message}{}", Suffix(*status, entra.as_deref()))]
    AuthenticationFailed {
        /// The credential.
        credential: Cow<'static, str>,
        /// What happened.
        message: String,
        /// The HTTP status, when there was one.
        status: Option<u16>,
        /// Entra's error body, when it sent one.
        entra: Option<Box<EntraError>>,
    },

    /// An HTTP error status that is not an authentication refusal (throttling, server errors, unexpected codes).
    #[error("{credential} request failed{}", Suffix(Some(*status), entra.as_deref()))]
    Http {
        /// The credential.
        credential: Cow<'static, str>,
        /// The HTTP status.
        status: u16,
        /// The server's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
        /// Entra's error body, when it sent one.
        entra: Option<Box<EntraError>>,
    },

    /// The request never got an HTTP answer: connection refused or reset, DNS, TLS, a truncated body.
    #[error("{credential} transport error: {message}")]
    Transport {
        /// The credential.
        credential: Cow<'static, str>,
        /// What happened.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },

    /// The request took longer than its timeout.
    #[error("{credential} timed out after {after:?}")]
    Timeout {
        /// The credential.
        credential: Cow<'static, str>,
        /// The timeout that elapsed.
        after: Duration,
    },

    /// Options or environment that can never work (a bad tenant id, a ratio outside (0, 1], ...).
    #[error("invalid configuration: {message}")]
    Configuration {
        /// What is wrong and how to fix it.
        message: String,
    },

    /// An error from a user's own identity provider.
    #[error("{source}")]
    Custom {
        /// The user's error.
        source: BoxError,
        /// Whether trying again can help.
        retryable: bool,
    },
}

impl Error {
    /// A [`Error::CredentialUnavailable`].
    pub fn unavailable(
        credential: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self::CredentialUnavailable {
            credential: credential.into(),
            message: message.into(),
        }
    }

    /// An [`Error::AuthenticationFailed`] without an HTTP exchange behind it.
    pub fn authentication_failed(
        credential: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self::AuthenticationFailed {
            credential: credential.into(),
            message: message.into(),
            status: None,
            entra: None,
        }
    }

    /// A [`Error::Transport`].
    pub fn transport(
        credential: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
        source: Option<BoxError>,
    ) -> Self {
        Self::Transport {
            credential: credential.into(),
            message: message.into(),
            source,
        }
    }

    /// A [`Error::Timeout`].
    pub fn timeout(credential: impl Into<Cow<'static, str>>, after: Duration) -> Self {
        Self::Timeout {
            credential: credential.into(),
            after,
        }
    }

    /// A [`Error::Configuration`].
    pub fn configuration(message: impl Into<String>) -> Self {
        Self::Configuration {
            message: message.into(),
        }
    }

    /// A [`Error::InvalidResponse`].
    pub fn invalid_response(reason: impl Into<String>) -> Self {
        Self::InvalidResponse {
            reason: reason.into(),
        }
    }

    /// A [`Error::Custom`] wrapping a user's error.
    pub fn custom(source: impl Into<BoxError>, retryable: bool) -> Self {
        Self::Custom {
            source: source.into(),
            retryable,
        }
    }

    /// Classifies a failed HTTP exchange: a 400, 401 or 403 carrying an Entra error is an authentication failure
    /// (not retryable); anything else is an [`Error::Http`] whose retryability follows its status.
    pub fn from_http_status(
        credential: impl Into<Cow<'static, str>>,
        status: u16,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> Self {
        let credential = credential.into();
        let entra = EntraError::from_json(body).map(Box::new);
        match (status, entra) {
            (400 | 401 | 403, Some(entra)) => Self::AuthenticationFailed {
                credential,
                message: "the identity provider refused the request".to_owned(),
                status: Some(status),
                entra: Some(entra),
            },
            (_, entra) => Self::Http {
                credential,
                status,
                retry_after,
                entra,
            },
        }
    }

    /// Whether trying the same request again can help: transport errors, timeouts, HTTP 408, 429 and 500-504,
    /// and custom errors marked retryable. Authentication failures, bad responses and bad configuration are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport { .. } | Self::Timeout { .. } => true,
            Self::Http { status, .. } => is_retryable_status(*status),
            Self::Custom { retryable, .. } => *retryable,
            _ => false,
        }
    }

    /// Whether this credential is unavailable here (a chain may try the next one).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::CredentialUnavailable { .. })
    }

    /// The server's `Retry-After`, when it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status, when the error came from an HTTP answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Http { status, .. } => Some(*status),
            Self::AuthenticationFailed { status, .. } => *status,
            _ => None,
        }
    }

    /// Entra's error body, when the error carried one.
    pub fn entra_error(&self) -> Option<&EntraError> {
        match self {
            Self::Http { entra, .. } | Self::AuthenticationFailed { entra, .. } => entra.as_deref(),
            _ => None,
        }
    }
}

/// HTTP statuses worth retrying: 408, 429 and 500-504.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=504)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_BAD_SECRET: &str = r#"{
      "error": "invalid_client",
      "error_description": "AADSTS70002: Error validating credentials. AADSTS50012: Invalid client secret is provided.\r\nTrace ID: 12345678-1234-1234-1234-123456789012\r\nCorrelation ID: 12345678-1234-1234-1234-123456789012\r\nTimestamp: 2025-06-17 10:30:00Z",
      "error_codes": [70002, 50012],
      "timestamp": "2025-06-17 10:30:00Z",
      "trace_id": "12345678-1234-1234-1234-123456789012",
      "correlation_id": "12345678-1234-1234-1234-1234567890ab"
    }"#;

    #[test]
    fn parses_the_seed_error_body() {
        let err = EntraError::from_json(SEED_BAD_SECRET.as_bytes()).unwrap();
        assert_eq!(err.error, "invalid_client");
        assert_eq!(err.error_codes, vec![70002, 50012]);
        assert!(err.has_code(70002) && err.has_code(50012) && !err.has_code(50013));
        assert_eq!(
            err.trace_id.as_deref(),
            Some("12345678-1234-1234-1234-123456789012")
        );
        assert_eq!(
            err.correlation_id.as_deref(),
            Some("12345678-1234-1234-1234-1234567890ab")
        );
        assert_eq!(err.timestamp.as_deref(), Some("2025-06-17 10:30:00Z"));
        assert_eq!(
            err.summary(),
            Some(
                "AADSTS70002: Error validating credentials. AADSTS50012: Invalid client secret is provided."
            )
        );
        let shown = err.to_string();
        assert!(shown.starts_with("invalid_client: AADSTS70002"), "{shown}");
        assert!(shown.contains("[AADSTS70002, AADSTS50012]"), "{shown}");
        assert!(
            shown.contains("trace id 12345678-1234-1234-1234-123456789012"),
            "{shown}"
        );
        assert!(
            shown.contains("correlation id 12345678-1234-1234-1234-1234567890ab"),
            "{shown}"
        );
    }

    #[test]
    fn parses_every_seed_error_shape() {
        // Pending device code, without codes or ids: the code is still found in the description.
        let pending = r#"{"error":"authorization_pending","error_description":"AADSTS70016: The request is pending and the device is not yet authorized. Please try again later.\r\n[...]"}"#;
        let err = EntraError::from_json(pending.as_bytes()).unwrap();
        assert!(err.has_code(70016));
        // Federated mismatch, codes without ids.
        let federated = r#"{"error":"invalid_request","error_description":"AADSTS70021: No matching federated identity record found for presented assertion.","error_codes":[70021]}"#;
        assert!(
            EntraError::from_json(federated.as_bytes())
                .unwrap()
                .has_code(70021)
        );
        // SDK-style unavailable shape.
        let sdk = r#"{"error":"credential_unavailable","error_description":"Azure CLI not found or not logged in. Please run 'az login' first.","error_type":"CredentialUnavailableError"}"#;
        let err = EntraError::from_json(sdk.as_bytes()).unwrap();
        assert_eq!(
            err.error_type.as_deref(),
            Some("CredentialUnavailableError")
        );
        // Nested `{"error":{"code","message"}}` shape.
        let nested = r#"{"error":{"code":"invalid_resource","message":"no such resource"}}"#;
        let err = EntraError::from_json(nested.as_bytes()).unwrap();
        assert_eq!(
            (err.error.as_str(), err.summary()),
            ("invalid_resource", Some("no such resource"))
        );
        // Claims challenge and error_uri.
        let challenge = r#"{"error":"interaction_required","claims":"{\"access_token\":{}}","error_uri":"https://x"}"#;
        let err = EntraError::from_json(challenge.as_bytes()).unwrap();
        assert_eq!(err.claims.as_deref(), Some("{\"access_token\":{}}"));
        assert_eq!(err.error_uri.as_deref(), Some("https://x"));
    }

    #[test]
    fn non_error_bodies_are_not_entra_errors() {
        for body in [
            "",
            "<html><body>502 Bad Gateway</body></html>",
            "[]",
            "{}",
            r#"{"error":5}"#,
            "{\"error\":",
        ] {
            assert_eq!(EntraError::from_json(body.as_bytes()), None, "{body}");
        }
    }

    #[test]
    fn classification_and_retryability() {
        let auth = Error::from_http_status("ClientSecret", 401, None, SEED_BAD_SECRET.as_bytes());
        assert!(matches!(
            auth,
            Error::AuthenticationFailed {
                status: Some(401),
                ..
            }
        ));
        assert!(!auth.is_retryable());
        assert!(auth.entra_error().unwrap().has_code(50012));
        let shown = auth.to_string();
        assert!(
            shown.contains("ClientSecret authentication failed") && shown.contains("(HTTP 401)"),
            "{shown}"
        );
        assert!(shown.contains("AADSTS50012"), "{shown}");

        let throttled =
            Error::from_http_status("ManagedIdentity", 429, Some(Duration::from_secs(7)), b"");
        assert!(throttled.is_retryable());
        assert_eq!(throttled.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(throttled.status(), Some(429));

        for status in [408, 429, 500, 501, 502, 503, 504] {
            assert!(
                Error::from_http_status("x", status, None, b"<html>").is_retryable(),
                "{status}"
            );
        }
        for status in [400, 401, 403, 404, 410, 505] {
            assert!(
                !Error::from_http_status("x", status, None, b"").is_retryable(),
                "{status}"
            );
        }
        // A 400 without an Entra body is an HTTP error, still not retryable.
        assert!(matches!(
            Error::from_http_status("x", 400, None, b"nope"),
            Error::Http { status: 400, .. }
        ));

        assert!(Error::transport("x", "connection reset", None).is_retryable());
        assert!(Error::timeout("x", Duration::from_secs(30)).is_retryable());
        assert!(!Error::unavailable("x", "no endpoint").is_retryable());
        assert!(Error::unavailable("x", "no endpoint").is_unavailable());
        assert!(!Error::configuration("bad").is_retryable());
        assert!(!Error::invalid_response("not json").is_retryable());
        assert!(!Error::MissingClaim { claim: "oid" }.is_retryable());
        assert!(Error::custom("boom", true).is_retryable());
        assert!(!Error::custom("boom", false).is_retryable());
    }

    #[test]
    fn messages_read_well() {
        let e = Error::unavailable("AzureCli", "not logged in; run `az login`");
        assert_eq!(
            e.to_string(),
            "AzureCli is unavailable: not logged in; run `az login`"
        );
        let e = Error::timeout("ManagedIdentity", Duration::from_secs(1));
        assert_eq!(e.to_string(), "ManagedIdentity timed out after 1s");
        let e = Error::from_http_status("Imds", 503, None, b"");
        assert_eq!(e.to_string(), "Imds request failed (HTTP 503)");
        let e = Error::MissingClaim { claim: "oid" };
        assert!(e.to_string().contains("`oid`"));
    }
}
