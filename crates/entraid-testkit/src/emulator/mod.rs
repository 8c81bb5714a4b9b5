//! An Entra ID emulator: every token endpoint and managed-identity host, real RS256 JWTs, scriptable faults.
//!
//! [`Emulator::start`] listens on `127.0.0.1`, port 0, over HTTP and HTTPS (a fresh [`TestCa`](crate::tls::TestCa) signs its
//! server certificate for `127.0.0.1` and `localhost`; both URLs use `127.0.0.1`). It holds a registry of tenants
//! and principals — apps with secrets, certificates or federated credentials; users; managed identities — and
//! mints a new RS256 JWT signed with [`TestKey::entra`](crate::keys::TestKey::entra) on every request, with
//! `aud`, `iss`, `iat`, `nbf`, `exp`, `oid`, `tid`, `sub`, `appid`/`azp` and `idtyp`.
//!
//! Endpoints (paths on both listeners):
//!
//! | path | what |
//! |---|---|
//! | `POST /{tenant}/oauth2/v2.0/token` | client credentials (secret, certificate assertion, federated assertion), password, device code, authorization code + PKCE, refresh token, on-behalf-of |
//! | `POST /{tenant}/oauth2/v2.0/devicecode` | device authorization |
//! | `GET /{tenant}/oauth2/v2.0/authorize` | browser sign-in: redirects to `redirect_uri` with `code` and `state` |
//! | `GET /{tenant}/v2.0/.well-known/openid-configuration`, `GET /{tenant}/discovery/v2.0/keys` | discovery and JWKS |
//! | `GET /metadata/identity/oauth2/token` | IMDS ([`Emulator::imds_endpoint`]) |
//! | `GET /msi/token` | App Service ([`Emulator::app_service_endpoint`]) |
//! | `GET /arc/metadata/identity/oauth2/token` | Azure Arc ([`Emulator::arc_endpoint`]) |
//! | `POST /cloudshell/oauth2/token` | Cloud Shell ([`Emulator::cloud_shell_endpoint`]) |
//! | `GET /azureml/msi/token` | Azure ML ([`Emulator::azure_ml_endpoint`]) |
//! | `GET /github/idtoken` | GitHub Actions OIDC ([`Emulator::github_oidc_url`]) |
//! | `POST /pipelines/oidctoken` | Azure Pipelines OIDC ([`Emulator::pipelines_oidc_url`]) |
//!
//! Refusals are Entra-shaped (`error`, `error_description` starting with `AADSTSnnnnn:`, `error_codes`,
//! `timestamp`, `trace_id`, `correlation_id` — the request's `client-request-id` when it sent one — and
//! `error_uri`), with Entra's statuses: 401 for `invalid_client`, 400 otherwise.
//!
//! Tests script faults per endpoint ([`Emulator::faults`]), read the request log ([`Emulator::requests`], secrets
//! redacted) and count tokens per principal ([`Emulator::tokens_issued`]).
//!
//! **Time.** The emulator's clock is the wall clock at start plus the time elapsed on tokio's clock since, plus
//! a settable skew ([`Emulator::set_clock_skew`]). In a test with paused time, tokens, device codes and
//! assertions age as tokio's clock advances.
//!
//! # Example
//!
//! ```
//! use entraid_testkit::emulator::{App, Emulator, HttpClient};
//! use entraid_testkit::keys::JwtVerifier;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let emu = Emulator::start().await.unwrap();
//! let app = emu.add_app(App::new("my-client-id").secret("my-secret")).unwrap();
//!
//! let response = emu
//!     .client()
//!     .post_form(
//!         &emu.token_url(emu.tenant_id()),
//!         &[
//!             ("grant_type", "client_credentials"),
//!             ("client_id", "my-client-id"),
//!             ("client_secret", "my-secret"),
//!             ("scope", "https://redis.azure.com/.default"),
//!         ],
//!         &[],
//!     )
//!     .await
//!     .unwrap();
//! assert_eq!(response.status, 200);
//! let body = response.json().unwrap();
//! let token = body["access_token"].as_str().unwrap();
//! let verified = JwtVerifier::from_jwks(&emu.jwks()).verify(token).unwrap();
//! assert_eq!(verified.claims.oid(), Some(app.oid.as_str()));
//! assert_eq!(verified.claims.aud(), Some("https://redis.azure.com"));
//! assert_eq!(emu.tokens_issued(&app.oid), 1);
//! # }
//! ```

