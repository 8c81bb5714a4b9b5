//! Reply tracking: what the server will send for each forwarded request ([`Expect`]), and the [`Tracker`] that counts
//! the replies (framed by [`ReplyScanner`](crate::redis::scan)) and applies each credential change when the reply
//! to its command arrives. See the module docs of [`gateway`](super) for the rules.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::watch;
use tokio::time::Instant;

use super::registry::Shared;
use super::verify::{ValidToken, deadline_for};
use crate::redis::resp::is;
use crate::redis::scan::{Frame, ReplyScanner};

/// A change to a connection's credentials state, made when the server has executed the command that asks for it.
#[derive(Default)]
pub(super) struct Effect {
    /// `RESET`: not authenticated any more, RESP2, no subscriptions.
    pub(super) reset: bool,
    /// An accepted `AUTH` / `HELLO ... AUTH`: the token's user and expiry.
    pub(super) auth: Option<ValidToken>,
    /// `HELLO 2|3`: the new protocol.
    pub(super) protocol: Option<u8>,
}

/// The type of a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SubType {
    Channel,
    Pattern,
    Shard,
}

/// A subscription command, or the confirmation the server sends for each of its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SubKind {
    pub(super) ty: SubType,
    pub(super) subscribe: bool,
}

impl SubKind {
    pub(super) const ALL: [(&'static str, SubType, bool); 6] = [
        ("subscribe", SubType::Channel, true),
        ("unsubscribe", SubType::Channel, false),
        ("psubscribe", SubType::Pattern, true),
        ("punsubscribe", SubType::Pattern, false),
        ("ssubscribe", SubType::Shard, true),
        ("sunsubscribe", SubType::Shard, false),
    ];

    /// The command `name` (any case), if it is a (P|S)(UN)SUBSCRIBE.
    pub(super) fn of_command(name: &[u8]) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(n, ..)| is(name, n))
            .map(|&(_, ty, subscribe)| Self { ty, subscribe })
    }

    /// The confirmation whose first element is `first` (lower case, as the server writes it).
    pub(super) fn of_confirmation(first: &[u8]) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(n, ..)| n.as_bytes() == first)
            .map(|&(_, ty, subscribe)| Self { ty, subscribe })
    }
}

/// Whether a RESP2 pub/sub array with this first element is a published message (not a reply, not a confirmation).
pub(super) fn is_message(first: &[u8]) -> bool {
    matches!(first, b"message" | b"pmessage" | b"smessage")
}

/// What the gateway expects the server to send for the requests it forwarded, in request order.
pub(super) enum Expect {
    /// This many ordinary replies.
    Replies(u64),
    /// One reply; then apply `effect` if the reply is not an error (or whatever it is, when `always`).
    Effect { effect: Effect, always: bool },
    /// `EXEC`: one reply; then apply the effects queued in the transaction if it is an array (not an `EXECABORT`
    /// error, not the null of a transaction a `WATCH` aborted).
    Exec(Vec<Effect>),
    /// A (P|S)(UN)SUBSCRIBE outside `MULTI`: confirmations of this kind (pushes in RESP3, arrays in RESP2), one
    /// per argument (`Some(n)`), or, for an unsubscribe from everything (`None`), until none of that type is left;
    /// or instead one error reply (wrong arity, `CROSSSLOT`, `MOVED`, ...).
    Subscription { kind: SubKind, left: Option<u64> },
    /// A command whose reply the server suppresses (`CLIENT REPLY OFF|SKIP`): apply `effect` when a later reply
    /// arrives, which shows the server has executed it.
    Silent(Effect),
    /// The replies cannot be followed from here on (`MONITOR`, `SYNC`, a request the gateway could not frame, ...):
    /// stop counting; no later credential change takes effect.
    Stop,
}

