//! The emulator's shared state: options, its clock, the registry and the records of issued grants, behind one lock.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::registry::{AppRecord, MiRecord, UserRecord};
use super::{AuthorizePolicy, DeviceCodePolicy, Endpoint, Fault, RequestRecord};
use crate::keys::TestKey;
use crate::tls::TestCa;

pub(crate) struct Options {
    pub(crate) reject_jti_replay: bool,
    pub(crate) assertion_leeway: i64,
}

pub(crate) struct Clock {
    pub(super) base_system: SystemTime,
    pub(super) base_instant: tokio::time::Instant,
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
    /// The HTTPS listener's certificate's SHA-1 thumbprint (lower-case hex).
    pub(crate) https_cert_sha1: String,
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
pub(crate) struct ShutdownGuard {
    pub(super) inner: Arc<Inner>,
    pub(super) shutdown: tokio::sync::watch::Sender<bool>,
    pub(super) tasks: Vec<tokio::task::JoinHandle<()>>,
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
