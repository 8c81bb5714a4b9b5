//! The endpoints a person meets in the user flows: `devicecode` and `authorize` (with its loopback redirect).

use std::time::Duration;

use super::client_auth::{client_of, find_client};
use super::grant_context::{Ctx, tenant_not_found};
use super::http::{Req, Resp, RespBody};
use super::issue::{OIDC_SCOPES, parse_user_scope};
use super::mint::audience_of;
use super::util::{OrderedJson, percent_encode, random_token, random_user_code};
use super::{AuthCodeRecord, DeviceCodeRecord, Inner};
use crate::keys::random_uuid;

/// How long authorization codes live.
const AUTH_CODE_LIFETIME: i64 = 600;

/// `POST /{tenant}/oauth2/v2.0/devicecode`.
pub(crate) fn devicecode_endpoint(inner: &Inner, tenant: &str, req: &Req) -> Resp {
    let mut st = inner.lock();
    let st = &mut *st;
    let ctx = Ctx::new(inner, req, tenant, st);
    if !st.tenants.contains(tenant) {
        return tenant_not_found(&ctx);
    }
    let result = (|| {
        let (client_id, _) = client_of(&ctx, st)?;
        let scope = ctx.param("scope")?;
        parse_user_scope(&ctx, scope)?;
        let policy = st.device_policy.clone();
        let user_code = random_user_code();
        let device_code = format!("DAQABAAEAAA.{}", random_token(48));
        let expires_in = i64::try_from(policy.expires_in.as_secs()).unwrap_or(i64::MAX / 4);
        let interval = policy.interval.as_secs();
        let verification_uri = "https://microsoft.com/devicelogin";
        st.device_codes.insert(
            device_code.clone(),
            DeviceCodeRecord {
                tenant: tenant.to_owned(),
                client_id,
                user_code: user_code.clone(),
                scope: scope.to_owned(),
                expires_at: ctx.now + expires_in,
                polls: 0,
                policy,
                approved_by: None,
                declined: false,
                redeemed: false,
            },
        );
        Ok(Resp::json(
            200,
            OrderedJson::new()
                .with("user_code", user_code.clone())
                .with("device_code", device_code)
                .with("verification_uri", verification_uri)
                .with("expires_in", expires_in)
                .with("interval", interval)
                .with(
                    "message",
                    format!(
                        "To sign in, use a web browser to open the page {verification_uri} and enter the code \
                         {user_code} to authenticate."
                    ),
                ),
        ))
    })();
    result.unwrap_or_else(|resp| resp)
}

pub(super) fn html_error(status: u16, message: &str) -> Resp {
    Resp::raw(
        status,
        "text/html; charset=utf-8",
        format!(
            "<!DOCTYPE html><html><head><title>Sign in</title></head><body><p>{message}</p></body></html>\n"
        ),
    )
}

pub(super) fn is_loopback_redirect(uri: &str) -> bool {
    let rest = uri.strip_prefix("http://").unwrap_or("");
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    matches!(host, "localhost" | "127.0.0.1" | "[::1]")
}

/// `GET /{tenant}/oauth2/v2.0/authorize`: signs a user in (per the authorize policy) and redirects.
pub(crate) async fn authorize_endpoint(inner: &Inner, tenant: &str, req: &Req) -> Resp {
    let delay = inner.lock().authorize_policy.delay;
    if delay > Duration::ZERO {
        tokio::time::sleep(delay).await;
    }
    let mut st = inner.lock();
    let st = &mut *st;
    let now = inner.now_with(st.skew_secs);
    if !st.tenants.contains(tenant) {
        return html_error(400, &format!("AADSTS90002: Tenant '{tenant}' not found."));
    }
    let client_id = req.query_param("client_id").unwrap_or_default();
    if find_client(st, tenant, client_id).is_none() {
        return html_error(
            400,
            &format!(
                "AADSTS700016: Application with identifier '{client_id}' was not found in the directory."
            ),
        );
    }
    let redirect_uri = req.query_param("redirect_uri").unwrap_or_default();
    if !is_loopback_redirect(redirect_uri) {
        return html_error(
            400,
            "AADSTS50011: The redirect URI specified in the request does not match the redirect URIs configured \
             for the application (the emulator accepts http://localhost and http://127.0.0.1).",
        );
    }
    let state = req.query_param("state");
    let redirect = |params: Vec<(&str, String)>| {
        let mut location = redirect_uri.to_owned();
        let mut sep = if location.contains('?') { '&' } else { '?' };
        let mut all = params;
        if let Some(state) = state {
            all.push(("state", state.to_owned()));
        }
        for (k, v) in all {
            location.push(sep);
            location.push_str(k);
            location.push('=');
            location.push_str(&percent_encode(&v));
            sep = '&';
        }
        Resp {
            status: 302,
            headers: vec![("location".into(), location)],
            body: RespBody::Empty,
        }
    };
    let error = |e: &str, d: &str| {
        redirect(vec![
            ("error", e.to_owned()),
            ("error_description", d.to_owned()),
        ])
    };
    if let Some((e, d)) = &st.authorize_policy.refuse {
        return error(e, d);
    }
    if req.query_param("response_type") != Some("code") {
        return error(
            "unsupported_response_type",
            "AADSTS700054: response_type 'code' is the only one the emulator supports.",
        );
    }
    let challenge = req.query_param("code_challenge").filter(|c| !c.is_empty());
    if challenge.is_some() && req.query_param("code_challenge_method") != Some("S256") {
        return error(
            "invalid_request",
            "AADSTS501491: code_challenge_method must be S256.",
        );
    }
    let scope = req.query_param("scope").unwrap_or_default();
    let scope_ok = {
        let resources: Vec<&str> = scope
            .split_whitespace()
            .filter(|s| !OIDC_SCOPES.contains(s))
            .collect();
        matches!(resources.as_slice(), [one] if audience_of(one).is_some())
    };
    if !scope_ok {
        return error(
            "invalid_scope",
            &format!("AADSTS70011: The scope '{scope}' is not valid."),
        );
    }
    let wanted = st
        .authorize_policy
        .username
        .clone()
        .or_else(|| req.query_param("login_hint").map(str::to_owned))
        .map(|u| (tenant.to_owned(), u.to_lowercase()));
    let user_key = match wanted {
        Some(key) => st.users.contains_key(&key).then_some(key),
        None => st.user_order.iter().find(|k| k.0 == tenant).cloned(),
    };
    let Some(user_key) = user_key else {
        return error(
            "access_denied",
            "AADSTS50034: No such user in the directory.",
        );
    };
    let code = format!("1.{}", random_token(48));
    st.auth_codes.insert(
        code.clone(),
        AuthCodeRecord {
            tenant: tenant.to_owned(),
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            code_challenge: challenge.map(str::to_owned),
            user_key,
            scope: scope.to_owned(),
            expires_at: now + AUTH_CODE_LIFETIME,
            redeemed: false,
        },
    );
    redirect(vec![("code", code), ("session_state", random_uuid())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_redirects_only() {
        assert!(is_loopback_redirect("http://localhost:8400/"));
        assert!(is_loopback_redirect("http://127.0.0.1:1234"));
        assert!(is_loopback_redirect("http://localhost"));
        assert!(!is_loopback_redirect("https://evil.example/cb"));
        assert!(!is_loopback_redirect("http://localhost.evil.example/"));
    }
}
