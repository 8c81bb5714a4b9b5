//! The control clients that interrupt blocking commands (`CLIENT UNBLOCK <id> TIMEOUT`) so an `AUTH` can run.
//!
//! One control client per deployment (the servers an attached client connects to), shared by every attached
//! client of that deployment: a thousand attached clients of one Redis need one extra connection, not a thousand.
//! It is created the first time one of them must be interrupted, replaced when it is no longer connected,
//! re-authenticated once per token generation (by whichever worker gets there first), and closed for good once the
//! server refuses `CLIENT UNBLOCK` (`NOPERM`: the identity's access policy, e.g. Azure's Data Contributor).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use fred::clients::Client;
use fred::error::Error as FredError;
use fred::interfaces::{AuthInterface, ClientLike, ClusterInterface};
use fred::types::{Builder, ClientState};

/// The control clients of one [`EntraIdAuth`](crate::EntraIdAuth), one [`ControlSlot`] per deployment.
#[derive(Default)]
pub(crate) struct ControlClients {
    slots: Mutex<HashMap<String, Arc<ControlSlot>>>,
}

impl ControlClients {
    /// The slot shared by every client that connects to the same servers as `client` (as the same user, over TLS
    /// or not: a control client is built from the first such client's configuration).
    pub(crate) fn slot_for<C: ClientLike>(&self, client: &C) -> Arc<ControlSlot> {
        let config = client.client_config();
        let key = format!(
            "{:?}|{:?}|tls={}",
            config.server,
            config.username,
            config.tls.is_some()
        );
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default()
            .clone()
    }
}

/// One deployment's control client.
#[derive(Default)]
pub(crate) struct ControlSlot {
    client: tokio::sync::Mutex<Option<Client>>,
    /// The server refused `CLIENT UNBLOCK`: blocked connections are reconnected before their token expires instead
    /// of interrupted.
    refused: AtomicBool,
    /// The newest token generation the control client was (or is being) re-authenticated with.
    authenticated: AtomicU64,
}

impl Drop for ControlSlot {
    fn drop(&mut self) {
        if let Some(control) = self.client.get_mut().take() {
            close_in_background(control);
        }
    }
}

impl ControlSlot {
    /// Whether the server refused `CLIENT UNBLOCK` to this deployment's identity.
    pub(crate) fn refused(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }

    /// Records the refusal and closes the control client (never needed again). Returns whether this was the first
    /// refusal (so the caller warns once).
    pub(crate) async fn refuse(&self) -> bool {
        if let Some(control) = self.client.lock().await.take() {
            close_in_background(control);
        }
        !self.refused.swap(true, Ordering::Relaxed)
    }

    /// The control client, connected: the existing one, or a new one built from `client`'s configuration (with its
    /// reconnect policy; its connections authenticate through the same credential provider) when there is none or
    /// it is no longer connected.
    pub(crate) async fn get<C: ClientLike>(&self, client: &C) -> Result<Client, FredError> {
        let mut slot = self.client.lock().await;
        if let Some(control) = slot.as_ref().filter(|c| is_live(*c)) {
            return Ok(control.clone());
        }
        if let Some(dead) = slot.take() {
            close_in_background(dead);
        }
        let mut builder = Builder::from_config(client.client_config());
        builder.set_connection_config(client.connection_config().clone());
        builder.set_performance_config(client.perf_config());
        if let Some(policy) = client.client_reconnect_policy() {
            builder.set_policy(policy);
        }
        let control = builder.build()?;
        control.init().await?;
        *slot = Some(control.clone());
        Ok(control)
    }

    /// Re-authenticates the control client with `generation`'s token (`AUTH`, then a fresh cluster backchannel),
    /// once per generation however many attached clients share it. A control client that fails is closed; the
    /// next interruption builds a new one (which authenticates with the current token).
    pub(crate) async fn reauth(&self, generation: u64, username: &str, password: &str) {
        if self.authenticated.fetch_max(generation, Ordering::SeqCst) >= generation {
            return;
        }
        let Some(control) = self.client.lock().await.clone() else {
            return;
        };
        if !is_live(&control) {
            return;
        }
        let result = async {
            control
                .auth(Some(username.to_owned()), password.to_owned())
                .await?;
            if control.is_clustered() {
                control.sync_cluster().await?;
            }
            Ok::<_, FredError>(())
        }
        .await;
        if let Err(e) = result {
            tracing::debug!(error = %e, "re-authenticating the control client failed: closing it");
            let mut slot = self.client.lock().await;
            if slot.as_ref().is_some_and(|c| c.id() == control.id()) {
                slot.take();
            }
            close_in_background(control);
        }
    }
}

/// Closes a client without waiting for it.
fn close_in_background(client: Client) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let _ = client.quit().await;
        });
    }
}

/// Whether fred reports the client connected.
fn is_live<C: ClientLike>(client: &C) -> bool {
    client.state() == ClientState::Connected
}
