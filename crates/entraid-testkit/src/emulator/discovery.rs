//! Discovery and keys: `.well-known/openid-configuration` and the JWKS of a tenant.

use serde_json::{Value, json};

use super::Inner;
use super::grant_context::{Ctx, tenant_not_found};
use super::http::{Req, Resp};
use super::util::OrderedJson;
use crate::keys::TestKey;

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`.
pub(crate) fn openid_configuration(inner: &Inner, tenant: &str, req: &Req) -> Resp {
    let st = inner.lock();
    if !st.tenants.contains(tenant) {
        return tenant_not_found(&Ctx::new(inner, req, tenant, &st));
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
        return tenant_not_found(&Ctx::new(inner, req, tenant, &st));
    }
    let mut jwk = TestKey::entra().jwk();
    if let Value::Object(map) = &mut jwk {
        map.insert("issuer".into(), inner.issuer(tenant).into());
    }
    Resp::json(200, OrderedJson::new().with("keys", json!([jwk])))
}
