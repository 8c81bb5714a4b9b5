//! The Entra endpoints of a tenant: token (every grant), devicecode, authorize, discovery and keys; token minting.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hyper::Method;
use serde_json::{Value, json};

use super::registry::{AZURE_CLI_CLIENT_ID, AppRecord, PrincipalKind, TokenPolicy};
use super::server::{Req, Resp, RespBody};
use super::util::{OrderedJson, percent_encode, random_token, random_user_code, utc_timestamp};
use super::{
    AuthCodeRecord, DeviceCodeOutcome, DeviceCodeRecord, Inner, REDIS_APP_ID, REDIS_RESOURCE,
    RefreshRecord, State,
};
use crate::keys::{JwsAlgorithm, JwtVerifier, TestKey, decode_unverified, random_uuid};
use crate::tls::CLIENT_ASSERTION_TYPE;

const GRANT_DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";
const GRANT_JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Scopes that ask for OpenID Connect tokens, not for a resource.
const OIDC_SCOPES: &[&str] = &["openid", "profile", "offline_access", "email"];
/// How long authorization codes live.
const AUTH_CODE_LIFETIME: i64 = 600;

/// base64url (no padding) of a digest of `der`: a certificate thumbprint.
pub(crate) fn thumbprint(alg: &'static ring::digest::Algorithm, der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(alg, der))
}

/// Who a token is for.
#[derive(Clone)]
pub(crate) struct Subject {
    pub(crate) oid: String,
    pub(crate) tenant: String,
    pub(crate) kind: PrincipalKind,
    /// The client the token is issued to (`appid`/`azp`).
    pub(crate) appid: String,
    /// `appidacr`/`azpacr`: 0 public client, 1 secret, 2 certificate or assertion.
    pub(crate) acr: &'static str,
    pub(crate) policy: TokenPolicy,
    pub(crate) username: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) resource_id: Option<String>,
}

impl Subject {
    pub(crate) fn app(app: &AppRecord, acr: &'static str) -> Self {
        let client_id = app.principal.client_id.clone().unwrap_or_default();
        Self {
            oid: app.principal.oid.clone(),
            tenant: app.principal.tenant_id.clone(),
            kind: PrincipalKind::App,
            appid: client_id,
            acr,
            policy: app.policy,
            username: None,
            name: None,
            resource_id: None,
        }
    }

    pub(crate) fn user(
        st: &State,
        key: &(String, String),
        client_id: &str,
        acr: &'static str,
    ) -> Option<Self> {
        let user = st.users.get(key)?;
        Some(Self {
            oid: user.principal.oid.clone(),
            tenant: user.principal.tenant_id.clone(),
            kind: PrincipalKind::User,
            appid: client_id.to_owned(),
            acr,
            policy: user.policy,
            username: user.principal.username.clone(),
            name: Some(user.display_name.clone()),
            resource_id: None,
        })
    }

    pub(crate) fn managed_identity(mi: &super::registry::MiRecord) -> Self {
        Self {
            oid: mi.principal.oid.clone(),
            tenant: mi.principal.tenant_id.clone(),
            kind: mi.principal.kind,
            appid: mi.principal.client_id.clone().unwrap_or_default(),
            acr: "2",
            policy: mi.policy,
            username: None,
            name: None,
            resource_id: mi.principal.resource_id.clone(),
        }
    }

    /// Any registered principal by `oid` (users get the Azure CLI as their client).
    pub(crate) fn find(st: &State, oid: &str) -> Option<Self> {
        if let Some(app) = st.apps.values().find(|a| a.principal.oid == oid) {
            return Some(Self::app(app, "1"));
        }
        if let Some((key, _)) = st.users.iter().find(|(_, u)| u.principal.oid == oid) {
            return Self::user(st, key, AZURE_CLI_CLIENT_ID, "0");
        }
        st.mis
            .iter()
            .find(|m| m.principal.oid == oid)
            .map(Self::managed_identity)
    }
}

fn lifetime_secs(policy: &TokenPolicy) -> i64 {
    i64::try_from(policy.lifetime.as_secs())
        .unwrap_or(i64::MAX / 4)
        .max(1)
}

