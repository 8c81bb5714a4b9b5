//! Client authentication at the token endpoint: which client asks (an app or a managed identity), and what it
//! proved (nothing, a secret, a certificate assertion or a federated assertion), with certificate thumbprints.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use super::grant_context::Ctx;
use super::http::{Req, Resp};
use super::registry::{AZURE_CLI_CLIENT_ID, AppRecord};
use super::{Inner, State};
use crate::keys::{JwsAlgorithm, JwtVerifier, decode_unverified};
use crate::tls::CLIENT_ASSERTION_TYPE;

/// base64url (no padding) of a digest of `der`: a certificate thumbprint.
pub(crate) fn thumbprint(alg: &'static ring::digest::Algorithm, der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(alg, der))
}

/// What the client proved about itself.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum ClientAuth {
    Public,
    Secret,
    Assertion,
}

impl ClientAuth {
    pub(super) fn acr(self) -> &'static str {
        match self {
            ClientAuth::Public => "0",
            ClientAuth::Secret => "1",
            ClientAuth::Assertion => "2",
        }
    }
}

/// A client of a user flow: a registered app or the built-in Azure CLI public client.
pub(super) enum Client {
    Registered(Box<AppRecord>),
    AzureCli,
}

impl Client {
    pub(super) fn public(&self) -> bool {
        match self {
            Client::Registered(app) => app.public_client,
            Client::AzureCli => true,
        }
    }
}

pub(super) fn find_client(st: &State, tenant: &str, client_id: &str) -> Option<Client> {
    match st.apps.get(&(tenant.to_owned(), client_id.to_owned())) {
        Some(app) => Some(Client::Registered(Box::new(app.clone()))),
        None if client_id == AZURE_CLI_CLIENT_ID => Some(Client::AzureCli),
        None => None,
    }
}

/// The token endpoint URLs (and issuer) a client assertion's `aud` may name.
pub(super) fn accepted_audiences(inner: &Inner, tenant: &str) -> Vec<String> {
    let mut bases = vec![inner.https_url.clone(), inner.http_url.clone()];
    bases.extend(
        bases
            .clone()
            .iter()
            .map(|b| b.replace("127.0.0.1", "localhost")),
    );
    let mut out = Vec::new();
    for base in bases {
        out.push(format!("{base}/{tenant}/oauth2/v2.0/token"));
        out.push(format!("{base}/{tenant}/oauth2/token"));
        out.push(format!("{base}/{tenant}/v2.0"));
    }
    out
}

/// Authenticates the client of a token request. Public clients need no credential (and may not send one).
pub(super) fn authenticate(
    ctx: &Ctx<'_>,
    st: &mut State,
    client: &Client,
    client_id: &str,
) -> Result<ClientAuth, Resp> {
    let basic = basic_credentials(ctx.req);
    let secret = ctx
        .req
        .form_param("client_secret")
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .or_else(|| {
            basic
                .filter(|(id, _)| id == client_id)
                .map(|(_, secret)| secret)
        });
    let secret = secret.as_deref();
    let assertion = ctx
        .req
        .form_param("client_assertion")
        .filter(|s| !s.is_empty());
    if client.public() {
        if secret.is_some() || assertion.is_some() {
            return Err(ctx.err(
                401,
                "invalid_client",
                &[700025],
                "AADSTS700025: Client is public so neither 'client_assertion' nor 'client_secret' should be \
                 presented.",
            ));
        }
        return Ok(ClientAuth::Public);
    }
    let Client::Registered(app) = client else {
        return Ok(ClientAuth::Public);
    };
    if let Some(secret) = secret {
        return if app.secrets.iter().any(|s| s.expose_secret() == secret) {
            Ok(ClientAuth::Secret)
        } else {
            Err(ctx.bad_secret())
        };
    }
    let Some(assertion) = assertion else {
        return Err(ctx.no_client_credential());
    };
    if ctx.req.form_param("client_assertion_type") != Some(CLIENT_ASSERTION_TYPE) {
        return Err(ctx.err(
            400,
            "invalid_request",
            &[50027],
            "AADSTS50027: JWT token is invalid or malformed: client_assertion_type must be \
             urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
        ));
    }
    let Ok((_, claims, ..)) = decode_unverified(assertion) else {
        return Err(ctx.malformed_jwt());
    };
    if claims.iss() == Some(client_id) {
        verify_certificate_assertion(ctx, st, app, client_id, assertion)?;
    } else {
        verify_federated_assertion(ctx, st, app, assertion)?;
    }
    Ok(ClientAuth::Assertion)
}

/// `client_secret_basic`: `Authorization: Basic base64(urlencode(client_id):urlencode(secret))`.
pub(super) fn basic_credentials(req: &Req) -> Option<(String, String)> {
    use base64::engine::general_purpose::STANDARD;
    let encoded = req.header("authorization")?.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((
        super::util::percent_decode(id),
        super::util::percent_decode(secret),
    ))
}

