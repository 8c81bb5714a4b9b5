//! An Entra ID emulator: every token endpoint and managed-identity host, real RS256 JWTs, scriptable faults.
//!
//! [`Emulator::start`] listens on `127.0.0.1`, port 0, over HTTP and HTTPS (a fresh [`TestCa`] signs its
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

mod client;
mod client_auth;
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
mod registry;
mod server;
mod token_endpoint;
mod user_endpoints;
mod util;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

pub use client::{ClientError, HttpClient, HttpResponse};
pub use faults::{Endpoint, Fault};
pub use log::{REDACTED, RequestRecord};
pub use oidc::{GITHUB_ISSUER, KUBERNETES_ISSUER, PIPELINES_ISSUER, PIPELINES_ORG};
pub use registry::{
    AZURE_CLI_CLIENT_ID, App, DEFAULT_TOKEN_LIFETIME, FEDERATED_AUDIENCE, FederatedCredential,
    ManagedIdentity, Principal, PrincipalKind, User,
};
pub use util::{form_encode, percent_encode};

use crate::keys::{JwtVerifier, TestKey, random_uuid};
use crate::tls::{TestCa, TlsError};
use registry::{AppRecord, CertificateInput, MiRecord, RegisteredCert, TokenPolicy, UserRecord};

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

/// What the device-code flow answers to polling.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceCodeOutcome {
    /// `authorization_pending` until the test calls [`Emulator::approve_device_code`] or
    /// [`Emulator::decline_device_code`] (or the code expires).
    Manual,
    /// `authorization_pending` for the first `polls - 1` polls (after any `slow_down` ones), then tokens for this
    /// user (by user name).
    ApproveAfterPolls {
        /// The poll that gets the tokens (1 = the first).
        polls: u32,
        /// The user name of the user who signs in.
        username: String,
    },
    /// `authorization_pending`, then `authorization_declined` at this poll.
    DeclineAfterPolls {
        /// The poll that gets `authorization_declined`.
        polls: u32,
    },
}

/// How device codes behave. Defaults: `expires_in` 900 s, `interval` 5 s, no `slow_down`,
/// [`DeviceCodeOutcome::Manual`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCodePolicy {
    /// Lifetime of a device code; polling after it answers `expired_token` (AADSTS70019).
    pub expires_in: Duration,
    /// The `interval` the devicecode response advertises.
    pub interval: Duration,
    /// How many first polls answer `slow_down`.
    pub slow_down_polls: u32,
    /// What the polls lead to.
    pub outcome: DeviceCodeOutcome,
}

impl Default for DeviceCodePolicy {
    fn default() -> Self {
        Self {
            expires_in: Duration::from_secs(900),
            interval: Duration::from_secs(5),
            slow_down_polls: 0,
            outcome: DeviceCodeOutcome::Manual,
        }
    }
}

impl DeviceCodePolicy {
    /// Approves as `username` at poll number `polls`.
    pub fn approve_after(polls: u32, username: impl Into<String>) -> Self {
        Self {
            outcome: DeviceCodeOutcome::ApproveAfterPolls {
                polls,
                username: username.into(),
            },
            ..Self::default()
        }
    }
}

/// How `/authorize` behaves. Default: approves at once as the user named by `login_hint`, else the first user
/// registered in the tenant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthorizePolicy {
    /// Sign in as this user (by user name) whatever `login_hint` says.
    pub username: Option<String>,
    /// Wait this long (tokio clock) before redirecting.
    pub delay: Duration,
    /// Refuse: redirect with `error` and `error_description` instead of a code.
    pub refuse: Option<(String, String)>,
}

impl AuthorizePolicy {
    /// Approves at once as the user named by `login_hint`, else the first registered user.
    pub fn approve() -> Self {
        Self::default()
    }

    /// Approves as this user.
    pub fn approve_as(username: impl Into<String>) -> Self {
        Self {
            username: Some(username.into()),
            ..Self::default()
        }
    }

