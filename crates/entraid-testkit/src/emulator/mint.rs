//! Token minting: who a token is for ([`Subject`]), the RS256 access and id tokens, and the audience of a scope.

use serde_json::{Value, json};

use super::registry::{AZURE_CLI_CLIENT_ID, AppRecord, PrincipalKind, TokenPolicy};
use super::util::random_token;
use super::{Inner, REDIS_APP_ID, REDIS_RESOURCE, State};
use crate::keys::TestKey;

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

pub(super) fn lifetime_secs(policy: &TokenPolicy) -> i64 {
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
pub(super) fn id_token(inner: &Inner, subject: &Subject, now: i64) -> String {
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
}
