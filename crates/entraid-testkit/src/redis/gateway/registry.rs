//! The gateway's shared state: counters, the registry of live and closed connections (with what each last said
//! about itself), and the ACL users it creates for the principals under an access policy.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tokio::sync::watch;
use tokio::time::Instant;

use super::types::{
    Backend, CloseReason, ClosedConnection, ConnectionInfo, GatewayOptions, GatewayStats,
};
use crate::redis::Error;
use crate::redis::client::RespClient;
use crate::redis::policy::acl_user;

pub(super) struct LiveConnection {
    pub(super) peer: Option<SocketAddr>,
    pub(super) started: Instant,
    pub(super) user: Option<String>,
    pub(super) deadline: Option<Instant>,
    pub(super) expires_at: Option<i64>,
    pub(super) reauths: u64,
    pub(super) protocol: u8,
}

pub(crate) struct Shared {
    pub(super) options: GatewayOptions,
    pub(super) backend: Backend,
    pub(super) next_id: AtomicU64,
    pub(super) accepted: AtomicU64,
    pub(super) auth_ok: AtomicU64,
    pub(super) auth_failed: AtomicU64,
    pub(super) reauths: AtomicU64,
    pub(super) closed_by_expiry: AtomicU64,
    pub(super) live: Mutex<HashMap<u64, LiveConnection>>,
    pub(super) closed: Mutex<Vec<ClosedConnection>>,
    pub(super) changes: watch::Sender<u64>,
    /// Fault injection: refuse every AUTH on an already authenticated connection (new connections still work).
    pub(super) refuse_reauth: std::sync::atomic::AtomicBool,
    /// Fault injection: refuse re-AUTHs only on connections with this client name.
    pub(super) refuse_reauth_named: Mutex<Option<String>>,
    /// The ACL users created on the backend so far (with an access policy).
    pub(super) provisioned: Mutex<HashSet<String>>,
    /// The connection that creates them, as the backend's own user; opened when first needed.
    pub(super) admin: tokio::sync::Mutex<Option<RespClient>>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The data is plain counters and records: a panic elsewhere does not make it inconsistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn new(backend: Backend, options: GatewayOptions) -> Arc<Self> {
        Arc::new(Self {
            options,
            backend,
            next_id: AtomicU64::new(1),
            accepted: AtomicU64::new(0),
            auth_ok: AtomicU64::new(0),
            auth_failed: AtomicU64::new(0),
            reauths: AtomicU64::new(0),
            closed_by_expiry: AtomicU64::new(0),
            live: Mutex::new(HashMap::new()),
            closed: Mutex::new(Vec::new()),
            changes: watch::channel(0).0,
            refuse_reauth: std::sync::atomic::AtomicBool::new(false),
            refuse_reauth_named: Mutex::new(None),
            provisioned: Mutex::new(HashSet::new()),
            admin: tokio::sync::Mutex::new(None),
        })
    }

    /// The backend credentials for a connection that presented a valid token for `oid`: the principal's ACL user
    /// under an access policy, else the backend's own user.
    pub(super) fn principal_credentials(&self, oid: &str) -> [Bytes; 2] {
        let user = match &self.options.access_policy {
            Some(_) => acl_user(oid),
            None => self.backend.username.clone(),
        };
        [
            Bytes::from(user),
            Bytes::copy_from_slice(self.backend.password.expose_secret().as_bytes()),
        ]
    }

    /// Whether the principal `oid` still needs its ACL user created before a request authenticating as it may be
    /// forwarded.
    pub(super) fn needs_provisioning(&self, oid: &str) -> bool {
        self.options.access_policy.is_some() && !lock(&self.provisioned).contains(&acl_user(oid))
    }