    /// Refuses with `access_denied` (AADSTS65004, the user declined consent).
    pub fn refuse() -> Self {
        Self {
            refuse: Some((
                "access_denied".into(),
                "AADSTS65004: User declined to consent to access the app.".into(),
            )),
            ..Self::default()
        }
    }

    /// Waits `delay` before answering.
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// Options for [`Emulator::builder`]. Defaults: a random default tenant id, no Arc key folder, replayed `jti`s
/// refused, 300 s leeway on assertion `exp`/`nbf`, no clock skew.
#[derive(Debug, Clone)]
pub struct EmulatorBuilder {
    tenant_id: Option<String>,
    arc_key_dir: Option<PathBuf>,
    reject_jti_replay: bool,
    assertion_leeway: Duration,
    clock_skew_secs: i64,
}

impl Default for EmulatorBuilder {
    fn default() -> Self {
        Self {
            tenant_id: None,
            arc_key_dir: None,
            reject_jti_replay: true,
            assertion_leeway: Duration::from_secs(300),
            clock_skew_secs: 0,
        }
    }
}

impl EmulatorBuilder {
    /// The default tenant's id (default: a random UUID).
    #[must_use]
    pub fn tenant_id(mut self, tenant_id: impl Into<String>) -> Self {
        self.tenant_id = Some(tenant_id.into());
        self
    }

    /// The folder where the Azure Arc endpoint writes its challenge `.key` files.
    #[must_use]
    pub fn arc_key_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.arc_key_dir = Some(dir.into());
        self
    }

    /// Whether a certificate assertion whose `jti` was already used is refused (AADSTS50013). Default `true`.
    #[must_use]
    pub fn reject_jti_replay(mut self, reject: bool) -> Self {
        self.reject_jti_replay = reject;
        self
    }

    /// Clock-skew tolerance on client assertions' `exp` and `nbf`. Default 300 s.
    #[must_use]
    pub fn assertion_leeway(mut self, leeway: Duration) -> Self {
        self.assertion_leeway = leeway;
        self
    }

    /// Initial clock skew in seconds (positive: the emulator is ahead).
    #[must_use]
    pub fn clock_skew_secs(mut self, secs: i64) -> Self {
        self.clock_skew_secs = secs;
        self
    }

    /// Starts the emulator.
    pub async fn start(self) -> Result<Emulator, EmulatorError> {
        Emulator::start_with(self).await
    }
}

pub(crate) struct Options {
    pub(crate) reject_jti_replay: bool,
    pub(crate) assertion_leeway: i64,
}

pub(crate) struct Clock {
    base_system: SystemTime,
    base_instant: tokio::time::Instant,
}

pub(crate) struct DeviceCodeRecord {
    pub(crate) tenant: String,
    pub(crate) client_id: String,
    pub(crate) user_code: String,
    pub(crate) scope: String,
    pub(crate) expires_at: i64,
    pub(crate) polls: u32,
    pub(crate) policy: DeviceCodePolicy,
    pub(crate) approved_by: Option<String>,
    pub(crate) declined: bool,
    pub(crate) redeemed: bool,
}

pub(crate) struct AuthCodeRecord {
    pub(crate) tenant: String,
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) code_challenge: Option<String>,
    pub(crate) user_key: (String, String),
    pub(crate) scope: String,
    pub(crate) expires_at: i64,
    pub(crate) redeemed: bool,
}

pub(crate) struct RefreshRecord {
    pub(crate) tenant: String,
    pub(crate) client_id: String,
    pub(crate) user_key: (String, String),
    pub(crate) scope: String,
    pub(crate) revoked: bool,
}