/// Mints an RS256 access token for `subject` with audience `aud`; returns it and its lifetime in seconds.
pub(crate) fn mint(
    inner: &Inner,
    st: &mut State,
    subject: &Subject,
    aud: &str,
    now: i64,
) -> (String, i64) {
    let lifetime = lifetime_secs(&subject.policy);
    let mut claims = json!({
        "aud": aud,
        "iss": inner.issuer(&subject.tenant),
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "appid": subject.appid,
        "appidacr": subject.acr,
        "azp": subject.appid,
        "azpacr": subject.acr,
        "idtyp": if subject.kind == PrincipalKind::User { "user" } else { "app" },
        "oid": subject.oid,
        "sub": subject.oid,
        "tid": subject.tenant,
        "uti": random_token(16),
        "ver": "2.0",
    });
    if let Value::Object(map) = &mut claims {
        if let Some(username) = &subject.username {
            map.insert("upn".into(), username.clone().into());
            map.insert("preferred_username".into(), username.clone().into());
            map.insert("scp".into(), "user_impersonation".into());
        }
        if let Some(name) = &subject.name {
            map.insert("name".into(), name.clone().into());
        }
        if let Some(res) = &subject.resource_id {
            map.insert("xms_mirid".into(), res.clone().into());
        }
    }
    let jwt = inner.sign_access_token(st, &subject.oid, &claims);
    (jwt, lifetime)
}

/// An OpenID Connect id token for a user (audience: the client).
fn id_token(inner: &Inner, subject: &Subject, now: i64) -> String {
    TestKey::entra().sign_jwt(&json!({
        "aud": subject.appid,
        "iss": inner.issuer(&subject.tenant),
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "name": subject.name,
        "oid": subject.oid,
        "preferred_username": subject.username,
        "sub": subject.oid,
        "tid": subject.tenant,
        "ver": "2.0",
    }))
}

/// The `aud` of a token for a resource scope: the scope minus its last segment (`/.default`); the Redis app id
/// maps to `https://redis.azure.com`.
pub(crate) fn audience_of(scope: &str) -> Option<String> {
    let (resource, permission) = scope.rsplit_once('/')?;
    if resource.is_empty() || permission.is_empty() {
        return None;
    }
    let resource = resource.trim_end_matches('/');
    if resource.eq_ignore_ascii_case(REDIS_APP_ID) {
        return Some(REDIS_RESOURCE.to_owned());
    }
    Some(resource.to_owned())
}

/// The context of one request to a tenant endpoint.
struct Ctx<'a> {
    inner: &'a Inner,
    req: &'a Req,
    tenant: &'a str,
    now: i64,
}

