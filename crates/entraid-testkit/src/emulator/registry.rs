//! The registry of principals: apps (secrets, certificates, federated credentials), users and managed
//! identities, each with an `oid` and a token policy.

use std::fmt;
use std::time::Duration;

use entraid_core::Secret;

use crate::keys::random_uuid;
use crate::tls::ClientCertificate;

/// The default token lifetime: 3599 s, as Entra answers (`expires_in: 3599`).
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3599);

/// The audience federated credentials expect by default.
pub const FEDERATED_AUDIENCE: &str = "api://AzureADTokenExchange";

/// The well-known public client id of the Azure CLI (azidentity's default for user flows). The emulator accepts
/// it in every tenant as a public client.
pub const AZURE_CLI_CLIENT_ID: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";

/// How long a principal's tokens live and whether responses carry `refresh_in`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenPolicy {
    pub(crate) lifetime: Duration,
    pub(crate) refresh_in: Option<Duration>,
}

impl Default for TokenPolicy {
    fn default() -> Self {
        Self {
            lifetime: DEFAULT_TOKEN_LIFETIME,
            refresh_in: None,
        }
    }
}

/// What kind of principal a [`Principal`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PrincipalKind {
    /// An app (service principal): secrets, certificates, federated credentials, or a public client.
    App,
    /// A user (password, device code, browser, on-behalf-of).
    User,
    /// The system-assigned managed identity.
    SystemAssignedIdentity,
    /// A user-assigned managed identity.
    UserAssignedIdentity,
}

/// A registered principal, as the emulator knows it. Its `oid` is the Redis username of its tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Principal {
    /// The kind.
    pub kind: PrincipalKind,
    /// The tenant it lives in.
    pub tenant_id: String,
    /// Its object id: the `oid` (and `sub`) of its access tokens.
    pub oid: String,
    /// The client (application) id, for apps and managed identities.
    pub client_id: Option<String>,
    /// The Azure resource id, for user-assigned managed identities (`msi_res_id` / `mi_res_id`).
    pub resource_id: Option<String>,
    /// The user name (UPN), for users.
    pub username: Option<String>,
}

/// A federated identity credential on an app: tokens from `issuer` about `subject` for `audience` are accepted
/// as client assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederatedCredential {
    /// The issuer (`iss`) the assertion must have.
    pub issuer: String,
    /// The subject (`sub`) the assertion must have.
    pub subject: String,
    /// An audience the assertion's `aud` must contain. Default [`FEDERATED_AUDIENCE`].
    pub audience: String,
}

impl FederatedCredential {
    /// A credential for `issuer` and `subject`, audience `api://AzureADTokenExchange`.
    pub fn new(issuer: impl Into<String>, subject: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            subject: subject.into(),
            audience: FEDERATED_AUDIENCE.to_owned(),
        }
    }

    /// Changes the audience.
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }
}

#[derive(Clone)]
pub(crate) enum CertificateInput {
    Der(Vec<u8>),
    Pem(String),
}

/// An app registration to add with [`Emulator::add_app`](super::Emulator::add_app).
///
/// Defaults: the emulator's default tenant, a random `oid`, no credentials (add a secret, a certificate, a
/// federated credential, or make it a public client), token lifetime [`DEFAULT_TOKEN_LIFETIME`], no `refresh_in`.
/// `Debug` hides the secrets.
#[derive(Clone)]
pub struct App {
    pub(crate) client_id: String,
    pub(crate) tenant: Option<String>,
    pub(crate) oid: Option<String>,
    pub(crate) secrets: Vec<Secret>,
    pub(crate) certificates: Vec<CertificateInput>,
    pub(crate) federated: Vec<FederatedCredential>,
    pub(crate) public_client: bool,
    pub(crate) policy: TokenPolicy,
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("client_id", &self.client_id)
            .field("tenant", &self.tenant)
            .field("secrets", &self.secrets.len())
            .field("certificates", &self.certificates.len())
            .field("federated", &self.federated)
            .field("public_client", &self.public_client)
            .finish_non_exhaustive()
    }
}