pub(crate) struct State {
    pub(crate) tenants: BTreeSet<String>,
    pub(crate) apps: HashMap<(String, String), AppRecord>,
    pub(crate) users: HashMap<(String, String), UserRecord>,
    pub(crate) user_order: Vec<(String, String)>,
    pub(crate) mis: Vec<MiRecord>,
    pub(crate) issuers: HashMap<String, Vec<TestKey>>,
    pub(crate) used_jti: HashMap<String, i64>,
    pub(crate) device_codes: HashMap<String, DeviceCodeRecord>,
    pub(crate) auth_codes: HashMap<String, AuthCodeRecord>,
    pub(crate) refresh_tokens: HashMap<String, RefreshRecord>,
    pub(crate) tokens_issued: HashMap<String, u64>,
    pub(crate) faults: HashMap<Endpoint, VecDeque<Fault>>,
    pub(crate) log: Vec<RequestRecord>,
    pub(crate) device_policy: DeviceCodePolicy,
    pub(crate) authorize_policy: AuthorizePolicy,
    pub(crate) arc_key_dir: Option<PathBuf>,
    pub(crate) arc_keys: Vec<(PathBuf, String)>,
    pub(crate) arc_honours_selectors: bool,
    pub(crate) skew_secs: i64,
    pub(crate) github_subject: String,
}

pub(crate) struct Inner {
    pub(crate) http_url: String,
    pub(crate) https_url: String,
    pub(crate) ca: TestCa,
    pub(crate) clock: Clock,
    pub(crate) default_tenant: String,
    pub(crate) app_service_secret: String,
    pub(crate) azure_ml_secret: String,
    pub(crate) github_request_token: String,
    pub(crate) pipelines_request_token: String,
    pub(crate) options: Options,
    pub(crate) state: Mutex<State>,
}

impl Inner {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (every update is a single insert or push).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The emulator's clock in unix seconds, given the current skew.
    pub(crate) fn now_with(&self, skew: i64) -> i64 {
        let now = self.clock.base_system + self.clock.base_instant.elapsed();
        let unix = now
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        unix + skew
    }

    pub(crate) fn issuer(&self, tenant: &str) -> String {
        format!("{}/{tenant}/v2.0", self.https_url)
    }

    /// Mints an access token and counts it for `oid`.
    pub(crate) fn sign_access_token(&self, st: &mut State, oid: &str, claims: &Value) -> String {
        *st.tokens_issued.entry(oid.to_owned()).or_default() += 1;
        TestKey::entra().sign_jwt(claims)
    }
}

/// Stops the listeners and removes the Arc key files when the last [`Emulator`] clone is dropped.
struct ShutdownGuard {
    inner: Arc<Inner>,
    shutdown: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for ShutdownGuard {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for task in &self.tasks {
            task.abort();
        }
        let st = self.inner.lock();
        for (path, _) in &st.arc_keys {
            let _ = std::fs::remove_file(path);
        }
    }
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

fn check_tenant_id(id: &str) -> Result<(), EmulatorError> {
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    {
        return Err(EmulatorError::InvalidTenantId(id.to_owned()));
    }
    Ok(())
}

impl Emulator {
    /// Starts an emulator with default options (see [`EmulatorBuilder`]).
    pub async fn start() -> Result<Self, EmulatorError> {
        Self::start_with(EmulatorBuilder::default()).await
    }

    /// Options for a new emulator.
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder::default()
    }

