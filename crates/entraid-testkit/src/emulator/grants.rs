//! The grants of the token endpoint, one function each: client credentials, password, device code, authorization
//! code, refresh token and on-behalf-of.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::client_auth::{Client, ClientAuth, authenticate, client_of};
use super::grant_context::Ctx;
use super::http::Resp;
use super::issue::{issue_user_tokens, parse_user_scope, token_response};
use super::mint::{Subject, audience_of, mint};
use super::{DeviceCodeOutcome, DeviceCodeRecord, RefreshRecord, State};
use crate::keys::{JwtVerifier, TestKey};

pub(super) fn client_credentials(ctx: &Ctx<'_>, st: &mut State) -> Result<Resp, Resp> {
    let (client_id, client) = client_of(ctx, st)?;
    let scope = ctx.param("scope")?;
    let Client::Registered(app) = &client else {
        return Err(ctx.unknown_client(&client_id));
    };
    let auth = if client.public() {
        // A public client has no credential to present.
        return Err(ctx.no_client_credential());
    } else {
        authenticate(ctx, st, &client, &client_id)?
    };
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    let aud = match scopes.as_slice() {
        [one] if one.ends_with("/.default") => audience_of(one),
        _ => None,
    };
    let Some(aud) = aud else {
        return Err(ctx.err(
            400,
            "invalid_scope",
            &[1002012],
            &format!(
                "AADSTS1002012: The provided value for scope {scope} is not valid. Client credential flows must have \
                 a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        ));
    };
    let subject = Subject::app(app, auth.acr());
    let (jwt, lifetime) = mint(ctx.inner, st, &subject, &aud, ctx.now);
    Ok(token_response(
        jwt,
        lifetime,
        &subject.policy,
        None,
        None,
        None,
    ))
}

pub(super) fn password_grant(ctx: &Ctx<'_>, st: &mut State) -> Result<Resp, Resp> {
    let (client_id, client) = client_of(ctx, st)?;
    let auth = authenticate(ctx, st, &client, &client_id)?;
    let username = ctx.param("username")?;
    let password = ctx.param("password")?;
    let scope = parse_user_scope(ctx, ctx.param("scope")?)?;
    let key = (ctx.tenant.to_owned(), username.to_lowercase());
    let Some(user) = st.users.get(&key) else {
        return Err(ctx.invalid_grant(
            &[50034],
            &format!(
                "AADSTS50034: The user account {username} does not exist in the {} directory. To sign into this \
                 application, the account must be added to the directory.",
                ctx.tenant
            ),
        ));
    };
    if user.password.expose_secret() != password {
        return Err(ctx.invalid_grant(
            &[50126],
            "AADSTS50126: Error validating credentials due to invalid username or password.",
        ));
    }
    if user.mfa_required {
        return Err(ctx.invalid_grant(
            &[50076],
            &format!(
                "AADSTS50076: Due to a configuration change made by your administrator, or because you moved to a \
                 new location, you must use multi-factor authentication to access '{}'.",
                scope.aud
            ),
        ));
    }
    Ok(issue_user_tokens(ctx, st, &key, &client_id, auth, &scope))
}

pub(super) fn device_code_grant(ctx: &Ctx<'_>, st: &mut State) -> Result<Resp, Resp> {
    let (client_id, auth, record) = redeem(
        ctx,
        st,
        "device_code",
        |st| &mut st.device_codes,
        (
            70000,
            "AADSTS70000: The provided value for the input parameter 'device_code' is not valid.",
        ),
    )?;
    if record.redeemed {
        return Err(redeemed(ctx));
    }
    record.polls += 1;
    if ctx.now >= record.expires_at {
        return Err(ctx.err(
            400,
            "expired_token",
            &[70019],
            "AADSTS70019: Verification code expired.",
        ));
    }
    if record.polls <= record.policy.slow_down_polls {
        return Err(ctx.err(
            400,
            "slow_down",
            &[],
            "The client is polling too frequently: increase the polling interval by 5 seconds.",
        ));
    }
    let counted = record.polls - record.policy.slow_down_polls;
    match &record.policy.outcome {
        DeviceCodeOutcome::ApproveAfterPolls { polls, username } if counted >= *polls => {
            record
                .approved_by
                .get_or_insert_with(|| username.to_lowercase());
        }
        DeviceCodeOutcome::DeclineAfterPolls { polls } if counted >= *polls => {
            record.declined = true
        }
        _ => {}
    }
    if record.declined {
        return Err(ctx.err(
            400,
            "authorization_declined",
            &[70000],
            "AADSTS70000: The end user declined the authorization request.",
        ));
    }
    let Some(username) = record.approved_by.clone() else {
        return Err(ctx.err(
            400,
            "authorization_pending",
            &[70016],
            "AADSTS70016: Pending end-user authorization.",
        ));
    };
    record.redeemed = true;
    let scope_text = record.scope.clone();
    let scope = parse_user_scope(ctx, &scope_text)?;
    Ok(issue_user_tokens(
        ctx,
        st,
        &(ctx.tenant.to_owned(), username),
        &client_id,
        auth,
        &scope,
    ))
}

pub(super) fn redeemed(ctx: &Ctx<'_>) -> Resp {
    ctx.invalid_grant(
        &[70002, 54005],
        "AADSTS70002: Error validating credentials. AADSTS54005: OAuth2 Authorization code was already redeemed, \
         please retry with a new valid code or use an existing refresh token.",
    )
}

pub(super) fn authorization_code_grant(ctx: &Ctx<'_>, st: &mut State) -> Result<Resp, Resp> {
    let (client_id, client) = client_of(ctx, st)?;
    let auth = authenticate(ctx, st, &client, &client_id)?;
    let code = ctx.param("code")?;
    let redirect_uri = ctx.param("redirect_uri")?;
    let Some(record) = st.auth_codes.get_mut(code) else {
        return Err(ctx.invalid_grant(
            &[70000],
            "AADSTS70000: The provided authorization code is not valid.",
        ));
    };
    if record.client_id != client_id || record.tenant != ctx.tenant {
        return Err(ctx.invalid_grant(
            &[70000],
            "AADSTS70000: The authorization code was issued to another client.",
        ));
    }
    if record.redeemed {
        return Err(redeemed(ctx));
    }
    if ctx.now >= record.expires_at {
        return Err(ctx.invalid_grant(
            &[70008],
            "AADSTS70008: The provided authorization code or refresh token has expired due to inactivity.",
        ));
    }
    if record.redirect_uri != redirect_uri {
        return Err(ctx.invalid_grant(
            &[500117],
            "AADSTS500117: The reply uri specified in the request does not match the reply uri used to get the \
             authorization code.",
        ));
    }
    if let Some(challenge) = &record.code_challenge {
        let verifier = ctx.req.form_param("code_verifier").unwrap_or_default();
        let computed = URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            verifier.as_bytes(),
        ));
        if verifier.is_empty() || computed != *challenge {
            return Err(ctx.invalid_grant(
                &[501481],
                "AADSTS501481: The Code_Verifier does not match the code_challenge supplied in the authorization \
                 request.",
            ));
        }
    }
    record.redeemed = true;
    let user_key = record.user_key.clone();
    let scope_text = record.scope.clone();
    let scope = parse_user_scope(ctx, &scope_text)?;
    Ok(issue_user_tokens(
        ctx, st, &user_key, &client_id, auth, &scope,
    ))
}

pub(super) fn refresh_token_grant(ctx: &Ctx<'_>, st: &mut State) -> Result<Resp, Resp> {
    let (client_id, auth, record) = redeem(
        ctx,
        st,
        "refresh_token",
        |st| &mut st.refresh_tokens,
        (
            9002313,
            "AADSTS9002313: Invalid request. Request is malformed or invalid.",
        ),
    )?;
    if record.revoked {
        return Err(ctx.invalid_grant(
            &[50173],
            "AADSTS50173: The provided grant has expired due to it being revoked, a fresh auth token is needed.",
        ));
    }
    let user_key = record.user_key.clone();
    let stored_scope = record.scope.clone();
    let scope_text = ctx
        .req
        .form_param("scope")
        .filter(|s| !s.is_empty())
        .unwrap_or(&stored_scope)
        .to_owned();
    let scope = parse_user_scope(ctx, &scope_text)?;
    Ok(issue_user_tokens(
        ctx, st, &user_key, &client_id, auth, &scope,
    ))
}

pub(super) fn on_behalf_of(ctx: &Ctx<'_>, st: &mut State) -> Result<Resp, Resp> {
    let (client_id, client) = client_of(ctx, st)?;
    if client.public() {
        return Err(ctx.no_client_credential());
    }
    let auth = authenticate(ctx, st, &client, &client_id)?;
    let assertion = ctx.param("assertion")?;
    if ctx.req.form_param("requested_token_use") != Some("on_behalf_of") {
        return Err(ctx.missing("requested_token_use"));
    }
    let scope = parse_user_scope(ctx, ctx.param("scope")?)?;
    let Ok(verified) = JwtVerifier::new([TestKey::entra()]).verify(assertion) else {
        return Err(ctx.invalid_grant(
            &[50013],
            "AADSTS50013: Assertion failed signature validation.",
        ));
    };
    let claims = verified.claims;
    let aud_ok = claims
        .aud()
        .is_some_and(|aud| aud == client_id || aud == format!("api://{client_id}"));
    if !aud_ok {
        return Err(ctx.invalid_grant(
            &[500131],
            "AADSTS500131: Assertion audience does not match the Client app presenting the assertion.",
        ));
    }
    if claims.tid() != Some(ctx.tenant)
        || claims.iss() != Some(ctx.inner.issuer(ctx.tenant).as_str())
    {
        return Err(ctx.invalid_grant(
            &[50013],
            "AADSTS50013: Assertion was issued by another tenant.",
        ));
    }
    if claims.exp().is_none_or(|exp| ctx.now >= exp)
        || claims.nbf().is_some_and(|nbf| nbf > ctx.now)
    {
        return Err(ctx.invalid_grant(
            &[500133],
            "AADSTS500133: Assertion is not within its valid time range.",
        ));
    }
    let user_key = st
        .users
        .iter()
        .find(|(k, u)| k.0 == ctx.tenant && Some(u.principal.oid.as_str()) == claims.oid())
        .map(|(k, _)| k.clone());
    let Some(user_key) = user_key.filter(|_| claims.idtyp() == Some("user")) else {
        return Err(ctx.invalid_grant(
            &[50013],
            "AADSTS50013: The assertion is not a token of a user.",
        ));
    };
    Ok(issue_user_tokens(
        ctx, st, &user_key, &client_id, auth, &scope,
    ))
}

/// Who a record of an issued grant (a device code, a refresh token) was issued to.
pub(super) trait IssuedTo {
    /// The client it was issued to.
    fn client_id(&self) -> &str;
    /// The tenant it was issued in.
    fn tenant(&self) -> &str;
}

impl IssuedTo for DeviceCodeRecord {
    fn client_id(&self) -> &str {
        &self.client_id
    }

    fn tenant(&self) -> &str {
        &self.tenant
    }
}

impl IssuedTo for RefreshRecord {
    fn client_id(&self) -> &str {
        &self.client_id
    }

    fn tenant(&self) -> &str {
        &self.tenant
    }
}

/// How a grant that redeems an issued record begins: the client is found and authenticated, and the record named
/// by the form field `field` must have been issued to this client in this tenant. An unknown record and another
/// client's (or tenant's) are the same `invalid_grant` answer, `invalid` (AADSTS code, message), as Entra's.
fn redeem<'s, R: IssuedTo>(
    ctx: &Ctx<'_>,
    st: &'s mut State,
    field: &str,
    records: fn(&mut State) -> &mut HashMap<String, R>,
    invalid: (i64, &str),
) -> Result<(String, ClientAuth, &'s mut R), Resp> {
    let (client_id, client) = client_of(ctx, st)?;
    let auth = authenticate(ctx, st, &client, &client_id)?;
    let key = ctx.param(field)?;
    match records(st).get_mut(key) {
        Some(record) if record.client_id() == client_id && record.tenant() == ctx.tenant => {
            Ok((client_id, auth, record))
        }
        _ => Err(ctx.invalid_grant(&[invalid.0], invalid.1)),
    }
}
