//! [`EmulatorBuilder`] and starting an emulator: the listeners, the registry's first state, the shutdown guard.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::directory::check_tenant_id;
use super::{
    AuthorizePolicy, Clock, DeviceCodePolicy, Emulator, EmulatorError, GITHUB_ISSUER, Inner,
    KUBERNETES_ISSUER, Options, PIPELINES_ISSUER, ShutdownGuard, State,
};
use crate::keys::{TestKey, random_uuid};
use crate::tls::TestCa;

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
        let issued = ca.issue_server_cert(&["127.0.0.1", "localhost"])?;
        let https_cert_sha1 = sha1_hex(&issued.chain[0]);
        let tls_config = TestCa::server_config_for(issued)?;
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
            https_cert_sha1,
            ca,
            clock: Clock {
                base_system: SystemTime::now(),
                base_instant: tokio::time::Instant::now(),
            },
            default_tenant: tenant,
            app_service_secret: super::util::random_token(24),
            azure_ml_secret: super::util::random_token(24),
            github_request_token: super::util::random_token(32),
            pipelines_request_token: super::util::random_token(32),
            options: Options {
                reject_jti_replay: options.reject_jti_replay,
                assertion_leeway: i64::try_from(options.assertion_leeway.as_secs())
                    .unwrap_or(i64::MAX),
            },
            state: Mutex::new(state),
        });
        let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
        let tasks = vec![
            tokio::spawn(super::server::accept_loop(
                http,
                None,
                inner.clone(),
                shutdown_rx.clone(),
            )),
            tokio::spawn(super::server::accept_loop(
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
}

/// The SHA-1 thumbprint of a DER certificate, lower-case hex (what Service Fabric's `IDENTITY_SERVER_THUMBPRINT`
/// holds).
fn sha1_hex(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