    async fn start_with(options: EmulatorBuilder) -> Result<Self, EmulatorError> {
        let tenant = options.tenant_id.unwrap_or_else(random_uuid);
        check_tenant_id(&tenant)?;
        let ca = TestCa::new()?;
        let tls_config = ca.rustls_server_config(&["127.0.0.1", "localhost"])?;
        let http = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let https = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let http_url = format!("http://127.0.0.1:{}", http.local_addr()?.port());
        let https_url = format!("https://127.0.0.1:{}", https.local_addr()?.port());
        let mut issuers = HashMap::new();
        issuers.insert(GITHUB_ISSUER.to_owned(), vec![TestKey::github().clone()]);
        issuers.insert(
            PIPELINES_ISSUER.to_owned(),
            vec![TestKey::pipelines().clone()],
        );
        issuers.insert(
            KUBERNETES_ISSUER.to_owned(),
            vec![TestKey::kubernetes().clone()],
        );
        let state = State {
            tenants: BTreeSet::from([tenant.clone()]),
            apps: HashMap::new(),
            users: HashMap::new(),
            user_order: Vec::new(),
            mis: Vec::new(),
            issuers,
            used_jti: HashMap::new(),
            device_codes: HashMap::new(),
            auth_codes: HashMap::new(),
            refresh_tokens: HashMap::new(),
            tokens_issued: HashMap::new(),
            faults: HashMap::new(),
            log: Vec::new(),
            device_policy: DeviceCodePolicy::default(),
            authorize_policy: AuthorizePolicy::default(),
            arc_key_dir: options.arc_key_dir,
            arc_keys: Vec::new(),
            arc_honours_selectors: false,
            skew_secs: options.clock_skew_secs,
            github_subject: "repo:octo-org/octo-repo:ref:refs/heads/main".to_owned(),
        };
        let inner = Arc::new(Inner {
            http_url,
            https_url,
            ca,
            clock: Clock {
                base_system: SystemTime::now(),
                base_instant: tokio::time::Instant::now(),
            },
            default_tenant: tenant,
            app_service_secret: util::random_token(24),
            azure_ml_secret: util::random_token(24),
            github_request_token: util::random_token(32),
            pipelines_request_token: util::random_token(32),
            options: Options {
                reject_jti_replay: options.reject_jti_replay,
                assertion_leeway: i64::try_from(options.assertion_leeway.as_secs())
                    .unwrap_or(i64::MAX),
            },
            state: Mutex::new(state),
        });
        let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
        let tasks = vec![
            tokio::spawn(server::accept_loop(
                http,
                None,
                inner.clone(),
                shutdown_rx.clone(),
            )),
            tokio::spawn(server::accept_loop(
                https,
                Some(tokio_rustls::TlsAcceptor::from(tls_config)),
                inner.clone(),
                shutdown_rx,
            )),
        ];
        Ok(Self {
            _guard: Arc::new(ShutdownGuard {
                inner: inner.clone(),
                shutdown,
                tasks,
            }),
            inner,
        })
    }

    // ----- URLs and trust -----

    /// `http://127.0.0.1:<port>`.
    pub fn http_url(&self) -> &str {
        &self.inner.http_url
    }

    /// `https://127.0.0.1:<port>` (trust [`Emulator::ca_cert_pem`]).
    pub fn https_url(&self) -> &str {
        &self.inner.https_url
    }

    /// The test CA that signed the HTTPS certificate.
    pub fn ca(&self) -> &TestCa {
        &self.inner.ca
    }

    /// The test CA certificate, PEM.
    pub fn ca_cert_pem(&self) -> &str {
        self.inner.ca.ca_cert_pem()
    }

    /// A small HTTP client trusting the emulator's CA.
    pub fn client(&self) -> HttpClient {
        HttpClient::new(self.inner.ca.rustls_client_config())
    }

    /// The default tenant's id.
    pub fn tenant_id(&self) -> &str {
        &self.inner.default_tenant
    }

    /// The authority for a tenant: `https://127.0.0.1:<port>/{tenant}` (what a client calls its authority; the
    /// authority host is [`Emulator::https_url`]).
    pub fn authority(&self, tenant: &str) -> String {
        format!("{}/{tenant}", self.inner.https_url)
    }

