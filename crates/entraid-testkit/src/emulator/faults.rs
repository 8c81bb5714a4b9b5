//! Fault injection: per-endpoint scripts of [`Fault`]s, consumed one per request, then normal behaviour.

use std::time::Duration;

/// An emulator endpoint, for fault scripts and the request log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Endpoint {
    /// `POST /{tenant}/oauth2/v2.0/token`, every grant.
    Token,
    /// `POST /{tenant}/oauth2/v2.0/devicecode`.
    DeviceCode,
    /// `GET /{tenant}/oauth2/v2.0/authorize`.
    Authorize,
    /// `GET /{tenant}/v2.0/.well-known/openid-configuration`.
    OpenIdConfiguration,
    /// `GET /{tenant}/discovery/v2.0/keys`.
    Keys,
    /// IMDS: `GET /metadata/identity/oauth2/token`.
    Imds,
    /// App Service / Functions: `GET /msi/token`.
    AppService,
    /// Azure Arc: `GET /arc/metadata/identity/oauth2/token`.
    AzureArc,
    /// Cloud Shell: `POST /cloudshell/oauth2/token`.
    CloudShell,
    /// Azure Machine Learning: `GET /azureml/msi/token`.
    AzureMl,
    /// The emulated GitHub Actions OIDC endpoint: `GET /github/idtoken`.
    GitHubOidc,
    /// The emulated Azure Pipelines OIDC endpoint: `POST /pipelines/oidctoken`.
    PipelinesOidc,
}

impl Endpoint {
    /// Every endpoint.
    pub const ALL: [Endpoint; 12] = [
        Endpoint::Token,
        Endpoint::DeviceCode,
        Endpoint::Authorize,
        Endpoint::OpenIdConfiguration,
        Endpoint::Keys,
        Endpoint::Imds,
        Endpoint::AppService,
        Endpoint::AzureArc,
        Endpoint::CloudShell,
        Endpoint::AzureMl,
        Endpoint::GitHubOidc,
        Endpoint::PipelinesOidc,
    ];
}

/// One injected misbehaviour, answering one request in place of (or on top of) the normal answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer with this status and a JSON error body
    /// (`{"error":..,"error_description":"Injected fault: HTTP <status>",..}`).
    Status(u16),
    /// Answer with this status, a JSON error body and `Retry-After: <seconds>`.
    /// Made with [`Fault::retry_after`]: `Fault::Status(429).retry_after(2)`.
    StatusRetryAfter {
        /// The HTTP status.
        status: u16,
        /// The `Retry-After` value, in seconds.
        retry_after_secs: u64,
    },
    /// Wait this long (on tokio's clock), then answer normally: a delay longer than the client's timeout.
    Delay(Duration),
    /// Answer 200 with a `application/json` body that is not valid JSON.
    MalformedJson,
    /// Answer with this status and an HTML error page (`text/html`), as a proxy or gateway would.
    Html(u16),
    /// Send the normal answer's headers with its full `Content-Length`, then half of the body, then close.
    TruncatedBody,
    /// Answer normally, with a padding field that makes the JSON body larger than 1 MiB (2 MiB).
    OversizedBody,
    /// Reset the connection (TCP RST) without answering.
    ResetConnection,
    /// Answer normally, with `expires_in`, `ext_expires_in`, `expires_on` and `refresh_in` as strings.
    ExpiresInAsString,
    /// Answer normally, with `expires_in`, `ext_expires_in`, `expires_on` and `refresh_in` as numbers.
    ExpiresInAsNumber,
    /// Answer exactly this: status, content type and body.
    Custom {
        /// The HTTP status.
        status: u16,
        /// The `Content-Type` header.
        content_type: String,
        /// The body.
        body: String,
    },
}

impl Fault {
    /// Adds `Retry-After: <secs>` to a [`Fault::Status`] (or changes it on a [`Fault::StatusRetryAfter`]).
    /// Other faults are returned unchanged.
    #[must_use]
    pub fn retry_after(self, secs: u64) -> Fault {
        match self {
            Fault::Status(status) | Fault::StatusRetryAfter { status, .. } => {
                Fault::StatusRetryAfter {
                    status,
                    retry_after_secs: secs,
                }
            }
            other => other,
        }
    }

    /// A short name for the request log.
    pub fn label(&self) -> String {
        match self {
            Fault::Status(s) => format!("status {s}"),
            Fault::StatusRetryAfter {
                status,
                retry_after_secs,
            } => format!("status {status} retry-after {retry_after_secs}"),
            Fault::Delay(d) => format!("delay {d:?}"),
            Fault::MalformedJson => "malformed json".into(),
            Fault::Html(s) => format!("html {s}"),
            Fault::TruncatedBody => "truncated body".into(),
            Fault::OversizedBody => "oversized body".into(),
            Fault::ResetConnection => "reset connection".into(),
            Fault::ExpiresInAsString => "expires_in as string".into(),
            Fault::ExpiresInAsNumber => "expires_in as number".into(),
            Fault::Custom { status, .. } => format!("custom {status}"),
        }
    }
}

/// The OAuth-style error name the emulator puts in an injected status's body.
pub(crate) fn error_name_for_status(status: u16) -> &'static str {
    match status {
        400 => "invalid_request",
        401 => "invalid_client",
        403 => "access_denied",
        404 => "not_found",
        408 => "request_timeout",
        410 => "gone",
        429 => "too_many_requests",
        503 => "temporarily_unavailable",
        500..=599 => "server_error",
        _ => "injected_fault",
    }
}

/// The reason phrase for common statuses (for HTML pages and descriptions).
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        410 => "Gone",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_builds_on_status_only() {
        assert_eq!(
            Fault::Status(429).retry_after(2),
            Fault::StatusRetryAfter {
                status: 429,
                retry_after_secs: 2
            }
        );
        assert_eq!(Fault::MalformedJson.retry_after(2), Fault::MalformedJson);
        assert_eq!(
            Fault::Status(503).retry_after(1).label(),
            "status 503 retry-after 1"
        );
        assert_eq!(error_name_for_status(503), "temporarily_unavailable");
        assert_eq!(error_name_for_status(502), "server_error");
        assert_eq!(reason_phrase(410), "Gone");
    }
}