impl Ctx<'_> {
    /// An Entra-shaped error: `message` starts with `AADSTSnnnnn:`.
    fn err(&self, status: u16, error: &str, codes: &[i64], message: &str) -> Resp {
        entra_error(
            self.inner, self.req, self.now, status, error, codes, message,
        )
    }

    fn missing(&self, param: &str) -> Resp {
        self.err(
            400,
            "invalid_request",
            &[900144],
            &format!(
                "AADSTS900144: The request body must contain the following parameter: '{param}'."
            ),
        )
    }

    fn param(&self, name: &str) -> Result<&str, Resp> {
        self.req
            .f(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| self.missing(name))
    }

    fn bad_secret(&self) -> Resp {
        self.err(
            401,
            "invalid_client",
            &[70002, 50012],
            "AADSTS70002: Error validating credentials. AADSTS50012: Invalid client secret is provided.",
        )
    }

    fn bad_certificate(&self, detail: Option<&str>) -> Resp {
        let mut message =
            "AADSTS70002: Error validating credentials. AADSTS50013: Invalid client certificate."
                .to_owned();
        if let Some(detail) = detail {
            message.push(' ');
            message.push_str(detail);
        }
        self.err(401, "invalid_client", &[70002, 50013], &message)
    }

    fn unknown_client(&self, client_id: &str) -> Resp {
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

    fn time_range(&self, nbf: Option<i64>, exp: Option<i64>) -> Resp {
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

    fn invalid_grant(&self, codes: &[i64], message: &str) -> Resp {
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

/// What the client proved about itself.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    Public,
    Secret,
    Assertion,
}

impl ClientAuth {
    fn acr(self) -> &'static str {
        match self {
            ClientAuth::Public => "0",
            ClientAuth::Secret => "1",
            ClientAuth::Assertion => "2",
        }
    }
}

/// A client of a user flow: a registered app or the built-in Azure CLI public client.
enum Client {
    Registered(Box<AppRecord>),
    AzureCli,
}

impl Client {
    fn public(&self) -> bool {
        match self {
            Client::Registered(app) => app.public_client,
            Client::AzureCli => true,
        }
    }
}

fn find_client(st: &State, tenant: &str, client_id: &str) -> Option<Client> {
    match st.apps.get(&(tenant.to_owned(), client_id.to_owned())) {
        Some(app) => Some(Client::Registered(Box::new(app.clone()))),
        None if client_id == AZURE_CLI_CLIENT_ID => Some(Client::AzureCli),
        None => None,
    }
}

/// The token endpoint URLs (and issuer) a client assertion's `aud` may name.
fn accepted_audiences(inner: &Inner, tenant: &str) -> Vec<String> {
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
fn authenticate(
    ctx: &Ctx<'_>,
    st: &mut State,
    client: &Client,
    client_id: &str,
) -> Result<ClientAuth, Resp> {
    let basic = basic_credentials(ctx.req);
    let secret = ctx
        .req
        .f("client_secret")
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .or_else(|| {
            basic
                .filter(|(id, _)| id == client_id)
                .map(|(_, secret)| secret)
        });
    let secret = secret.as_deref();
    let assertion = ctx.req.f("client_assertion").filter(|s| !s.is_empty());
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
        return Err(ctx.err(
            401,
            "invalid_client",
            &[7000218],
            "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or \
             'client_secret'.",
        ));
    };
    if ctx.req.f("client_assertion_type") != Some(CLIENT_ASSERTION_TYPE) {
        return Err(ctx.err(
            400,
            "invalid_request",
            &[50027],
            "AADSTS50027: JWT token is invalid or malformed: client_assertion_type must be \
             urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
        ));
    }
    let Ok((_, claims, ..)) = decode_unverified(assertion) else {
        return Err(ctx.err(
            400,
            "invalid_request",
            &[50027],
            "AADSTS50027: JWT token is invalid or malformed.",
        ));
    };
    if claims.iss() == Some(client_id) {
        verify_certificate_assertion(ctx, st, app, client_id, assertion)?;
    } else {
        verify_federated_assertion(ctx, st, app, assertion)?;
    }
    Ok(ClientAuth::Assertion)
}

/// `client_secret_basic`: `Authorization: Basic base64(urlencode(client_id):urlencode(secret))`.
fn basic_credentials(req: &Req) -> Option<(String, String)> {
    use base64::engine::general_purpose::STANDARD;
    let encoded = req.header("authorization")?.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((
        super::util::percent_decode(id),
        super::util::percent_decode(secret),
    ))
}

fn verify_certificate_assertion(
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

fn check_time_window(ctx: &Ctx<'_>, nbf: Option<i64>, exp: Option<i64>) -> Result<(), Resp> {
    let leeway = ctx.inner.options.assertion_leeway;
    let expired = exp.is_none_or(|exp| ctx.now > exp.saturating_add(leeway));
    let early = nbf.is_some_and(|nbf| nbf > ctx.now.saturating_add(leeway));
    if expired || early {
        return Err(ctx.time_range(nbf, exp));
    }
    Ok(())
}

fn verify_federated_assertion(
    ctx: &Ctx<'_>,
    st: &State,
    app: &AppRecord,
    assertion: &str,
) -> Result<(), Resp> {
    let Ok((_, claims, ..)) = decode_unverified(assertion) else {
        return Err(ctx.err(
            400,
            "invalid_request",
            &[50027],
            "AADSTS50027: JWT token is invalid or malformed.",
        ));
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

/// The JSON of a successful token response, in Entra's field order.
fn token_response(
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
struct UserScope {
    resource_scope: String,
    aud: String,
    openid: bool,
    offline: bool,
}

fn parse_user_scope(ctx: &Ctx<'_>, scope: &str) -> Result<UserScope, Resp> {
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
fn issue_user_tokens(
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

/// `POST /{tenant}/oauth2/v2.0/token`.
pub(crate) fn token_endpoint(inner: &Inner, tenant: &str, req: &Req) -> Resp {
    let mut st = inner.lock();
    let st = &mut *st;
    let ctx = Ctx {
        inner,
        req,
        tenant,
        now: inner.now_with(st.skew_secs),
    };
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

fn tenant_not_found(ctx: &Ctx<'_>) -> Resp {
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

fn client_of(ctx: &Ctx<'_>, st: &State) -> Result<(String, Client), Resp> {
    let client_id = ctx.param("client_id")?.to_owned();
    let client =
        find_client(st, ctx.tenant, &client_id).ok_or_else(|| ctx.unknown_client(&client_id))?;
    Ok((client_id, client))
}

fn client_credentials(ctx: &Ctx<'_>, st: &mut State) -> Result<Resp, Resp> {
    let (client_id, client) = client_of(ctx, st)?;
    let scope = ctx.param("scope")?;
    let Client::Registered(app) = &client else {
        return Err(ctx.unknown_client(&client_id));
    };
    let auth = if client.public() {
        // A public client has no credential to present.
        return Err(ctx.err(
            401,
            "invalid_client",
            &[7000218],
            "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or \
             'client_secret'.",
        ));
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

fn password_grant(ctx: &Ctx<'_>, st: &mut State) -> Result<Resp, Resp> {
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

fn device_code_grant(ctx: &Ctx<'_>, st: &mut State) -> Result<Resp, Resp> {
    let (client_id, client) = client_of(ctx, st)?;
    let auth = authenticate(ctx, st, &client, &client_id)?;
    let code = ctx.param("device_code")?;
    let bad_code = || {
        ctx.invalid_grant(
            &[70000],
            "AADSTS70000: The provided value for the input parameter 'device_code' is not valid.",
        )
    };
    let Some(record) = st.device_codes.get_mut(code) else {
        return Err(bad_code());
    };
    if record.client_id != client_id || record.tenant != ctx.tenant {
        return Err(bad_code());
    }
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

fn redeemed(ctx: &Ctx<'_>) -> Resp {
    ctx.invalid_grant(
        &[70002, 54005],
        "AADSTS70002: Error validating credentials. AADSTS54005: OAuth2 Authorization code was already redeemed, \
         please retry with a new valid code or use an existing refresh token.",
    )
}

fn authorization_code_grant(ctx: &Ctx<'_>, st: &mut State) -> Result<Resp, Resp> {
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
        let verifier = ctx.req.f("code_verifier").unwrap_or_default();
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

fn refresh_token_grant(ctx: &Ctx<'_>, st: &mut State) -> Result<Resp, Resp> {
    let (client_id, client) = client_of(ctx, st)?;
    let auth = authenticate(ctx, st, &client, &client_id)?;
    let rt = ctx.param("refresh_token")?;
    let invalid = || {
        ctx.invalid_grant(
            &[9002313],
            "AADSTS9002313: Invalid request. Request is malformed or invalid.",
        )
    };
    let Some(record) = st.refresh_tokens.get(rt) else {
        return Err(invalid());
    };
    if record.client_id != client_id || record.tenant != ctx.tenant {
        return Err(invalid());
    }
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
        .f("scope")
        .filter(|s| !s.is_empty())
        .unwrap_or(&stored_scope)
        .to_owned();
    let scope = parse_user_scope(ctx, &scope_text)?;
    Ok(issue_user_tokens(
        ctx, st, &user_key, &client_id, auth, &scope,
    ))
}

fn on_behalf_of(ctx: &Ctx<'_>, st: &mut State) -> Result<Resp, Resp> {
    let (client_id, client) = client_of(ctx, st)?;
    if client.public() {
        return Err(ctx.err(
            401,
            "invalid_client",
            &[7000218],
            "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or \
             'client_secret'.",
        ));
    }
    let auth = authenticate(ctx, st, &client, &client_id)?;
    let assertion = ctx.param("assertion")?;
    if ctx.req.f("requested_token_use") != Some("on_behalf_of") {
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

/// `POST /{tenant}/oauth2/v2.0/devicecode`.
pub(crate) fn devicecode_endpoint(inner: &Inner, tenant: &str, req: &Req) -> Resp {
    let mut st = inner.lock();
    let st = &mut *st;
    let ctx = Ctx {
        inner,
        req,
        tenant,
        now: inner.now_with(st.skew_secs),
    };
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

fn html_error(status: u16, message: &str) -> Resp {
    Resp::raw(
        status,
        "text/html; charset=utf-8",
        format!(
            "<!DOCTYPE html><html><head><title>Sign in</title></head><body><p>{message}</p></body></html>\n"
        ),
    )
}

fn is_loopback_redirect(uri: &str) -> bool {
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
    let client_id = req.q("client_id").unwrap_or_default();
    if find_client(st, tenant, client_id).is_none() {
        return html_error(
            400,
            &format!(
                "AADSTS700016: Application with identifier '{client_id}' was not found in the directory."
            ),
        );
    }
    let redirect_uri = req.q("redirect_uri").unwrap_or_default();
    if !is_loopback_redirect(redirect_uri) {
        return html_error(
            400,
            "AADSTS50011: The redirect URI specified in the request does not match the redirect URIs configured \
             for the application (the emulator accepts http://localhost and http://127.0.0.1).",
        );
    }
    let state = req.q("state");
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
    if req.q("response_type") != Some("code") {
        return error(
            "unsupported_response_type",
            "AADSTS700054: response_type 'code' is the only one the emulator supports.",
        );
    }
    let challenge = req.q("code_challenge").filter(|c| !c.is_empty());
    if challenge.is_some() && req.q("code_challenge_method") != Some("S256") {
        return error(
            "invalid_request",
            "AADSTS501491: code_challenge_method must be S256.",
        );
    }
    let scope = req.q("scope").unwrap_or_default();
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
        .or_else(|| req.q("login_hint").map(str::to_owned))
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

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`.
pub(crate) fn openid_configuration(inner: &Inner, tenant: &str, req: &Req) -> Resp {
    let st = inner.lock();
    let now = inner.now_with(st.skew_secs);
    if !st.tenants.contains(tenant) {
        let ctx = Ctx {
            inner,
            req,
            tenant,
            now,
        };
        return tenant_not_found(&ctx);
    }
    let base = format!("{}/{tenant}", req.base(inner));
    Resp::json(
        200,
        OrderedJson::new()
            .with("token_endpoint", format!("{base}/oauth2/v2.0/token"))
            .with(
                "token_endpoint_auth_methods_supported",
                json!([
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic"
                ]),
            )
            .with("jwks_uri", format!("{base}/discovery/v2.0/keys"))
            .with(
                "response_modes_supported",
                json!(["query", "fragment", "form_post"]),
            )
            .with("subject_types_supported", json!(["pairwise"]))
            .with("id_token_signing_alg_values_supported", json!(["RS256"]))
            .with(
                "response_types_supported",
                json!([
                    "code",
                    "id_token",
                    "code id_token",
                    "token id_token",
                    "token"
                ]),
            )
            .with(
                "scopes_supported",
                json!(["openid", "profile", "email", "offline_access"]),
            )
            .with("issuer", inner.issuer(tenant))
            .with("request_uri_parameter_supported", false)
            .with(
                "userinfo_endpoint",
                "https://graph.microsoft.com/oidc/userinfo",
            )
            .with(
                "authorization_endpoint",
                format!("{base}/oauth2/v2.0/authorize"),
            )
            .with(
                "device_authorization_endpoint",
                format!("{base}/oauth2/v2.0/devicecode"),
            )
            .with("http_logout_supported", true)
            .with("frontchannel_logout_supported", true)
            .with("end_session_endpoint", format!("{base}/oauth2/v2.0/logout"))
            .with(
                "claims_supported",
                json!([
                    "sub",
                    "iss",
                    "aud",
                    "exp",
                    "iat",
                    "auth_time",
                    "acr",
                    "nonce",
                    "preferred_username",
                    "name",
                    "tid",
                    "ver",
                    "at_hash",
                    "c_hash",
                    "email"
                ]),
            )
            .with("kerberos_endpoint", format!("{base}/kerberos"))
            .with("tenant_region_scope", Value::Null)
            .with("cloud_instance_name", "microsoftonline.com")
            .with("cloud_graph_host_name", "graph.windows.net")
            .with("msgraph_host", "graph.microsoft.com")
            .with("rbac_url", "https://pas.windows.net"),
    )
}

/// `GET /{tenant}/discovery/v2.0/keys`.
pub(crate) fn keys_endpoint(inner: &Inner, tenant: &str, req: &Req) -> Resp {
    let st = inner.lock();
    if !st.tenants.contains(tenant) {
        let now = inner.now_with(st.skew_secs);
        let ctx = Ctx {
            inner,
            req,
            tenant,
            now,
        };
        return tenant_not_found(&ctx);
    }
    let mut jwk = TestKey::entra().jwk();
    if let Value::Object(map) = &mut jwk {
        map.insert("issuer".into(), inner.issuer(tenant).into());
    }
    Resp::json(200, OrderedJson::new().with("keys", json!([jwk])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences_from_scopes() {
        assert_eq!(
            audience_of("https://redis.azure.com/.default").as_deref(),
            Some(REDIS_RESOURCE)
        );
        assert_eq!(
            audience_of(&format!("{REDIS_APP_ID}/.default")).as_deref(),
            Some(REDIS_RESOURCE)
        );
        assert_eq!(
            audience_of("api://app/access_as_user").as_deref(),
            Some("api://app")
        );
        assert_eq!(audience_of("User.Read"), None);
        assert_eq!(audience_of("/.default"), None);
    }

    #[test]
    fn loopback_redirects_only() {
        assert!(is_loopback_redirect("http://localhost:8400/"));
        assert!(is_loopback_redirect("http://127.0.0.1:1234"));
        assert!(is_loopback_redirect("http://localhost"));
        assert!(!is_loopback_redirect("https://evil.example/cb"));
        assert!(!is_loopback_redirect("http://localhost.evil.example/"));
    }
}
