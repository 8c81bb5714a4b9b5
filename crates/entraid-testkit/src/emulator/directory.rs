//! The directory: tenants, apps, users, managed identities and trusted issuers, their token policies, and tokens
//! issued directly.

use std::time::Duration;

use super::registry::{AppRecord, CertificateInput, RegisteredCert, TokenPolicy, UserRecord};
use super::{
    App, Emulator, EmulatorError, FederatedCredential, ManagedIdentity, Principal, PrincipalKind,
    State, User,
};
use crate::keys::random_uuid;

impl Emulator {
    // ----- registry -----

    /// Adds a tenant.
    pub fn add_tenant(&self, tenant_id: &str) -> Result<(), EmulatorError> {
        check_tenant_id(tenant_id)?;
        self.inner.lock().tenants.insert(tenant_id.to_owned());
        Ok(())
    }

    fn tenant_or_default(
        &self,
        st: &State,
        tenant: Option<String>,
    ) -> Result<String, EmulatorError> {
        let tenant = tenant.unwrap_or_else(|| self.inner.default_tenant.clone());
        if st.tenants.contains(&tenant) {
            Ok(tenant)
        } else {
            Err(EmulatorError::UnknownTenant(tenant))
        }
    }

    /// Registers an app.
    pub fn add_app(&self, app: App) -> Result<Principal, EmulatorError> {
        let mut certificates = Vec::new();
        for input in &app.certificates {
            let der = match input {
                CertificateInput::Der(der) => der.clone(),
                CertificateInput::Pem(pem) => {
                    use rustls_pki_types::pem::PemObject as _;
                    rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
                        .map_err(|e| EmulatorError::InvalidCertificate(format!("PEM: {e}")))?
                        .to_vec()
                }
            };
            let parsed = rustls_pki_types::CertificateDer::from(der.as_slice());
            webpki::EndEntityCert::try_from(&parsed)
                .map_err(|e| EmulatorError::InvalidCertificate(format!("X.509: {e}")))?;
            certificates.push(RegisteredCert {
                x5t_s256: super::client_auth::thumbprint(&ring::digest::SHA256, &der),
                x5t: super::client_auth::thumbprint(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &der),
                der,
            });
        }
        let mut st = self.inner.lock();
        let tenant = self.tenant_or_default(&st, app.tenant.clone())?;
        let key = (tenant.clone(), app.client_id.clone());
        if st.apps.contains_key(&key) {
            return Err(EmulatorError::DuplicateClient(app.client_id));
        }
        let principal = Principal {
            kind: PrincipalKind::App,
            tenant_id: tenant,
            oid: app.oid.clone().unwrap_or_else(random_uuid),
            client_id: Some(app.client_id.clone()),
            resource_id: None,
            username: None,
        };
        st.apps.insert(
            key,
            AppRecord {
                principal: principal.clone(),
                secrets: app.secrets,
                certificates,
                federated: app.federated,
                public_client: app.public_client,
                policy: app.policy,
            },
        );
        Ok(principal)
    }

    /// Adds a federated credential to a registered app.
    pub fn add_federated_credential(
        &self,
        tenant: &str,
        client_id: &str,
        credential: FederatedCredential,
    ) -> Result<(), EmulatorError> {
        let mut st = self.inner.lock();
        let app = st
            .apps
            .get_mut(&(tenant.to_owned(), client_id.to_owned()))
            .ok_or_else(|| EmulatorError::UnknownPrincipal(client_id.to_owned()))?;
        app.federated.push(credential);
        Ok(())
    }

    /// Registers a user.
    pub fn add_user(&self, user: User) -> Result<Principal, EmulatorError> {
        let mut st = self.inner.lock();
        let tenant = self.tenant_or_default(&st, user.tenant.clone())?;
        let key = (tenant.clone(), user.username.to_lowercase());
        if st.users.contains_key(&key) {
            return Err(EmulatorError::DuplicateUser(user.username));
        }
        let principal = Principal {
            kind: PrincipalKind::User,
            tenant_id: tenant,
            oid: user.oid.clone().unwrap_or_else(random_uuid),
            client_id: None,
            resource_id: None,
            username: Some(user.username.clone()),
        };
        st.user_order.push(key.clone());
        st.users.insert(
            key,
            UserRecord {
                principal: principal.clone(),
                password: user.password,
                display_name: user.display_name.unwrap_or(user.username),
                mfa_required: user.mfa_required,
                policy: user.policy,
            },
        );
        Ok(principal)
    }

