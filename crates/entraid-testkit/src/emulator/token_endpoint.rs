//! `POST /{tenant}/oauth2/v2.0/token`: the dispatch to each grant, and the token responses the grants send.

use hyper::Method;

use super::Inner;
use super::grant_context::{Ctx, tenant_not_found};
use super::grants::{
    authorization_code_grant, client_credentials, device_code_grant, on_behalf_of, password_grant,
    refresh_token_grant,
};
use super::http::{Req, Resp};

const GRANT_DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";
const GRANT_JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// `POST /{tenant}/oauth2/v2.0/token`.
pub(crate) fn token_endpoint(inner: &Inner, tenant: &str, req: &Req) -> Resp {
    let mut st = inner.lock();
    let st = &mut *st;
    let ctx = Ctx::new(inner, req, tenant, st);
    if req.method != Method::POST {
        return ctx.err(
            400,
            "invalid_request",
            &[900561],
            &format!(
                "AADSTS900561: The endpoint only accepts POST requests. Received a {} request.",
                req.method
            ),
        );
    }
    if !st.tenants.contains(tenant) {
        return tenant_not_found(&ctx);
    }
    let result = (|| {
        let grant = ctx.param("grant_type")?;
        match grant {
            "client_credentials" => client_credentials(&ctx, st),
            "password" => password_grant(&ctx, st),
            GRANT_DEVICE_CODE | "device_code" => device_code_grant(&ctx, st),
            "authorization_code" => authorization_code_grant(&ctx, st),
            "refresh_token" => refresh_token_grant(&ctx, st),
            GRANT_JWT_BEARER => on_behalf_of(&ctx, st),
            other => Err(ctx.err(
                400,
                "unsupported_grant_type",
                &[70003],
                &format!("AADSTS70003: The app requested an unsupported grant type '{other}'."),
            )),
        }
    })();
    result.unwrap_or_else(|resp| resp)
}