mod addresses;
mod builder;
mod client;
mod client_auth;
mod controls;
mod directory;
mod discovery;
mod faults;
mod grant_context;
mod grants;
mod http;
mod issue;
mod log;
mod mi;
mod mint;
mod oidc;
mod policy;
mod registry;
mod server;
mod state;
mod token_endpoint;
mod user_endpoints;
mod util;

use std::sync::Arc;

pub use builder::EmulatorBuilder;
pub use client::{ClientError, HttpClient, HttpResponse};
pub use controls::FaultScript;
pub use faults::{Endpoint, Fault};
pub use log::{REDACTED, RequestRecord};
pub use oidc::{GITHUB_ISSUER, KUBERNETES_ISSUER, PIPELINES_ISSUER, PIPELINES_ORG};
pub use policy::{AuthorizePolicy, DeviceCodeOutcome, DeviceCodePolicy};
pub use registry::{
    AZURE_CLI_CLIENT_ID, App, DEFAULT_TOKEN_LIFETIME, FEDERATED_AUDIENCE, FederatedCredential,
    ManagedIdentity, Principal, PrincipalKind, User,
};
use state::ShutdownGuard;
pub(crate) use state::{
    AuthCodeRecord, Clock, DeviceCodeRecord, Inner, Options, RefreshRecord, State,
};
pub use util::{form_encode, percent_encode};

use crate::tls::TlsError;

/// The Redis resource: `aud` of tokens for the scope `https://redis.azure.com/.default`.
pub const REDIS_RESOURCE: &str = "https://redis.azure.com";
/// The Redis scope.
pub const REDIS_SCOPE: &str = "https://redis.azure.com/.default";
/// The Azure Cache for Redis application id; the scope `<id>/.default` is equivalent to [`REDIS_SCOPE`].
pub const REDIS_APP_ID: &str = "acca5fbb-b7e4-4009-81f1-37e38fd66d78";

/// Why an emulator operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmulatorError {
    /// Binding a listener or writing a file failed.
    #[error("emulator I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// The test CA or server certificate could not be made.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A tenant id with characters outside `[0-9A-Za-z.-]`, or empty.
    #[error("invalid tenant id {0:?}: use [0-9A-Za-z.-] only")]
    InvalidTenantId(String),
    /// The tenant is not registered.
    #[error("unknown tenant {0:?}")]
    UnknownTenant(String),
    /// An app with this client id already exists in the tenant.
    #[error("an app with client id {0:?} already exists in this tenant")]
    DuplicateClient(String),
    /// A user with this user name already exists in the tenant.
    #[error("a user named {0:?} already exists in this tenant")]
    DuplicateUser(String),
    /// A managed identity with this client id, object id or resource id already exists.
    #[error("a managed identity with id {0:?} already exists")]
    DuplicateIdentity(String),
    /// A certificate credential is not a parseable X.509 certificate.
    #[error("invalid certificate: {0}")]
    InvalidCertificate(String),
    /// No principal has this object id (or no user this name).
    #[error("unknown principal {0:?}")]
    UnknownPrincipal(String),
    /// No pending device code has this user code.
    #[error("unknown or finished device code {0:?}")]
    UnknownDeviceCode(String),
}

/// A running emulator. Cheap to clone; the listeners stop when the last clone is dropped.
#[derive(Clone)]
pub struct Emulator {
    inner: Arc<Inner>,
    _guard: Arc<ShutdownGuard>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("http_url", &self.inner.http_url)
            .field("https_url", &self.inner.https_url)
            .field("tenant_id", &self.inner.default_tenant)
            .finish_non_exhaustive()
    }
}
