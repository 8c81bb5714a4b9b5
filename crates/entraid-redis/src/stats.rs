//! [`CredentialStats`]: what the credential streams and attachments have done, from counters shared by every
//! clone of one [`EntraIdAuth`](crate::EntraIdAuth).

use std::sync::atomic::{AtomicU64, Ordering};

/// The shared counters behind [`CredentialStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) streams_opened: AtomicU64,
    pub(crate) streams_closed: AtomicU64,
    pub(crate) credentials_sent: AtomicU64,
    pub(crate) reauths_confirmed: AtomicU64,
    pub(crate) reauth_tasks_stopped: AtomicU64,
    pub(crate) attached_reauths_ok: AtomicU64,
    pub(crate) attached_reauths_failed: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> CredentialStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let opened = get(&self.streams_opened);
        CredentialStats {
            streams_opened: opened,
            streams_open: opened.saturating_sub(get(&self.streams_closed)),
            credentials_sent: get(&self.credentials_sent),
            reauths_confirmed: get(&self.reauths_confirmed),
            reauth_tasks_stopped: get(&self.reauth_tasks_stopped),
            attached_reauths_ok: get(&self.attached_reauths_ok),
            attached_reauths_failed: get(&self.attached_reauths_failed),
        }
    }
}

/// A snapshot of one [`EntraIdAuth`](crate::EntraIdAuth)'s counters (all its clones share them).
///
/// redis-rs opens two credential streams per connection: one for the credentials of the connection's handshake
/// (dropped after its first item) and one its re-auth task reads for as long as the connection lives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CredentialStats {
    /// Credential streams redis-rs asked for (`subscribe` calls).
    pub streams_opened: u64,
    /// Streams still open: about one per live connection (its re-auth task's).
    pub streams_open: u64,
    /// Credentials handed to redis-rs (the handshake's, and one per new token per live connection).
    pub credentials_sent: u64,
    /// Re-authentications with a new token that redis-rs completed: its re-auth task asked for the next
    /// credentials after it had been given a new token, which it does only once its `AUTH` succeeded.
    pub reauths_confirmed: u64,
    /// Re-auth tasks that stopped while an `AUTH` with a new token was in flight: the `AUTH` failed (refused or
    /// timed out) or the connection died during it. A live connection in this state is not re-authenticated by
    /// redis-rs again (see [`EntraIdAuth::attach`](crate::EntraIdAuth::attach)).
    pub reauth_tasks_stopped: u64,
    /// `AUTH`s the adapter's attachments completed.
    pub attached_reauths_ok: u64,
    /// `AUTH`s the adapter's attachments sent that failed (each is retried while the token is valid).
    pub attached_reauths_failed: u64,
}
