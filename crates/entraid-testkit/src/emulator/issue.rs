//! The token responses the grants answer with: Entra's field order, the user flows' scopes, and the access, id
//! and refresh tokens a user sign-in gets.

use super::client_auth::ClientAuth;
use super::grant_context::Ctx;
use super::http::Resp;
use super::mint::{Subject, audience_of, id_token, mint};
use super::registry::TokenPolicy;
use super::util::{OrderedJson, random_token};
use super::{RefreshRecord, State};

/// Scopes that ask for OpenID Connect tokens, not for a resource.
pub(super) const OIDC_SCOPES: &[&str] = &["openid", "profile", "offline_access", "email"];

/// The JSON of a successful token response, in Entra's field order.
pub(super) fn token_response(
    jwt: String,
    lifetime: i64,
    policy: &TokenPolicy,
    scope: Option<&str>,
    refresh_token: Option<String>,
    id_token: Option<String>,
) -> Resp {
    let mut body = OrderedJson::new().with("token_type", "Bearer");
    if let Some(scope) = scope {
        body.push("scope", scope);
    }
    body.push("expires_in", lifetime);
    body.push("ext_expires_in", lifetime);
    if let Some(refresh_in) = policy.refresh_in {
        body.push("refresh_in", refresh_in.as_secs());
    }
    body.push("access_token", jwt);
    if let Some(rt) = refresh_token {
        body.push("refresh_token", rt);
    }
    if let Some(id) = id_token {
        body.push("id_token", id);
    }
    Resp::json(200, body)
}

/// Parsed scopes of a user flow: one resource scope, plus OpenID scopes.
pub(super) struct UserScope {
    pub(super) resource_scope: String,
    pub(super) aud: String,
    pub(super) openid: bool,
    pub(super) offline: bool,
}

pub(super) fn parse_user_scope(ctx: &Ctx<'_>, scope: &str) -> Result<UserScope, Resp> {
    let parts: Vec<&str> = scope.split_whitespace().collect();
    let resources: Vec<&str> = parts
        .iter()
        .copied()
        .filter(|s| !OIDC_SCOPES.contains(s))
        .collect();
    let invalid = || {
        ctx.err(
            400,
            "invalid_scope",
            &[70011],
            &format!(
                "AADSTS70011: The provided request must include a 'scope' input parameter. The provided value for \
                 the input parameter 'scope' is not valid. The scope {scope} is not valid."
            ),
        )
    };
    let [resource] = resources.as_slice() else {
        return Err(invalid());
    };
    let aud = audience_of(resource).ok_or_else(invalid)?;
    Ok(UserScope {
        resource_scope: (*resource).to_owned(),
        aud,
        openid: parts.contains(&"openid"),
        offline: true,
    })
}

/// Issues user tokens: access token, refresh token, and an id token when `openid` was asked.
pub(super) fn issue_user_tokens(
    ctx: &Ctx<'_>,
    st: &mut State,
    user_key: &(String, String),
    client_id: &str,
    auth: ClientAuth,
    scope: &UserScope,
) -> Resp {
    let Some(subject) = Subject::user(st, user_key, client_id, auth.acr()) else {
        return ctx.invalid_grant(
            &[50034],
            "AADSTS50034: The user account does not exist in the directory.",
        );
    };
    let (jwt, lifetime) = mint(ctx.inner, st, &subject, &scope.aud, ctx.now);
    let refresh = scope.offline.then(|| {
        let rt = format!("rt.{}", random_token(48));
        st.refresh_tokens.insert(
            rt.clone(),
            RefreshRecord {
                tenant: ctx.tenant.to_owned(),
                client_id: client_id.to_owned(),
                user_key: user_key.clone(),
                scope: scope.resource_scope.clone(),
                revoked: false,
            },
        );
        rt
    });
    let id = scope.openid.then(|| id_token(ctx.inner, &subject, ctx.now));
    token_response(
        jwt,
        lifetime,
        &subject.policy,
        Some(&scope.resource_scope),
        refresh,
        id,
    )
}