    /// Creates the ACL user of principal `oid` with the access policy's rules (once per principal). A failure is
    /// logged; the client then gets the server's own `WRONGPASS` for its AUTH.
    pub(super) async fn provision(&self, oid: &str) {
        let Some(policy) = &self.options.access_policy else {
            return;
        };
        let user = acl_user(oid);
        let mut admin = self.admin.lock().await;
        if lock(&self.provisioned).contains(&user) {
            return;
        }
        let result = async {
            if admin.is_none() {
                let mut client = RespClient::connect(self.backend.addr).await?;
                let reply = client
                    .command(&[
                        "AUTH",
                        self.backend.username.as_str(),
                        self.backend.password.expose_secret(),
                    ])
                    .await?;
                if reply != crate::redis::RespValue::Simple("OK".into()) {
                    return Err(Error::UnexpectedReply {
                        command: "AUTH",
                        reply: format!("{reply:?}"),
                    });
                }
                *admin = Some(client);
            }
            let client = admin.as_mut().ok_or(Error::Closed)?;
            let password = format!(">{}", self.backend.password.expose_secret());
            let mut args: Vec<&str> = vec!["ACL", "SETUSER", &user, "reset", "on", &password];
            let rules = policy.acl_rules();
            args.extend(rules.iter().map(String::as_str));
            match client.command(&args).await? {
                crate::redis::RespValue::Simple(ok) if ok == "OK" => Ok(()),
                other => Err(Error::UnexpectedReply {
                    command: "ACL SETUSER",
                    reply: format!("{other:?}"),
                }),
            }
        }
        .await;
        match result {
            Ok(()) => {
                tracing::debug!(user = %user, policy = %policy, "gateway created the principal's ACL user");
                lock(&self.provisioned).insert(user);
            }
            Err(e) => {
                tracing::warn!(user = %user, error = %e, "gateway could not create the principal's ACL user");
                *admin = None;
            }
        }
    }

    pub(super) fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    pub(crate) fn stats(&self) -> GatewayStats {
        let open_now = lock(&self.live).len() as u64;
        GatewayStats {
            connections_accepted: self.accepted.load(Ordering::SeqCst),
            open_now,
            auth_ok: self.auth_ok.load(Ordering::SeqCst),
            auth_failed: self.auth_failed.load(Ordering::SeqCst),
            reauths: self.reauths.load(Ordering::SeqCst),
            closed_by_expiry: self.closed_by_expiry.load(Ordering::SeqCst),
            closed: lock(&self.closed).clone(),
        }
    }

    pub(super) fn connections(&self) -> Vec<ConnectionInfo> {
        let now = Instant::now();
        let mut list: Vec<ConnectionInfo> = lock(&self.live)
            .iter()
            .map(|(id, c)| ConnectionInfo {
                id: *id,
                peer: c.peer,
                user: c.user.clone(),
                deadline: c.deadline,
                expires_at: c.expires_at,
                reauths: c.reauths,
                protocol: c.protocol,
                age: now.saturating_duration_since(c.started),
            })
            .collect();
        list.sort_by_key(|c| c.id);
        list
    }

    /// Registers a new connection and returns its id.
    pub(crate) fn register(&self, peer: Option<SocketAddr>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        self.accepted.fetch_add(1, Ordering::SeqCst);
        lock(&self.live).insert(
            id,
            LiveConnection {
                peer,
                started: Instant::now(),
                user: None,
                deadline: None,
                expires_at: None,
                reauths: 0,
                protocol: 2,
            },
        );
        self.changed();
        id
    }

    pub(super) fn unregister(&self, id: u64, reason: CloseReason, last: LastSeen) {
        let Some(live) = lock(&self.live).remove(&id) else {
            return;
        };
        let record = ClosedConnection {
            id,
            user: live.user,
            age: Instant::now().saturating_duration_since(live.started),
            reauths: live.reauths,
            reason,
            last_command: last.command,
            client_name: last.client_name,
        };
        if reason == CloseReason::Expired {
            self.closed_by_expiry.fetch_add(1, Ordering::SeqCst);
            tracing::info!(id, user = ?record.user, age = ?record.age, reauths = record.reauths,
                last_command = %record.last_command, "gateway closed a connection: token expired");
        } else {
            tracing::debug!(id, ?reason, "gateway connection closed");
        }
        lock(&self.closed).push(record);
        self.changed();
    }

    pub(super) fn update(&self, id: u64, f: impl FnOnce(&mut LiveConnection)) {
        if let Some(live) = lock(&self.live).get_mut(&id) {
            f(live);
        }
        self.changed();
    }
}

/// Marks a connection closed when dropped (also when its task is aborted).
pub(super) struct Registration {
    pub(super) shared: Arc<Shared>,
    pub(super) id: u64,
    pub(super) reason: CloseReason,
    pub(super) last: LastSeen,
}

/// What a connection last said about itself, for [`ClosedConnection`].
#[derive(Debug, Default)]
pub(super) struct LastSeen {
    pub(super) command: String,
    pub(super) client_name: Option<String>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared
            .unregister(self.id, self.reason, std::mem::take(&mut self.last));
    }
}
