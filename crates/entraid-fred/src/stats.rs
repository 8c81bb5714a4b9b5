//! Counters the user can read: re-authentications sent and failed, reconnects, fan-out latency; with the `metrics`
//! feature each is also sent through the `metrics` facade as it changes (names in [`crate::telemetry`]).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::telemetry;

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

/// One counter: an atomic the snapshot reads, and, with the `metrics` feature, the metric of the same name.
#[derive(Debug)]
pub(crate) struct Counter {
    value: AtomicU64,
    #[cfg(feature = "metrics")]
    name: &'static str,
}

impl Counter {
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    const fn new(name: &'static str) -> Self {
        Self {
            value: AtomicU64::new(0),
            #[cfg(feature = "metrics")]
            name,
        }
    }

    /// Adds `n` (the `Ordering` is the atomic's, as with `AtomicU64::fetch_add`); returns the previous value.
    pub(crate) fn fetch_add(&self, n: u64, order: Ordering) -> u64 {
        #[cfg(feature = "metrics")]
        if n > 0 {
            metrics::counter!(self.name).increment(n);
        }
        self.value.fetch_add(n, order)
    }

    fn load(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) rotations: Counter,
    pub(crate) fanouts_completed: Counter,
    pub(crate) reauths_sent: Counter,
    pub(crate) reauths_failed: Counter,
    pub(crate) reconnects: Counter,
    pub(crate) unblocks: Counter,
    pub(crate) blocked_reconnects: Counter,
    pub(crate) last_fanout_latency: Mutex<Option<Duration>>,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            rotations: Counter::new(telemetry::ROTATIONS),
            fanouts_completed: Counter::new(telemetry::FANOUTS),
            reauths_sent: Counter::new(telemetry::REAUTHS),
            reauths_failed: Counter::new(telemetry::REAUTH_FAILURES),
            reconnects: Counter::new(telemetry::RECONNECTS),
            unblocks: Counter::new(telemetry::UNBLOCKS),
            blocked_reconnects: Counter::new(telemetry::BLOCKED_RECONNECTS),
            last_fanout_latency: Mutex::new(None),
        }
    }
}

impl Counters {
    pub(crate) fn add(counter: &Counter) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A fan-out finished after `latency`; `latest` says it was for the newest token (not superseded).
    pub(crate) fn fanout_completed(&self, latency: Duration, latest: bool) {
        if latest {
            *self
                .last_fanout_latency
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(latency);
        }
        Self::add(&self.fanouts_completed);
        telemetry::fanout_latency(latency);
    }

    pub(crate) fn snapshot(&self, attached: u64) -> ReauthStats {
        ReauthStats {
            rotations: self.rotations.load(),
            fanouts_completed: self.fanouts_completed.load(),
            reauths_sent: self.reauths_sent.load(),
            reauths_failed: self.reauths_failed.load(),
            reconnects: self.reconnects.load(),
            unblocks: self.unblocks.load(),
            blocked_reconnects: self.blocked_reconnects.load(),
            attached,
            last_fanout_latency: *self
                .last_fanout_latency
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        }
    }
}
