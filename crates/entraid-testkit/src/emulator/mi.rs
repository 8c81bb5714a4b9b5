//! The managed-identity hosts: IMDS, App Service, Azure Arc, Cloud Shell and Azure ML, with their own request
//! rules and response shapes.

use hyper::Method;

use super::http::{Req, Resp};
use super::mint::{Subject, mint};
use super::registry::{MiRecord, PrincipalKind};
use super::util::{OrderedJson, random_token};
use super::{Inner, State};

/// Which host is asking, for the response shape.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Host {
    Imds,
    AppService,
    Arc,
    CloudShell,
    AzureMl,
}

/// How a request names a user-assigned identity.
#[derive(Clone, Copy)]
enum Selector<'a> {
    Client(&'a str),
    Object(&'a str),
    Resource(&'a str),
}

fn find_identity<'a>(st: &'a State, selector: Option<Selector<'_>>) -> Option<&'a MiRecord> {
    match selector {
        None => st
            .mis
            .iter()
            .find(|m| m.principal.kind == PrincipalKind::SystemAssignedIdentity),
        Some(sel) => st.mis.iter().find(|m| {
            let p = &m.principal;
            let eq = |a: &Option<String>, b: &str| {
                a.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(b))
            };
            match sel {
                Selector::Client(id) => eq(&p.client_id, id),
                Selector::Object(id) => p.oid.eq_ignore_ascii_case(id),
                Selector::Resource(id) => eq(&p.resource_id, id),
            }
        }),
    }
}

/// Reads the selector parameters a host supports; more than one is an error.
fn selector<'a>(
    req: &'a Req,
    client: &str,
    object: &str,
    resource: &str,
) -> Result<Option<Selector<'a>>, Resp> {
    let found: Vec<Selector<'a>> = [
        req.query_param(client).map(Selector::Client),
        req.query_param(object).map(Selector::Object),
        req.query_param(resource).map(Selector::Resource),
    ]
    .into_iter()
    .flatten()
    .collect();
    match found.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        _ => Err(Resp::simple_error(
            400,
            "invalid_request",
            "Only one of client_id, object_id and the resource id may be given",
        )),
    }
}

/// Mints the token and shapes the answer for `host`.
fn answer(
    inner: &Inner,
    st: &mut State,
    host: Host,
    selector: Option<Selector<'_>>,
    resource: &str,
) -> Resp {
    let Some(identity) = find_identity(st, selector) else {
        return Resp::simple_error(400, "invalid_request", "Identity not found");
    };
    let subject = Subject::managed_identity(identity);
    let client_id = identity.principal.client_id.clone().unwrap_or_default();
    let now = inner.now_with(st.skew_secs);
    let aud = resource.trim_end_matches('/');
    let aud = if aud.eq_ignore_ascii_case(super::REDIS_APP_ID) {
        super::REDIS_RESOURCE
    } else {
        aud
    };
    let (jwt, lifetime) = mint(inner, st, &subject, aud, now);
    let expires_on = now + lifetime;
    let mut body = OrderedJson::new().with("access_token", jwt);
    match host {
        Host::AppService => {
            body.push("expires_on", expires_on);
            body.push("resource", resource);
            body.push("token_type", "Bearer");
            body.push("client_id", client_id);
        }
        Host::Imds | Host::Arc | Host::CloudShell | Host::AzureMl => {
            body.push("client_id", client_id);
            body.push("expires_in", lifetime.to_string());
            body.push("expires_on", expires_on.to_string());
            body.push("ext_expires_in", lifetime.to_string());
            body.push("not_before", now.to_string());
            body.push("resource", resource);
            body.push("token_type", "Bearer");
        }
    }
    if let Some(refresh_in) = subject.policy.refresh_in {
        body.push("refresh_in", refresh_in.as_secs().to_string());
    }
    Resp::json(200, body)
}

fn require_get(req: &Req) -> Result<(), Resp> {
    if req.method == Method::GET {
        Ok(())
    } else {
        Err(
            Resp::simple_error(405, "invalid_request", "Only GET is supported")
                .header("allow", "GET"),
        )
    }
}

fn require_metadata(req: &Req) -> Result<(), Resp> {
    if req
        .header("metadata")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        Ok(())
    } else {
        Err(Resp::simple_error(
            400,
            "invalid_request",
            "Required metadata header not specified",
        ))
    }
}

fn require_api_version(req: &Req, version: &str) -> Result<(), Resp> {
    match req.query_param("api-version") {
        Some(v) if v == version => Ok(()),
        Some(v) => Err(Resp::simple_error(
            400,
            "invalid_request",
            &format!("Unsupported api-version '{v}': this endpoint speaks {version}"),
        )),
        None => Err(Resp::simple_error(
            400,
            "invalid_request",
            "Required query variable 'api-version' is missing",
        )),
    }
}

fn require_resource(resource: Option<&str>) -> Result<&str, Resp> {
    resource.filter(|r| !r.is_empty()).ok_or_else(|| {
        Resp::simple_error(
            400,
            "invalid_request",
            "Required audience parameter not specified",
        )
    })
}

