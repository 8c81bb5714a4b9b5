//! Emulated federated issuers: the GitHub Actions and Azure Pipelines OIDC endpoints, and Kubernetes
//! service-account tokens (the workload identity file).

use std::time::Duration;

use hyper::Method;
use serde_json::json;

use super::http::{Req, Resp};
use super::registry::FEDERATED_AUDIENCE;
use super::util::OrderedJson;
use super::{Inner, util};
use crate::keys::{TestKey, random_uuid};

/// The issuer of the emulated GitHub Actions OIDC tokens (the real one's URL; the emulator trusts
/// [`TestKey::github`] for it).
pub const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";
/// The organization id in the emulated Azure Pipelines issuer.
pub const PIPELINES_ORG: &str = "6f0a4a4e-1c5b-4f2e-9a4f-3d2b1c0e5a77";
/// The issuer of the emulated Azure Pipelines OIDC tokens (`https://vstoken.dev.azure.com/<org id>`).
pub const PIPELINES_ISSUER: &str =
    "https://vstoken.dev.azure.com/6f0a4a4e-1c5b-4f2e-9a4f-3d2b1c0e5a77";
/// The issuer of the emulated Kubernetes service-account tokens.
pub const KUBERNETES_ISSUER: &str = "https://oidc.prod-aks.azure.com/entraid-testkit/";

/// How long GitHub and Pipelines OIDC tokens live.
const CI_TOKEN_LIFETIME: i64 = 600;

fn bearer(req: &Req) -> Option<&str> {
    req.header("authorization")?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// `GET /github/idtoken?api-version=2.0&audience=..` with `Authorization: Bearer <request token>`.
pub(crate) fn github(inner: &Inner, req: &Req) -> Resp {
    if req.method != Method::GET {
        return Resp::json(
            405,
            OrderedJson::new().with("message", "Method not allowed"),
        );
    }
    if bearer(req) != Some(inner.github_request_token.as_str()) {
        return Resp::json(401, OrderedJson::new().with("message", "Bad credentials"));
    }
    let st = inner.lock();
    let now = inner.now_with(st.skew_secs);
    let audience = req
        .query_param("audience")
        .unwrap_or("https://github.com/octo-org");
    let jwt = TestKey::github().sign_jwt(&json!({
        "jti": random_uuid(),
        "sub": st.github_subject,
        "aud": audience,
        "ref": "refs/heads/main",
        "repository": "octo-org/octo-repo",
        "repository_owner": "octo-org",
        "run_id": "1",
        "workflow": "ci",
        "event_name": "push",
        "iss": GITHUB_ISSUER,
        "nbf": now,
        "iat": now,
        "exp": now + CI_TOKEN_LIFETIME,
    }));
    Resp::json(200, OrderedJson::new().with("count", 1).with("value", jwt))
}

/// The subject of Pipelines OIDC tokens for a service connection.
pub(crate) fn pipelines_subject(service_connection_id: &str) -> String {
    format!("sc://entraid-org/entraid-project/{service_connection_id}")
}

/// `POST /pipelines/oidctoken?api-version=7.1&serviceConnectionId=..` with `Authorization: Bearer <token>`.
pub(crate) fn pipelines(inner: &Inner, req: &Req) -> Resp {
    if req.method != Method::POST {
        return Resp::json(
            405,
            OrderedJson::new().with("message", "Method not allowed"),
        );
    }
    if bearer(req) != Some(inner.pipelines_request_token.as_str()) {
        return Resp::json(
            401,
            OrderedJson::new().with("message", "Access denied: missing or wrong bearer token"),
        );
    }
    if req.query_param("api-version") != Some("7.1") {
        return Resp::json(
            400,
            OrderedJson::new()
                .with("$id", "1")
                .with("message", "The api-version query parameter must be 7.1")
                .with("typeKey", "VssVersionOutOfRangeException"),
        );
    }
    let Some(connection) = req
        .query_param("serviceConnectionId")
        .filter(|c| !c.is_empty())
    else {
        return Resp::json(
            400,
            OrderedJson::new()
                .with("$id", "1")
                .with("message", "serviceConnectionId is required")
                .with("typeKey", "ArgumentNullException"),
        );
    };
    let now = inner.now_with(inner.lock().skew_secs);
    let jwt = TestKey::pipelines().sign_jwt(&json!({
        "jti": random_uuid(),
        "sub": pipelines_subject(connection),
        "aud": FEDERATED_AUDIENCE,
        "iss": PIPELINES_ISSUER,
        "nbf": now,
        "iat": now,
        "exp": now + CI_TOKEN_LIFETIME,
    }));
    Resp::json(200, OrderedJson::new().with("oidcToken", jwt))
}

/// A Kubernetes service-account token for workload identity.
pub(crate) fn kubernetes_token(
    namespace: &str,
    service_account: &str,
    now: i64,
    lifetime: Duration,
) -> String {
    let lifetime = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 4);
    TestKey::kubernetes().sign_jwt(&json!({
        "aud": [FEDERATED_AUDIENCE],
        "exp": now + lifetime,
        "iat": now,
        "nbf": now,
        "iss": KUBERNETES_ISSUER,
        "jti": util::random_token(16),
        "kubernetes.io": {
            "namespace": namespace,
            "serviceaccount": {"name": service_account, "uid": random_uuid()},
        },
        "sub": format!("system:serviceaccount:{namespace}:{service_account}"),
    }))
}
