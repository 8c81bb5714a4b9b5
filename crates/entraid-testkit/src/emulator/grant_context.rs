//! The context of one token-endpoint request ([`Ctx`]) and the Entra-shaped errors it answers with.

use serde_json::Value;

use super::http::{Req, Resp};
use super::util::{OrderedJson, utc_timestamp};
use super::{Inner, State};
use crate::keys::random_uuid;

/// The context of one request to a tenant endpoint.
pub(super) struct Ctx<'a> {
    pub(super) inner: &'a Inner,
    pub(super) req: &'a Req,
    pub(super) tenant: &'a str,
    pub(super) now: i64,
}

impl<'a> Ctx<'a> {
    /// The context of `req` to `tenant`, at the emulator's time shifted by the tenant state's clock skew.
    pub(super) fn new(inner: &'a Inner, req: &'a Req, tenant: &'a str, st: &State) -> Self {
        Self {
            inner,
            req,
            tenant,
            now: inner.now_with(st.skew_secs),
        }
    }

    /// An Entra-shaped error: `message` starts with `AADSTSnnnnn:`.
    pub(super) fn err(&self, status: u16, error: &str, codes: &[i64], message: &str) -> Resp {
        entra_error(
            self.inner, self.req, self.now, status, error, codes, message,
        )
    }

    pub(super) fn missing(&self, param: &str) -> Resp {
        self.err(
            400,
            "invalid_request",
            &[900144],
            &format!(
                "AADSTS900144: The request body must contain the following parameter: '{param}'."
            ),
        )
    }

    pub(super) fn param(&self, name: &str) -> Result<&str, Resp> {
        self.req
            .form_param(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| self.missing(name))
    }

    /// A confidential request that presents neither a client secret nor a client assertion (also a public client
    /// asking for a grant only confidential clients may use).
    pub(super) fn no_client_credential(&self) -> Resp {
        self.err(
            401,
            "invalid_client",
            &[7000218],
            "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or \
             'client_secret'.",
        )
    }

    /// A JWT (client assertion or user assertion) that does not decode.
    pub(super) fn malformed_jwt(&self) -> Resp {
        self.err(
            400,
            "invalid_request",
            &[50027],
            "AADSTS50027: JWT token is invalid or malformed.",
        )
    }

    pub(super) fn bad_secret(&self) -> Resp {
        self.err(
            401,
            "invalid_client",
            &[70002, 50012],
            "AADSTS70002: Error validating credentials. AADSTS50012: Invalid client secret is provided.",
        )
    }

    pub(super) fn bad_certificate(&self, detail: Option<&str>) -> Resp {
        let mut message =
            "AADSTS70002: Error validating credentials. AADSTS50013: Invalid client certificate."
                .to_owned();
        if let Some(detail) = detail {
            message.push(' ');
            message.push_str(detail);
        }
        self.err(401, "invalid_client", &[70002, 50013], &message)
    }

    pub(super) fn unknown_client(&self, client_id: &str) -> Resp {
        self.err(
            400,
            "unauthorized_client",
            &[700016],
            &format!(
                "AADSTS700016: Application with identifier '{client_id}' was not found in the directory '{}'. This \
                 can happen if the application has not been installed by the administrator of the tenant or \
                 consented to by any user in the tenant. You may have sent your authentication request to the \
                 wrong tenant.",
                self.tenant
            ),
        )
    }

    pub(super) fn time_range(&self, nbf: Option<i64>, exp: Option<i64>) -> Resp {
        self.err(
            401,
            "invalid_client",
            &[700024],
            &format!(
                "AADSTS700024: Client assertion is not within its valid time range. Current time: {}, assertion \
                 valid from {}, expiry time of assertion {}.",
                utc_timestamp(self.now),
                nbf.map_or_else(|| "-".to_owned(), utc_timestamp),
                exp.map_or_else(|| "-".to_owned(), utc_timestamp),
            ),
        )
    }

    pub(super) fn invalid_grant(&self, codes: &[i64], message: &str) -> Resp {
        self.err(400, "invalid_grant", codes, message)
    }
}

/// An Entra-shaped error body.
pub(crate) fn entra_error(
    inner: &Inner,
    req: &Req,
    now: i64,
    status: u16,
    error: &str,
    codes: &[i64],
    message: &str,
) -> Resp {
    let trace = random_uuid();
    let correlation = req
        .header("client-request-id")
        .map(str::to_owned)
        .unwrap_or_else(random_uuid);
    let timestamp = utc_timestamp(now);
    let description = format!(
        "{message}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {timestamp}"
    );
    let first = codes.first().copied().unwrap_or(0);
    Resp::json(
        status,
        OrderedJson::new()
            .with("error", error)
            .with("error_description", description)
            .with("error_codes", Value::from(codes.to_vec()))
            .with("timestamp", timestamp)
            .with("trace_id", trace)
            .with("correlation_id", correlation)
            .with(
                "error_uri",
                format!("{}/error?code={first}", req.base(inner)),
            ),
    )
}

pub(super) fn tenant_not_found(ctx: &Ctx<'_>) -> Resp {
    ctx.err(
        400,
        "invalid_request",
        &[90002],
        &format!(
            "AADSTS90002: Tenant '{}' not found. Check to make sure you have the correct tenant ID and are signing \
             into the correct cloud.",
            ctx.tenant
        ),
    )
}