    /// The HTTPS token endpoint of a tenant (the `aud` certificate assertions must carry; the HTTP form is
    /// accepted too).
    pub fn token_url(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.inner.https_url)
    }

    /// The issuer (`iss`) of a tenant's tokens: `https://127.0.0.1:<port>/{tenant}/v2.0`, whichever listener
    /// minted them.
    pub fn issuer(&self, tenant: &str) -> String {
        self.inner.issuer(tenant)
    }

    /// The JWKS the emulator serves (`{"keys":[<entra key JWK>]}`).
    pub fn jwks(&self) -> Value {
        json!({"keys": [TestKey::entra().jwk()]})
    }

    /// A verifier trusting the emulator's signing key (what the Redis gateway uses).
    pub fn verifier(&self) -> JwtVerifier {
        JwtVerifier::new([TestKey::entra()])
    }

    /// The IMDS token endpoint: `http://127.0.0.1:<port>/metadata/identity/oauth2/token`.
    pub fn imds_endpoint(&self) -> String {
        format!("{}/metadata/identity/oauth2/token", self.inner.http_url)
    }

    /// The App Service endpoint (`IDENTITY_ENDPOINT`): `http://127.0.0.1:<port>/msi/token`.
    pub fn app_service_endpoint(&self) -> String {
        format!("{}/msi/token", self.inner.http_url)
    }

    /// The secret `X-IDENTITY-HEADER` must carry (`IDENTITY_HEADER`).
    pub fn app_service_secret(&self) -> &str {
        &self.inner.app_service_secret
    }

    /// The Azure Arc endpoint (`IDENTITY_ENDPOINT`): `http://127.0.0.1:<port>/arc/metadata/identity/oauth2/token`.
    pub fn arc_endpoint(&self) -> String {
        format!("{}/arc/metadata/identity/oauth2/token", self.inner.http_url)
    }

    /// The Cloud Shell endpoint (`MSI_ENDPOINT`): `http://127.0.0.1:<port>/cloudshell/oauth2/token`.
    pub fn cloud_shell_endpoint(&self) -> String {
        format!("{}/cloudshell/oauth2/token", self.inner.http_url)
    }

    /// The Azure ML endpoint (`MSI_ENDPOINT`): `http://127.0.0.1:<port>/azureml/msi/token`.
    pub fn azure_ml_endpoint(&self) -> String {
        format!("{}/azureml/msi/token", self.inner.http_url)
    }

    /// The secret the Azure ML `secret` header must carry (`MSI_SECRET`).
    pub fn azure_ml_secret(&self) -> &str {
        &self.inner.azure_ml_secret
    }

    /// `ACTIONS_ID_TOKEN_REQUEST_URL`: `http://127.0.0.1:<port>/github/idtoken?api-version=2.0`.
    pub fn github_oidc_url(&self) -> String {
        format!("{}/github/idtoken?api-version=2.0", self.inner.http_url)
    }

    /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`: the bearer token the GitHub OIDC endpoint requires.
    pub fn github_request_token(&self) -> &str {
        &self.inner.github_request_token
    }

    /// The subject (`sub`) of GitHub OIDC tokens. Default `repo:octo-org/octo-repo:ref:refs/heads/main`.
    pub fn github_subject(&self) -> String {
        self.inner.lock().github_subject.clone()
    }

    /// Changes the subject of GitHub OIDC tokens.
    pub fn set_github_subject(&self, subject: impl Into<String>) {
        self.inner.lock().github_subject = subject.into();
    }

    /// `SYSTEM_OIDCREQUESTURI`: `http://127.0.0.1:<port>/pipelines/oidctoken`.
    pub fn pipelines_oidc_url(&self) -> String {
        format!("{}/pipelines/oidctoken", self.inner.http_url)
    }

    /// `SYSTEM_ACCESSTOKEN`: the bearer token the Pipelines OIDC endpoint requires.
    pub fn pipelines_request_token(&self) -> &str {
        &self.inner.pipelines_request_token
    }

    /// The subject of Pipelines OIDC tokens for a service connection: `sc://entraid-org/entraid-project/<id>`.
    pub fn pipelines_subject(service_connection_id: &str) -> String {
        oidc::pipelines_subject(service_connection_id)
    }

    /// A Kubernetes service-account token (the workload identity file's content), signed by
    /// [`TestKey::kubernetes`]: `iss` [`KUBERNETES_ISSUER`], `sub` `system:serviceaccount:<ns>:<sa>`, `aud`
    /// `["api://AzureADTokenExchange"]`, valid for `lifetime` from the emulator's now.
    pub fn kubernetes_token(
        &self,
        namespace: &str,
        service_account: &str,
        lifetime: Duration,
    ) -> String {
        let now = self.now_unix();
        oidc::kubernetes_token(namespace, service_account, now, lifetime)
    }

    /// Trusts another federated issuer: assertions with this `iss` are verified with `key` (by `kid`).
    pub fn trust_issuer(&self, issuer: impl Into<String>, key: &TestKey) {
        self.inner
            .lock()
            .issuers
            .entry(issuer.into())
            .or_default()
            .push(key.clone());
    }

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
                x5t_s256: client_auth::thumbprint(&ring::digest::SHA256, &der),
                x5t: client_auth::thumbprint(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &der),
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
    /// [`Emulator::tokens_issued`]. `audience` is the `aud` claim, e.g. [`REDIS_RESOURCE`].
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
        let subject = mint::Subject::find(&st, oid)
            .ok_or_else(|| EmulatorError::UnknownPrincipal(oid.to_owned()))?;
        let subject = match lifetime {
            Some(lifetime) => mint::Subject {
                policy: TokenPolicy {
                    lifetime,
                    ..subject.policy
                },
                ..subject
            },
            None => subject,
        };
        let now = self.inner.now_with(st.skew_secs);
        let (jwt, _) = mint::mint(&self.inner, &mut st, &subject, audience, now);
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

    // ----- clock -----

    /// The emulator's clock, unix seconds (wall clock at start + tokio time elapsed + skew).
    pub fn now_unix(&self) -> i64 {
        let skew = self.inner.lock().skew_secs;
        self.inner.now_with(skew)
    }

    /// Skews the emulator's clock by `secs` (positive: ahead of the client). Affects `iat`/`nbf`/`exp` of
    /// minted tokens, `expires_on` of managed-identity answers and the checks of assertions.
    pub fn set_clock_skew(&self, secs: i64) {
        self.inner.lock().skew_secs = secs;
    }

    // ----- user flows -----

    /// Sets how device codes created from now on behave.
    pub fn set_device_code_policy(&self, policy: DeviceCodePolicy) {
        self.inner.lock().device_policy = policy;
    }

    /// The user codes of device codes not yet approved, declined or redeemed.
    pub fn pending_device_codes(&self) -> Vec<String> {
        let st = self.inner.lock();
        st.device_codes
            .values()
            .filter(|d| d.approved_by.is_none() && !d.declined && !d.redeemed)
            .map(|d| d.user_code.clone())
            .collect()
    }

    /// Approves a device code (by its user code) as the user with this user name: the next poll gets tokens.
    pub fn approve_device_code(
        &self,
        user_code: &str,
        username: &str,
    ) -> Result<(), EmulatorError> {
        let mut st = self.inner.lock();
        let st = &mut *st;
        let record = st
            .device_codes
            .values_mut()
            .find(|d| d.user_code == user_code && !d.redeemed)
            .ok_or_else(|| EmulatorError::UnknownDeviceCode(user_code.to_owned()))?;
        if !st
            .users
            .contains_key(&(record.tenant.clone(), username.to_lowercase()))
        {
            return Err(EmulatorError::UnknownPrincipal(username.to_owned()));
        }
        record.approved_by = Some(username.to_lowercase());
        Ok(())
    }

    /// Declines a device code: the next poll gets `authorization_declined`.
    pub fn decline_device_code(&self, user_code: &str) -> Result<(), EmulatorError> {
        let mut st = self.inner.lock();
        let record = st
            .device_codes
            .values_mut()
            .find(|d| d.user_code == user_code && !d.redeemed)
            .ok_or_else(|| EmulatorError::UnknownDeviceCode(user_code.to_owned()))?;
        record.declined = true;
        Ok(())
    }

    /// Sets how `/authorize` behaves.
    pub fn set_authorize_policy(&self, policy: AuthorizePolicy) {
        self.inner.lock().authorize_policy = policy;
    }

    /// Revokes every refresh token of the user with this `oid` (the refresh grant then answers AADSTS50173).
    pub fn revoke_refresh_tokens(&self, oid: &str) {
        let mut st = self.inner.lock();
        let st = &mut *st;
        for rt in st.refresh_tokens.values_mut() {
            if st
                .users
                .get(&rt.user_key)
                .is_some_and(|u| u.principal.oid == oid)
            {
                rt.revoked = true;
            }
        }
    }

    // ----- managed identity hosts -----

    /// Sets the folder where the Arc endpoint writes its challenge `.key` files.
    pub fn set_arc_key_dir(&self, dir: impl Into<PathBuf>) {
        self.inner.lock().arc_key_dir = Some(dir.into());
    }

    /// Whether the Arc endpoint honours user-assigned selectors. Default `false`, as real Arc: it answers for the
    /// system-assigned identity whatever the request asks (clients must check the echoed `client_id`).
    pub fn set_arc_honours_selectors(&self, honour: bool) {
        self.inner.lock().arc_honours_selectors = honour;
    }

    // ----- faults, log, counters -----

    /// The fault script of an endpoint: push faults; each request to the endpoint consumes one, then the endpoint
    /// behaves normally.
    ///
    /// ```
    /// # use entraid_testkit::emulator::{Emulator, Endpoint, Fault};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let emu = Emulator::start().await.unwrap();
    /// emu.faults(Endpoint::Imds)
    ///     .push(Fault::Status(410))
    ///     .push(Fault::Status(429).retry_after(2));
    /// assert_eq!(emu.faults(Endpoint::Imds).remaining(), 2);
    /// # }
    /// ```
    pub fn faults(&self, endpoint: Endpoint) -> FaultScript<'_> {
        FaultScript {
            inner: &self.inner,
            endpoint,
        }
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.inner.lock().log.clone()
    }

    /// The requests that reached one endpoint, oldest first.
    pub fn requests_to(&self, endpoint: Endpoint) -> Vec<RequestRecord> {
        self.inner
            .lock()
            .log
            .iter()
            .filter(|r| r.endpoint == Some(endpoint))
            .cloned()
            .collect()
    }

    /// Empties the request log.
    pub fn clear_requests(&self) {
        self.inner.lock().log.clear();
    }

    /// How many access tokens were minted for the principal with this `oid`.
    pub fn tokens_issued(&self, oid: &str) -> u64 {
        self.inner
            .lock()
            .tokens_issued
            .get(oid)
            .copied()
            .unwrap_or(0)
    }

    /// How many access tokens were minted in all.
    pub fn total_tokens_issued(&self) -> u64 {
        self.inner.lock().tokens_issued.values().sum()
    }
}

/// A handle on one endpoint's fault script; see [`Emulator::faults`].
#[derive(Clone, Copy)]
pub struct FaultScript<'a> {
    inner: &'a Inner,
    endpoint: Endpoint,
}

impl std::fmt::Debug for FaultScript<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultScript")
            .field("endpoint", &self.endpoint)
            .field("remaining", &self.remaining())
            .finish()
    }
}

impl FaultScript<'_> {
    /// Appends a fault.
    pub fn push(&self, fault: Fault) -> &Self {
        self.inner
            .lock()
            .faults
            .entry(self.endpoint)
            .or_default()
            .push_back(fault);
        self
    }

    /// Appends a fault `times` times.
    pub fn push_n(&self, fault: Fault, times: usize) -> &Self {
        for _ in 0..times {
            self.push(fault.clone());
        }
        self
    }

    /// Removes the faults not yet consumed.
    pub fn clear(&self) -> &Self {
        self.inner.lock().faults.remove(&self.endpoint);
        self
    }

    /// How many faults are left.
    pub fn remaining(&self) -> usize {
        self.inner
            .lock()
            .faults
            .get(&self.endpoint)
            .map_or(0, VecDeque::len)
    }
}