/// The reply side of a connection: counts the server's replies and applies each credential change when the
/// reply to its command arrives. Shared (behind a mutex) with the request side, which queues what it expects.
pub(super) struct Tracker {
    pub(super) shared: Arc<Shared>,
    pub(super) id: u64,
    pub(super) deadline: watch::Sender<Option<Instant>>,
    pub(super) queue: VecDeque<Expect>,
    pub(super) scanner: ReplyScanner,
    pub(super) stopped: bool,
    /// As the server sees it: changed by the replies, not the requests.
    pub(super) authenticated: bool,
    pub(super) protocol: u8,
    /// Subscriptions of each type, from the counts in the server's confirmations.
    pub(super) channels: u64,
    pub(super) patterns: u64,
    pub(super) shard_channels: u64,
}

impl Tracker {
    pub(super) fn new(
        shared: Arc<Shared>,
        id: u64,
        deadline: watch::Sender<Option<Instant>>,
    ) -> Self {
        Self {
            shared,
            id,
            deadline,
            queue: VecDeque::new(),
            scanner: ReplyScanner::default(),
            stopped: false,
            authenticated: false,
            protocol: 2,
            channels: 0,
            patterns: 0,
            shard_channels: 0,
        }
    }

    /// Queues what the server will send for the next request.
    pub(super) fn expect(&mut self, expect: Expect) {
        if self.stopped {
            return;
        }
        if let Expect::Replies(n) = expect
            && let Some(Expect::Replies(m)) = self.queue.back_mut()
        {
            *m += n;
            return;
        }
        self.queue.push_back(expect);
        self.settle();
    }

    pub(super) fn stop(&mut self, why: &'static str) {
        if !self.stopped {
            tracing::debug!(
                id = self.id,
                why,
                "gateway stopped following replies: credential changes no longer take effect on this connection"
            );
        }
        self.stopped = true;
        self.queue.clear();
    }

    /// Counts the replies in bytes the server sent (before they are relayed to the client).
    pub(super) fn on_bytes(&mut self, data: &[u8]) {
        if self.stopped {
            return;
        }
        let mut scanner = std::mem::take(&mut self.scanner);
        let scanned = scanner.feed(data, &mut |frame| self.on_frame(frame));
        self.scanner = scanner;
        if scanned.is_err() {
            self.stop("a reply could not be framed");
        }
    }

    pub(super) fn subscribed(&self) -> bool {
        self.channels + self.patterns + self.shard_channels > 0
    }

    /// Whether the next reply-producing entry is a subscription.
    pub(super) fn awaiting_subscription(&self) -> bool {
        self.queue
            .iter()
            .find(|e| !matches!(e, Expect::Silent(_)))
            .is_some_and(|e| matches!(e, Expect::Subscription { .. }))
    }

    pub(super) fn on_frame(&mut self, frame: &Frame) {
        if self.stopped {
            return;
        }
        if frame.is_push() {
            // RESP3: messages, invalidations and subscription confirmations are pushes, never replies.
            if let Some(kind) = frame.first().and_then(SubKind::of_confirmation) {
                self.on_confirmation(kind, frame.third);
            }
            return;
        }
        if self.protocol == 2
            && frame.is_array()
            && (self.subscribed() || self.awaiting_subscription())
            && let Some(first) = frame.first()
        {
            // RESP2 pub/sub: messages and confirmations are arrays. In this state the only other replies are
            // errors, `+OK` (QUIT), `+RESET` and PING's `["pong", ...]`, so they cannot be mistaken.
            if is_message(first) {
                return;
            }
            if let Some(kind) = SubKind::of_confirmation(first) {
                self.on_confirmation(kind, frame.third);
                return;
            }
        }
        self.on_reply(frame);
    }