impl App {
    /// An app with this client id.
    pub fn new(client_id: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            tenant: None,
            oid: None,
            secrets: Vec::new(),
            certificates: Vec::new(),
            federated: Vec::new(),
            public_client: false,
            policy: TokenPolicy::default(),
        }
    }

    /// Registers it in this tenant (which must exist) instead of the default one.
    #[must_use]
    pub fn tenant(mut self, tenant_id: impl Into<String>) -> Self {
        self.tenant = Some(tenant_id.into());
        self
    }

    /// Sets its object id (default: a random UUID).
    #[must_use]
    pub fn oid(mut self, oid: impl Into<String>) -> Self {
        self.oid = Some(oid.into());
        self
    }

    /// Adds a client secret.
    #[must_use]
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secrets.push(Secret::new(secret.into()));
        self
    }

    /// Adds a certificate credential (DER). Its thumbprint identifies it in assertions; its public key
    /// verifies their signature.
    #[must_use]
    pub fn certificate_der(mut self, der: impl Into<Vec<u8>>) -> Self {
        self.certificates.push(CertificateInput::Der(der.into()));
        self
    }

    /// Adds a certificate credential (PEM `CERTIFICATE` block; only the first block is used). A bad PEM is
    /// reported by [`Emulator::add_app`](super::Emulator::add_app).
    #[must_use]
    pub fn certificate_pem(mut self, pem: impl Into<String>) -> Self {
        self.certificates.push(CertificateInput::Pem(pem.into()));
        self
    }

    /// Adds a [`ClientCertificate`] as a certificate credential.
    #[must_use]
    pub fn certificate(self, cert: &ClientCertificate) -> Self {
        self.certificate_der(cert.cert_der().to_vec())
    }

    /// Adds a federated identity credential.
    #[must_use]
    pub fn federated(mut self, credential: FederatedCredential) -> Self {
        self.federated.push(credential);
        self
    }

    /// Makes it a public client: user flows (password, device code, browser, refresh) need no client
    /// authentication. A public client cannot use client credentials.
    #[must_use]
    pub fn public_client(mut self) -> Self {
        self.public_client = true;
        self
    }

    /// Lifetime of its app tokens (client credentials), from 1 s to hours. Default 3599 s.
    #[must_use]
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.policy.lifetime = lifetime;
        self
    }

    /// Adds `refresh_in` (whole seconds) to its token responses. Default: absent.
    #[must_use]
    pub fn refresh_in(mut self, refresh_in: Duration) -> Self {
        self.policy.refresh_in = Some(refresh_in);
        self
    }
}

/// A user to add with [`Emulator::add_user`](super::Emulator::add_user), for password, device-code, browser,
/// refresh-token and on-behalf-of flows.
///
/// Defaults: the default tenant, a random `oid`, no MFA, token lifetime 3599 s, no `refresh_in`. `Debug` hides
/// the password.
#[derive(Clone)]
pub struct User {
    pub(crate) username: String,
    pub(crate) password: Secret,
    pub(crate) tenant: Option<String>,
    pub(crate) oid: Option<String>,
    pub(crate) display_name: Option<String>,
    pub(crate) mfa_required: bool,
    pub(crate) policy: TokenPolicy,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("username", &self.username)
            .field("tenant", &self.tenant)
            .field("mfa_required", &self.mfa_required)
            .finish_non_exhaustive()
    }
}

impl User {
    /// A user with this user name (UPN, matched case-insensitively) and password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: Secret::new(password.into()),
            tenant: None,
            oid: None,
            display_name: None,
            mfa_required: false,
            policy: TokenPolicy::default(),
        }
    }

    /// Registers the user in this tenant instead of the default one.
    #[must_use]
    pub fn tenant(mut self, tenant_id: impl Into<String>) -> Self {
        self.tenant = Some(tenant_id.into());
        self
    }

    /// Sets the object id (default: a random UUID).
    #[must_use]
    pub fn oid(mut self, oid: impl Into<String>) -> Self {
        self.oid = Some(oid.into());
        self
    }

    /// Sets the display name (`name` claim; default: the user name).
    #[must_use]
    pub fn display_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = Some(name.into());
        self
    }

    /// When set, the password grant answers AADSTS50076 (MFA required).
    #[must_use]
    pub fn mfa_required(mut self, required: bool) -> Self {
        self.mfa_required = required;
        self
    }

    /// Lifetime of the user's access tokens. Default 3599 s.
    #[must_use]
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.policy.lifetime = lifetime;
        self
    }

    /// Adds `refresh_in` to the user's token responses. Default: absent.
    #[must_use]
    pub fn refresh_in(mut self, refresh_in: Duration) -> Self {
        self.policy.refresh_in = Some(refresh_in);
        self
    }
}

/// A managed identity to add with [`Emulator::add_managed_identity`](super::Emulator::add_managed_identity).
///
/// Defaults: the default tenant, random client id and object id, for a user-assigned one a resource id
/// `/subscriptions/<uuid>/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>`,
/// token lifetime 3599 s (IMDS answers 86399 s for some resources; set what you need).
#[derive(Debug, Clone)]
pub struct ManagedIdentity {
    pub(crate) system_assigned: bool,
    pub(crate) tenant: Option<String>,
    pub(crate) client_id: Option<String>,
    pub(crate) oid: Option<String>,
    pub(crate) resource_id: Option<String>,
    pub(crate) policy: TokenPolicy,
}