    /// Registers a managed identity. A new system-assigned identity replaces the previous one.
    pub fn add_managed_identity(
        &self,
        identity: ManagedIdentity,
    ) -> Result<Principal, EmulatorError> {
        let mut st = self.inner.lock();
        let tenant = self.tenant_or_default(&st, identity.tenant.clone())?;
        let record = identity.into_record(&tenant);
        if record.principal.kind == PrincipalKind::SystemAssignedIdentity {
            st.mis
                .retain(|m| m.principal.kind != PrincipalKind::SystemAssignedIdentity);
        }
        let p = &record.principal;
        for m in &st.mis {
            let q = &m.principal;
            for (a, b) in [
                (&p.client_id, &q.client_id),
                (&Some(p.oid.clone()), &Some(q.oid.clone())),
                (&p.resource_id, &q.resource_id),
            ] {
                if let (Some(a), Some(b)) = (a, b)
                    && a.eq_ignore_ascii_case(b)
                {
                    return Err(EmulatorError::DuplicateIdentity(a.clone()));
                }
            }
        }
        let principal = record.principal.clone();
        st.mis.push(record);
        Ok(principal)
    }

    fn with_policy<R>(
        &self,
        oid: &str,
        f: impl FnOnce(&mut TokenPolicy) -> R,
    ) -> Result<R, EmulatorError> {
        let mut st = self.inner.lock();
        let st = &mut *st;
        if let Some(app) = st.apps.values_mut().find(|a| a.principal.oid == oid) {
            return Ok(f(&mut app.policy));
        }
        if let Some(user) = st.users.values_mut().find(|u| u.principal.oid == oid) {
            return Ok(f(&mut user.policy));
        }
        if let Some(mi) = st.mis.iter_mut().find(|m| m.principal.oid == oid) {
            return Ok(f(&mut mi.policy));
        }
        Err(EmulatorError::UnknownPrincipal(oid.to_owned()))
    }

    /// Changes the lifetime of the tokens minted from now on for the principal with this `oid`.
    pub fn set_token_lifetime(&self, oid: &str, lifetime: Duration) -> Result<(), EmulatorError> {
        self.with_policy(oid, |p| p.lifetime = lifetime)
    }

    /// Adds (or with `None` removes) `refresh_in` in the principal's token responses.
    pub fn set_refresh_in(
        &self,
        oid: &str,
        refresh_in: Option<Duration>,
    ) -> Result<(), EmulatorError> {
        self.with_policy(oid, |p| p.refresh_in = refresh_in)
    }

    /// Mints an access token for a registered principal directly (no HTTP), with its lifetime, counted in
    /// [`Emulator::tokens_issued`]. `audience` is the `aud` claim, e.g. [`REDIS_RESOURCE`](crate::emulator::REDIS_RESOURCE).
    pub fn issue_token(&self, oid: &str, audience: &str) -> Result<String, EmulatorError> {
        self.issue_token_inner(oid, audience, None)
    }

    /// Like [`Emulator::issue_token`] with an explicit lifetime.
    pub fn issue_token_with_lifetime(
        &self,
        oid: &str,
        audience: &str,
        lifetime: Duration,
    ) -> Result<String, EmulatorError> {
        self.issue_token_inner(oid, audience, Some(lifetime))
    }

    fn issue_token_inner(
        &self,
        oid: &str,
        audience: &str,
        lifetime: Option<Duration>,
    ) -> Result<String, EmulatorError> {
        let mut st = self.inner.lock();
        let subject = super::mint::Subject::find(&st, oid)
            .ok_or_else(|| EmulatorError::UnknownPrincipal(oid.to_owned()))?;
        let subject = match lifetime {
            Some(lifetime) => super::mint::Subject {
                policy: TokenPolicy {
                    lifetime,
                    ..subject.policy
                },
                ..subject
            },
            None => subject,
        };
        let now = self.inner.now_with(st.skew_secs);
        let (jwt, _) = super::mint::mint(&self.inner, &mut st, &subject, audience, now);
        Ok(jwt)
    }

    /// Every registered principal.
    pub fn principals(&self) -> Vec<Principal> {
        let st = self.inner.lock();
        let mut out: Vec<Principal> = st.apps.values().map(|a| a.principal.clone()).collect();
        out.extend(
            st.user_order
                .iter()
                .filter_map(|k| st.users.get(k))
                .map(|u| u.principal.clone()),
        );
        out.extend(st.mis.iter().map(|m| m.principal.clone()));
        out
    }
}

/// A tenant id the emulator accepts: letters, digits, `.` and `-`.
pub(super) fn check_tenant_id(id: &str) -> Result<(), EmulatorError> {
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    {
        return Err(EmulatorError::InvalidTenantId(id.to_owned()));
    }
    Ok(())
}