    pub(super) fn on_confirmation(&mut self, kind: SubKind, count: Option<i64>) {
        let count = count.and_then(|c| u64::try_from(c).ok()).unwrap_or(0);
        // The count is the client's total of channels plus patterns (shard channels apart).
        let left = match kind.ty {
            SubType::Channel => {
                self.channels = count.saturating_sub(self.patterns);
                self.channels
            }
            SubType::Pattern => {
                self.patterns = count.saturating_sub(self.channels);
                self.patterns
            }
            SubType::Shard => {
                self.shard_channels = count;
                self.shard_channels
            }
        };
        self.apply_silent();
        if let Some(Expect::Subscription {
            kind: expected,
            left: remaining,
        }) = self.queue.front_mut()
            && *expected == kind
        {
            let done = match remaining {
                Some(n) => {
                    *n = n.saturating_sub(1);
                    *n == 0
                }
                None => left == 0,
            };
            if done {
                self.queue.pop_front();
                self.settle();
            }
        }
        // Otherwise not one the gateway waits for (e.g. the `sunsubscribe` a cluster node sends when a slot moves
        // away): it changed the counts and is not a reply.
    }

    pub(super) fn on_reply(&mut self, frame: &Frame) {
        self.apply_silent();
        if self.stopped {
            return;
        }
        match self.queue.front_mut() {
            Some(Expect::Replies(n)) => {
                *n -= 1;
                if *n > 0 {
                    return;
                }
            }
            Some(Expect::Effect { .. } | Expect::Exec(_)) => {}
            Some(Expect::Subscription { .. }) if frame.is_error() => {}
            Some(Expect::Subscription { .. }) => {
                return self.stop("a reply where subscription confirmations were expected");
            }
            Some(Expect::Silent(_) | Expect::Stop) | None => {
                return self.stop("a reply the gateway did not expect");
            }
        }
        match self.queue.pop_front() {
            Some(Expect::Effect { effect, always }) if always || !frame.is_error() => {
                self.apply(effect);
            }
            Some(Expect::Exec(effects)) if frame.is_array() => {
                for effect in effects {
                    self.apply(effect);
                }
            }
            _ => {}
        }
        self.settle();
    }

    /// Applies the effects of commands whose replies were suppressed: a later reply has arrived.
    pub(super) fn apply_silent(&mut self) {
        while let Some(Expect::Silent(_)) = self.queue.front() {
            if let Some(Expect::Silent(effect)) = self.queue.pop_front() {
                self.apply(effect);
            }
        }
        self.settle();
    }

    /// Stops when the next entry says so.
    pub(super) fn settle(&mut self) {
        if matches!(self.queue.front(), Some(Expect::Stop)) {
            self.stop("the connection left the request-reply protocol");
        }
    }

    pub(super) fn apply(&mut self, effect: Effect) {
        if effect.reset {
            self.authenticated = false;
            self.protocol = 2;
            self.channels = 0;
            self.patterns = 0;
            self.shard_channels = 0;
            self.deadline.send_replace(None);
            self.shared.update(self.id, |live| {
                live.user = None;
                live.deadline = None;
                live.expires_at = None;
                live.protocol = 2;
            });
        }
        if let Some(token) = effect.auth {
            // A token that expired while its AUTH waited (behind a blocked command) closes the connection now.
            let deadline = deadline_for(token.exp);
            let reauth = self.authenticated;
            self.authenticated = true;
            self.shared.auth_ok.fetch_add(1, Ordering::SeqCst);
            if reauth {
                self.shared.reauths.fetch_add(1, Ordering::SeqCst);
            }
            tracing::debug!(id = self.id, user = %token.oid, exp = token.exp, reauth, "gateway AUTH took effect");
            self.deadline.send_replace(Some(deadline));
            self.shared.update(self.id, |live| {
                live.user = Some(token.oid);
                live.deadline = Some(deadline);
                live.expires_at = Some(token.exp);
                if reauth {
                    live.reauths += 1;
                }
            });
        }
        if let Some(protocol) = effect.protocol {
            self.protocol = protocol;
            self.shared.update(self.id, |live| live.protocol = protocol);
        }
    }
}