impl ManagedIdentity {
    /// The host's system-assigned identity (at most one per emulator; adding another replaces it).
    pub fn system_assigned() -> Self {
        Self {
            system_assigned: true,
            tenant: None,
            client_id: None,
            oid: None,
            resource_id: None,
            policy: TokenPolicy::default(),
        }
    }

    /// A user-assigned identity.
    pub fn user_assigned() -> Self {
        Self {
            system_assigned: false,
            ..Self::system_assigned()
        }
    }

    /// Registers it in this tenant instead of the default one.
    #[must_use]
    pub fn tenant(mut self, tenant_id: impl Into<String>) -> Self {
        self.tenant = Some(tenant_id.into());
        self
    }

    /// Sets the client id.
    #[must_use]
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// Sets the object (principal) id, the `oid` of its tokens.
    #[must_use]
    pub fn object_id(mut self, oid: impl Into<String>) -> Self {
        self.oid = Some(oid.into());
        self
    }

    /// Sets the Azure resource id.
    #[must_use]
    pub fn resource_id(mut self, resource_id: impl Into<String>) -> Self {
        self.resource_id = Some(resource_id.into());
        self
    }

    /// Lifetime of its tokens. Default 3599 s.
    #[must_use]
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.policy.lifetime = lifetime;
        self
    }

    /// Adds `refresh_in` to its token responses (IMDS never sends it; for tests of parsers). Default: absent.
    #[must_use]
    pub fn refresh_in(mut self, refresh_in: Duration) -> Self {
        self.policy.refresh_in = Some(refresh_in);
        self
    }
}

/// A registered app, with parsed certificates.
#[derive(Clone)]
pub(crate) struct AppRecord {
    pub(crate) principal: Principal,
    pub(crate) secrets: Vec<Secret>,
    pub(crate) certificates: Vec<RegisteredCert>,
    pub(crate) federated: Vec<FederatedCredential>,
    pub(crate) public_client: bool,
    pub(crate) policy: TokenPolicy,
}

#[derive(Clone)]
pub(crate) struct RegisteredCert {
    pub(crate) der: Vec<u8>,
    pub(crate) x5t_s256: String,
    pub(crate) x5t: String,
}

pub(crate) struct UserRecord {
    pub(crate) principal: Principal,
    pub(crate) password: Secret,
    pub(crate) display_name: String,
    pub(crate) mfa_required: bool,
    pub(crate) policy: TokenPolicy,
}

pub(crate) struct MiRecord {
    pub(crate) principal: Principal,
    pub(crate) policy: TokenPolicy,
}

impl ManagedIdentity {
    pub(crate) fn into_record(self, default_tenant: &str) -> MiRecord {
        let client_id = self.client_id.unwrap_or_else(random_uuid);
        let resource_id = if self.system_assigned {
            self.resource_id
        } else {
            Some(self.resource_id.unwrap_or_else(|| {
                format!(
                    "/subscriptions/{}/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-{}",
                    random_uuid(),
                    &client_id[..8.min(client_id.len())]
                )
            }))
        };
        MiRecord {
            principal: Principal {
                kind: if self.system_assigned {
                    PrincipalKind::SystemAssignedIdentity
                } else {
                    PrincipalKind::UserAssignedIdentity
                },
                tenant_id: self.tenant.unwrap_or_else(|| default_tenant.to_owned()),
                oid: self.oid.unwrap_or_else(random_uuid),
                client_id: Some(client_id),
                resource_id,
                username: None,
            },
            policy: self.policy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let app = App::new("cid").secret("super-secret-value");
        assert!(!format!("{app:?}").contains("super-secret-value"));
        let user = User::new("a@b", "hunter2-password");
        assert!(!format!("{user:?}").contains("hunter2-password"));
    }

    #[test]
    fn managed_identity_defaults() {
        let rec = ManagedIdentity::user_assigned().into_record("t");
        assert_eq!(rec.principal.kind, PrincipalKind::UserAssignedIdentity);
        assert!(
            rec.principal
                .resource_id
                .as_deref()
                .unwrap()
                .contains("userAssignedIdentities")
        );
        assert_eq!(rec.principal.tenant_id, "t");
        let sys = ManagedIdentity::system_assigned().into_record("t");
        assert!(sys.principal.resource_id.is_none());
        assert_eq!(sys.policy.lifetime, DEFAULT_TOKEN_LIFETIME);
    }
}
