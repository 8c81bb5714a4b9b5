//! Counters the user can read: re-authentications sent and failed, reconnects, fan-out latency.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A snapshot of [`EntraIdAuth`](crate::EntraIdAuth)'s counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReauthStats {
    /// New tokens pushed to the attached clients (fan-outs started).
    pub rotations: u64,
    /// Fan-outs finished (every attached client re-authenticated, reconnected or given up on for a newer token).
    pub fanouts_completed: u64,
    /// Successful re-authentications (one per attached client per rotation; a pool counts each of its clients,
    /// a cluster client counts once for all its nodes).
    pub reauths_sent: u64,
    /// Failed re-authentication attempts (each retry counts).
    pub reauths_failed: u64,
    /// Clients reconnected instead of re-authenticated (RESP2 subscribers, and clients whose re-auth kept failing).
    pub reconnects: u64,
    /// Blocking commands interrupted (as a timeout) so an `AUTH` could go through.
    pub unblocks: u64,
    /// Clients reconnected because an `AUTH` still waited behind a blocking command when the token was about to
    /// expire and the access policy refuses `CLIENT UNBLOCK` (also counted in `reconnects`).
    pub blocked_reconnects: u64,
    /// Clients currently attached.
    pub attached: u64,
    /// From a new token to every attached client re-authenticated, for the last completed fan-out.
    pub last_fanout_latency: Option<Duration>,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) rotations: AtomicU64,
    pub(crate) fanouts_completed: AtomicU64,
    pub(crate) reauths_sent: AtomicU64,
    pub(crate) reauths_failed: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) unblocks: AtomicU64,
    pub(crate) blocked_reconnects: AtomicU64,
    pub(crate) last_fanout_latency: Mutex<Option<Duration>>,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, attached: u64) -> ReauthStats {
        ReauthStats {
            rotations: self.rotations.load(Ordering::Relaxed),
            fanouts_completed: self.fanouts_completed.load(Ordering::Relaxed),
            reauths_sent: self.reauths_sent.load(Ordering::Relaxed),
            reauths_failed: self.reauths_failed.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            unblocks: self.unblocks.load(Ordering::Relaxed),
            blocked_reconnects: self.blocked_reconnects.load(Ordering::Relaxed),
            attached,
            last_fanout_latency: *self
                .last_fanout_latency
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        }
    }
}