pub(super) fn verify_certificate_assertion(
    ctx: &Ctx<'_>,
    st: &mut State,
    app: &AppRecord,
    client_id: &str,
    assertion: &str,
) -> Result<(), Resp> {
    let (header, claims, signing_input, signature) =
        decode_unverified(assertion).map_err(|_| ctx.bad_certificate(None))?;
    let cert = if let Some(t) = header["x5t#S256"].as_str() {
        app.certificates.iter().find(|c| c.x5t_s256 == t)
    } else if let Some(t) = header["x5t"].as_str() {
        app.certificates.iter().find(|c| c.x5t == t)
    } else {
        None
    };
    let Some(cert) = cert else {
        return Err(ctx.bad_certificate(Some(
            "No registered certificate has the assertion's thumbprint.",
        )));
    };
    let alg: &dyn rustls_pki_types::SignatureVerificationAlgorithm =
        match header["alg"].as_str().and_then(JwsAlgorithm::from_name) {
            Some(JwsAlgorithm::Ps256) => webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
            Some(JwsAlgorithm::Rs256) => webpki::ring::RSA_PKCS1_2048_8192_SHA256,
            None => return Err(ctx.bad_certificate(Some("Unsupported alg: use PS256 or RS256."))),
        };
    let der = rustls_pki_types::CertificateDer::from(cert.der.as_slice());
    let verified = webpki::EndEntityCert::try_from(&der)
        .ok()
        .is_some_and(|ee| {
            ee.verify_signature(alg, signing_input.as_bytes(), &signature)
                .is_ok()
        });
    if !verified {
        return Err(ctx.bad_certificate(None));
    }
    let aud_ok = claims.aud().is_some_and(|aud| {
        accepted_audiences(ctx.inner, ctx.tenant)
            .iter()
            .any(|a| a == aud)
    });
    if !aud_ok {
        return Err(ctx.bad_certificate(Some(
            "The assertion audience claim does not match the token endpoint.",
        )));
    }
    if claims.sub() != Some(client_id) {
        return Err(ctx.bad_certificate(Some("The assertion subject must equal the client id.")));
    }
    check_time_window(ctx, claims.nbf(), claims.exp())?;
    if ctx.inner.options.reject_jti_replay {
        let Some(jti) = claims.get("jti").and_then(Value::as_str) else {
            return Err(ctx.bad_certificate(Some("The assertion has no jti claim.")));
        };
        let now = ctx.now;
        st.used_jti.retain(|_, exp| *exp + 3600 > now);
        if st.used_jti.contains_key(jti) {
            return Err(ctx.bad_certificate(Some("The assertion's jti was already used.")));
        }
        st.used_jti
            .insert(jti.to_owned(), claims.exp().unwrap_or(now));
    }
    Ok(())
}

pub(super) fn check_time_window(
    ctx: &Ctx<'_>,
    nbf: Option<i64>,
    exp: Option<i64>,
) -> Result<(), Resp> {
    let leeway = ctx.inner.options.assertion_leeway;
    let expired = exp.is_none_or(|exp| ctx.now > exp.saturating_add(leeway));
    let early = nbf.is_some_and(|nbf| nbf > ctx.now.saturating_add(leeway));
    if expired || early {
        return Err(ctx.time_range(nbf, exp));
    }
    Ok(())
}

pub(super) fn verify_federated_assertion(
    ctx: &Ctx<'_>,
    st: &State,
    app: &AppRecord,
    assertion: &str,
) -> Result<(), Resp> {
    let Ok((_, claims, ..)) = decode_unverified(assertion) else {
        return Err(ctx.malformed_jwt());
    };
    let iss = claims.iss().unwrap_or_default().to_owned();
    let sub = claims.sub().unwrap_or_default().to_owned();
    let auds: Vec<String> = match claims.get("aud") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    let no_match = || {
        ctx.err(
            400,
            "invalid_request",
            &[70021],
            &format!(
                "AADSTS70021: No matching federated identity record found for presented assertion. Assertion \
                 Issuer: '{iss}'. Assertion Subject: '{sub}'. Assertion Audience: '{}'.",
                auds.join(",")
            ),
        )
    };
    let Some(keys) = st.issuers.get(&iss) else {
        return Err(no_match());
    };
    if JwtVerifier::new(keys.iter()).verify(assertion).is_err() {
        return Err(ctx.err(
            401,
            "invalid_client",
            &[70002, 50013],
            "AADSTS70002: Error validating credentials. AADSTS50013: Assertion failed signature validation.",
        ));
    }
    check_time_window(ctx, claims.nbf(), claims.exp())?;
    let matched = app
        .federated
        .iter()
        .any(|f| f.issuer == iss && f.subject == sub && auds.contains(&f.audience));
    if matched { Ok(()) } else { Err(no_match()) }
}

pub(super) fn client_of(ctx: &Ctx<'_>, st: &State) -> Result<(String, Client), Resp> {
    let client_id = ctx.param("client_id")?.to_owned();
    let client =
        find_client(st, ctx.tenant, &client_id).ok_or_else(|| ctx.unknown_client(&client_id))?;
    Ok((client_id, client))
}