/// IMDS: `GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=..`, `Metadata: true`.
pub(crate) fn imds(inner: &Inner, req: &Req) -> Resp {
    let result = (|| {
        require_get(req)?;
        require_metadata(req)?;
        require_api_version(req, "2018-02-01")?;
        let resource = require_resource(req.query_param("resource"))?;
        let sel = selector(req, "client_id", "object_id", "msi_res_id")?;
        let mut st = inner.lock();
        Ok(answer(inner, &mut st, Host::Imds, sel, resource))
    })();
    result.unwrap_or_else(|r| r)
}

/// App Service: `GET /msi/token?api-version=2019-08-01&resource=..`, `X-IDENTITY-HEADER: <secret>`.
pub(crate) fn app_service(inner: &Inner, req: &Req) -> Resp {
    let result = (|| {
        require_get(req)?;
        if req.header("x-identity-header") != Some(inner.app_service_secret.as_str()) {
            return Err(Resp::simple_error(
                401,
                "unauthorized",
                "The X-IDENTITY-HEADER header is missing or does not match IDENTITY_HEADER",
            ));
        }
        require_api_version(req, "2019-08-01")?;
        if req.query_param("msi_res_id").is_some() {
            return Err(Resp::simple_error(
                400,
                "invalid_request",
                "msi_res_id is not a parameter of App Service: use mi_res_id",
            ));
        }
        let resource = require_resource(req.query_param("resource"))?;
        let sel = selector(req, "client_id", "object_id", "mi_res_id")?;
        let mut st = inner.lock();
        Ok(answer(inner, &mut st, Host::AppService, sel, resource))
    })();
    result.unwrap_or_else(|r| r)
}

/// Azure Arc: a first request gets a 401 challenge naming a key file; a second one carries its contents.
pub(crate) fn arc(inner: &Inner, req: &Req) -> Resp {
    let result = (|| {
        require_get(req)?;
        require_metadata(req)?;
        require_api_version(req, "2020-06-01")?;
        let resource = require_resource(req.query_param("resource"))?;
        let mut st = inner.lock();
        let presented = req
            .header("authorization")
            .and_then(|v| v.strip_prefix("Basic "))
            .map(str::trim);
        let valid = presented.is_some_and(|p| st.arc_keys.iter().any(|(_, k)| k == p));
        if !valid {
            let Some(dir) = st.arc_key_dir.clone() else {
                return Err(Resp::simple_error(
                    500,
                    "server_error",
                    "The emulator has no Arc key folder: call Emulator::set_arc_key_dir",
                ));
            };
            let key = random_token(32);
            let path = dir.join(format!("{}.key", random_token(12)));
            if let Err(e) = std::fs::write(&path, &key) {
                return Err(Resp::simple_error(
                    500,
                    "server_error",
                    &format!("cannot write the key file: {e}"),
                ));
            }
            st.arc_keys.push((path.clone(), key));
            return Err(
                Resp::simple_error(401, "unauthorized", "Authentication required").header(
                    "www-authenticate",
                    format!("Basic realm={}", path.display()),
                ),
            );
        }
        let sel = if st.arc_honours_selectors {
            selector(req, "client_id", "object_id", "msi_res_id")?
        } else {
            None
        };
        Ok(answer(inner, &mut st, Host::Arc, sel, resource))
    })();
    result.unwrap_or_else(|r| r)
}

/// Cloud Shell: `POST` form `resource=..`, `Metadata: true`. Answers for the system-assigned identity (it stands
/// for the signed-in Cloud Shell user).
pub(crate) fn cloud_shell(inner: &Inner, req: &Req) -> Resp {
    let result = (|| {
        if req.method != Method::POST {
            return Err(
                Resp::simple_error(405, "invalid_request", "Only POST is supported")
                    .header("allow", "POST"),
            );
        }
        require_metadata(req)?;
        let resource = require_resource(req.form_param("resource"))?;
        let mut st = inner.lock();
        Ok(answer(inner, &mut st, Host::CloudShell, None, resource))
    })();
    result.unwrap_or_else(|r| r)
}

/// Azure ML: `GET ?api-version=2017-09-01&resource=..&clientid=..`, header `secret: <MSI_SECRET>`.
pub(crate) fn azure_ml(inner: &Inner, req: &Req) -> Resp {
    let result = (|| {
        require_get(req)?;
        if req.header("secret") != Some(inner.azure_ml_secret.as_str()) {
            return Err(Resp::simple_error(
                401,
                "unauthorized",
                "The secret header is missing or does not match MSI_SECRET",
            ));
        }
        require_api_version(req, "2017-09-01")?;
        let resource = require_resource(req.query_param("resource"))?;
        let mut st = inner.lock();
        let sel = req
            .query_param("clientid")
            .filter(|c| !c.is_empty())
            .map(Selector::Client);
        Ok(answer(inner, &mut st, Host::AzureMl, sel, resource))
    })();
    result.unwrap_or_else(|r| r)
}
