//! The request side of a connection: the protocol state predicted from the client's commands, and how each request
//! is rewritten (credentials) and routed (what to expect back).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};

use super::registry::{LastSeen, Shared, lock};
use super::replies::{Effect, Expect, SubKind, SubType};
use super::verify::{Refusal, ValidToken};
use crate::redis::resp::{Request, encode_command, is};

/// The user the gateway puts in a refused `AUTH` so that the backend answers `WRONGPASS` itself.
pub(super) const REFUSED_USER: &str = "entraid-gateway-refused";

/// Which reply suppression a command ignores.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Exempt {
    /// None: no reply under `CLIENT REPLY OFF` or `SKIP`.
    No,
    /// `RESET`: replies even under `CLIENT REPLY OFF` (it turns replies back on), not when skipped.
    Off,
    /// `CLIENT REPLY ON`: always replies.
    All,
}

/// How the request side routes one request: what the server will send for it.
pub(super) struct Routed {
    pub(super) expect: Option<Expect>,
    pub(super) exempt: Exempt,
    /// Stop following replies after this request's reply.
    pub(super) then_stop: bool,
}

impl Routed {
    pub(super) fn replies() -> Self {
        Self::expect(Expect::Replies(1))
    }

    pub(super) fn expect(expect: Expect) -> Self {
        Self {
            expect: Some(expect),
            exempt: Exempt::No,
            then_stop: false,
        }
    }

    pub(super) fn no_reply() -> Self {
        Self {
            expect: None,
            exempt: Exempt::No,
            then_stop: false,
        }
    }
}

/// Per-connection protocol state as the request side predicts it from the client's commands (the server's own
/// view, which decides when credentials change, is the [`Tracker`]'s).
pub(super) struct Session {
    pub(super) shared: Arc<Shared>,
    pub(super) id: u64,
    pub(super) authenticated: bool,
    pub(super) protocol: u8,
    pub(super) in_multi: bool,
    /// Credential changes queued in the open transaction.
    pub(super) multi_effects: Vec<Effect>,
    /// The open transaction changes the reply mode or subscribes: its replies cannot be followed after `EXEC`.
    pub(super) multi_unfollowable: bool,
    /// `CLIENT REPLY OFF`.
    pub(super) reply_off: bool,
    /// `CLIENT REPLY SKIP` was the previous request: this one's reply is skipped.
    pub(super) skip_this: bool,
    pub(super) channels: HashSet<Bytes>,
    pub(super) patterns: HashSet<Bytes>,
    pub(super) shard_channels: HashSet<Bytes>,
    /// `Expect::Stop` was queued: nothing more is expected.
    pub(super) stopped: bool,
    /// Principals whose ACL user must exist before the requests handled since the last write are forwarded.
    pub(super) to_provision: Vec<String>,
    /// See [`ClosedConnection::last_command`] and [`ClosedConnection::client_name`].
    pub(super) last: LastSeen,
}

/// Whether redis-server accepts this client name (no spaces, newlines or other special characters).
pub(super) fn valid_client_name(name: &[u8]) -> bool {
    name.iter().all(|b| (b'!'..=b'~').contains(b))
}

impl Session {
    pub(super) fn new(shared: Arc<Shared>, id: u64) -> Self {
        Self {
            shared,
            id,
            authenticated: false,
            protocol: 2,
            in_multi: false,
            multi_effects: Vec::new(),
            multi_unfollowable: false,
            reply_off: false,
            skip_this: false,
            channels: HashSet::new(),
            patterns: HashSet::new(),
            shard_channels: HashSet::new(),
            stopped: false,
            to_provision: Vec::new(),
            last: LastSeen::default(),
        }
    }

    /// Remembers the command's name (and a container command's subcommand) for [`ClosedConnection::last_command`].
    pub(super) fn note_command(&mut self, args: &[Bytes]) {
        const CONTAINERS: [&str; 10] = [
            "CLUSTER", "CLIENT", "CONFIG", "ACL", "COMMAND", "XINFO", "OBJECT", "MEMORY",
            "FUNCTION", "SCRIPT",
        ];
        let command = &mut self.last.command;
        command.clear();
        let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
        let container = CONTAINERS.contains(&name.as_str());
        command.push_str(&name);
        if container && let Some(sub) = args.get(1) {
            command.push(' ');
            command.push_str(&String::from_utf8_lossy(sub).to_ascii_uppercase());
        }
        // A connection's name (never a credential): `CLIENT SETNAME name`, `HELLO ... SETNAME name`.
        let set_name = match (name.as_str(), args.get(1), args.get(2)) {
            ("CLIENT", Some(sub), Some(client_name)) if is(sub, "SETNAME") => Some(client_name),
            ("HELLO", _, _) => {
                // Options after the protocol version: `AUTH user pass` and `SETNAME name`, in any order.
                let (mut j, mut found) = (2, None);
                while j < args.len() {
                    if is(&args[j], "AUTH") {
                        j += 3;
                    } else if is(&args[j], "SETNAME") {
                        found = args.get(j + 1);
                        j += 2;
                    } else {
                        break;
                    }
                }
                found
            }
            _ => None,
        };
        if let Some(client_name) = set_name {
            self.last.client_name = Some(String::from_utf8_lossy(client_name).into_owned());
        }
    }

    pub(super) fn resp2_subscribed(&self) -> bool {
        self.protocol == 2
            && !(self.channels.is_empty()
                && self.patterns.is_empty()
                && self.shard_channels.is_empty())
    }

    /// The token check, unless the test scripted re-AUTHs to be refused.
    pub(super) fn verdict(&self, user: &[u8], token: &[u8]) -> Result<ValidToken, Refusal> {
        let named = self.authenticated
            && self.last.client_name.is_some()
            && *lock(&self.shared.refuse_reauth_named) == self.last.client_name;
        if named || (self.authenticated && self.shared.refuse_reauth.load(Ordering::SeqCst)) {
            return Err(Refusal::Scripted);
        }
        self.shared.check_token(user, token)
    }

    pub(super) fn refuse_auth(&self, why: Refusal) {
        self.shared.auth_failed.fetch_add(1, Ordering::SeqCst);
        tracing::debug!(id = self.id, reason = ?why, "gateway AUTH refused");
        self.shared.changed();
    }

    /// The credentials to forward for a valid token of `oid`; notes the principal for provisioning first.
    pub(super) fn backend_credentials(&mut self, oid: &str) -> [Bytes; 2] {
        if self.shared.needs_provisioning(oid) && !self.to_provision.iter().any(|p| p == oid) {
            self.to_provision.push(oid.to_owned());
        }
        self.shared.principal_credentials(oid)
    }

    pub(super) fn refused_credentials() -> [Bytes; 2] {
        [
            Bytes::from_static(REFUSED_USER.as_bytes()),
            Bytes::from_static(b"-"),
        ]
    }

    /// Handles one request: appends what to send to the backend to `out` and what the server will send back for
    /// it to `expects`.
    pub(super) fn handle(
        &mut self,
        request: Request,
        raw: &[u8],
        out: &mut BytesMut,
        expects: &mut Vec<Expect>,
    ) {
        let skipped = std::mem::take(&mut self.skip_this);
        let reply_off = self.reply_off;
        let routed = self.route(request, raw, out);
        let suppressed = match routed.exempt {
            Exempt::No => skipped || reply_off,
            Exempt::Off => skipped,
            Exempt::All => false,
        };
        let expect = match routed.expect {
            Some(expect) if suppressed => match expect {
                Expect::Effect { effect, .. } | Expect::Silent(effect) => {
                    Some(Expect::Silent(effect))
                }
                // Whether a transaction ran cannot be told without its reply: its effects are dropped.
                Expect::Replies(_) | Expect::Exec(_) => None,
                // Confirmations are sent even then, an error is not: unsupported.
                Expect::Subscription { .. } | Expect::Stop => Some(Expect::Stop),
            },
            other => other,
        };
        if !self.stopped {
            let stop = matches!(expect, Some(Expect::Stop)) || routed.then_stop;
            expects.extend(expect.filter(|e| !matches!(e, Expect::Stop)));
            if stop {
                expects.push(Expect::Stop);
                self.stopped = true;
            }
        }
    }

    pub(super) fn route(&mut self, request: Request, raw: &[u8], out: &mut BytesMut) -> Routed {
        let args = request.args;
        let Some(name) = args.first() else {
            // An empty line or `*0`: the server ignores it.
            out.extend_from_slice(raw);
            return Routed::no_reply();
        };
        self.note_command(&args);
        if is(name, "AUTH") {
            return Routed::expect(self.handle_auth(args, out));
        }
        if is(name, "HELLO") {
            return Routed::expect(self.handle_hello(args, raw, out));
        }
        out.extend_from_slice(raw);
        if is(name, "RESET") {
            self.authenticated = false;
            self.protocol = 2;
            self.in_multi = false;
            self.multi_effects.clear();
            self.multi_unfollowable = false;
            self.reply_off = false;
            self.channels.clear();
            self.patterns.clear();
            self.shard_channels.clear();
            return Routed {
                exempt: Exempt::Off,
                ..Routed::expect(Expect::Effect {
                    effect: Effect {
                        reset: true,
                        ..Effect::default()
                    },
                    always: true,
                })
            };
        }
        if !self.authenticated {
            // NOAUTH.
            return Routed::replies();
        }
        if self.in_multi {
            return self.route_queued(name, &args);
        }
        if let Some(kind) = SubKind::of_command(name) {
            return self.route_subscription(kind, &args);
        }
        if self.resp2_subscribed() {
            // Only (P|S)(UN)SUBSCRIBE, PING, QUIT and RESET are allowed; the rest get an error.
            return Routed::replies();
        }
        if is(name, "MULTI") {
            self.in_multi = true;
        } else if is(name, "CLIENT") && args.len() == 3 && is(&args[1], "REPLY") {
            if is(&args[2], "ON") {
                self.reply_off = false;
                return Routed {
                    exempt: Exempt::All,
                    ..Routed::replies()
                };
            } else if is(&args[2], "OFF") {
                self.reply_off = true;
                return Routed::no_reply();
            } else if is(&args[2], "SKIP") {
                if !self.reply_off {
                    self.skip_this = true;
                }
                return Routed::no_reply();
            }
        } else if is(name, "MONITOR") {
            // Its `+OK`, then the server's command feed: simple strings like any reply.
            return Routed {
                then_stop: true,
                ..Routed::replies()
            };
        } else if is(name, "SYNC") || is(name, "PSYNC") {
            // A replication stream follows.
            return Routed::expect(Expect::Stop);
        }
        Routed::replies()
    }

    /// A command inside `MULTI`.
    pub(super) fn route_queued(&mut self, name: &[u8], args: &[Bytes]) -> Routed {
        if is(name, "EXEC") {
            self.in_multi = false;
            let effects = std::mem::take(&mut self.multi_effects);
            for effect in &effects {
                if let Some(protocol) = effect.protocol {
                    self.protocol = protocol;
                }
            }
            return Routed {
                then_stop: std::mem::take(&mut self.multi_unfollowable),
                ..Routed::expect(Expect::Exec(effects))
            };
        }
        if is(name, "DISCARD") {
            self.in_multi = false;
            self.multi_effects.clear();
            self.multi_unfollowable = false;
        } else if SubKind::of_command(name).is_some()
            || (is(name, "CLIENT") && args.get(1).is_some_and(|a| is(a, "REPLY")))
        {
            // Queued; at EXEC it would subscribe (with its confirmations inside the EXEC reply) or change the
            // reply mode mid-transaction, which the gateway does not follow.
            self.multi_unfollowable = true;
        }
        // `+QUEUED` or an error.
        Routed::replies()
    }

    /// A (P|S)(UN)SUBSCRIBE outside `MULTI`.
    pub(super) fn route_subscription(&mut self, kind: SubKind, args: &[Bytes]) -> Routed {
        let set = match kind.ty {
            SubType::Channel => &mut self.channels,
            SubType::Pattern => &mut self.patterns,
            SubType::Shard => &mut self.shard_channels,
        };
        let targets = &args[1..];
        if kind.subscribe {
            if targets.is_empty() {
                // Wrong number of arguments.
                return Routed::replies();
            }
            set.extend(targets.iter().cloned());
        } else if targets.is_empty() {
            set.clear();
        } else {
            for target in targets {
                set.remove(target);
            }
        }
        Routed::expect(Expect::Subscription {
            kind,
            left: (!targets.is_empty()).then_some(targets.len() as u64),
        })
    }

    pub(super) fn handle_auth(&mut self, args: Vec<Bytes>, out: &mut BytesMut) -> Expect {
        let (user, token) = match args.len() {
            2 => (&b"default"[..], &args[1]),
            3 => (&args[1][..], &args[2]),
            n => {
                // Wrong arity: the backend answers its own error; the arguments (maybe a token) are not sent.
                let mut placeholder = vec![args[0].clone()];
                placeholder.extend((1..n).map(|_| Bytes::from_static(b"-")));
                encode_command(&placeholder, out);
                return Expect::Replies(1);
            }
        };
        if args.len() == 2
            && !self.authenticated
            && !self.in_multi
            && self
                .shared
                .options
                .replication_password
                .as_ref()
                .is_some_and(|p| p.expose_secret().as_bytes() == &args[1][..])
        {
            // A replica's replication link (see `GatewayOptions::replication_password`): forwarded as is.
            tracing::debug!(
                id = self.id,
                "gateway: a replication link authenticated with the nodes' password"
            );
            self.authenticated = true;
            encode_command(&args, out);
            return Expect::Replies(1);
        }
        let (expect, [u, p]) = self.authenticate(user, token, None, false);
        encode_command(&[args[0].clone(), u, p], out);
        expect
    }

    /// Decides a credential change (`AUTH`, `HELLO ... AUTH`): for a valid token outside RESP2 subscriber mode, the
    /// principal's backend credentials and the effect (user, deadline, `protocol`) to apply when the server's reply
    /// arrives (whatever it is, when `always`); otherwise the refusal is counted and the backend gets credentials
    /// it refuses.
    pub(super) fn authenticate(
        &mut self,
        user: &[u8],
        token: &[u8],
        protocol: Option<u8>,
        always: bool,
    ) -> (Expect, [Bytes; 2]) {
        let verdict = match self.verdict(user, token) {
            Ok(_) if self.resp2_subscribed() => Err(Refusal::SubscriberContext),
            other => other,
        };
        match verdict {
            Ok(valid) => {
                if !self.in_multi
                    && let Some(p) = protocol
                {
                    self.protocol = p;
                }
                let credentials = self.backend_credentials(&valid.oid);
                let effect = Effect {
                    auth: Some(valid),
                    protocol,
                    reset: false,
                };
                let expect = self.queue_or_expect(effect, always);
                self.authenticated = true;
                (expect, credentials)
            }
            Err(why) => {
                self.refuse_auth(why);
                (Expect::Replies(1), Self::refused_credentials())
            }
        }
    }

    /// Inside `MULTI` the effect waits for `EXEC` (the command itself gets `+QUEUED`); otherwise it waits for the
    /// command's own reply.
    pub(super) fn queue_or_expect(&mut self, effect: Effect, always: bool) -> Expect {
        if self.in_multi {
            self.multi_effects.push(effect);
            Expect::Replies(1)
        } else {
            Expect::Effect { effect, always }
        }
    }

    pub(super) fn handle_hello(
        &mut self,
        mut args: Vec<Bytes>,
        raw: &[u8],
        out: &mut BytesMut,
    ) -> Expect {
        // Parse as redis-server's helloCommand does.
        let protover = match args.get(1) {
            None => None,
            Some(v) => match std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<u8>().ok())
            {
                Some(p) if (2..=3).contains(&p) => Some(p),
                _ => {
                    // NOPROTO or a syntax error from the backend; credentials are not sent.
                    Self::blank_hello_credentials(&mut args);
                    encode_command(&args, out);
                    return Expect::Replies(1);
                }
            },
        };
        let mut auth_at = Vec::new();
        let mut name_ok = true;
        let mut syntax_ok = true;
        let mut j = 2;
        while j < args.len() {
            let more = args.len() - 1 - j;
            if is(&args[j], "AUTH") && more >= 2 {
                auth_at.push(j + 1);
                j += 3;
            } else if is(&args[j], "SETNAME") && more >= 1 {
                name_ok = valid_client_name(&args[j + 1]);
                j += 2;
            } else {
                syntax_ok = false;
                break;
            }
        }
        let Some(&last_auth) = auth_at.last() else {
            out.extend_from_slice(raw);
            if self.authenticated
                && syntax_ok
                && name_ok
                && !self.resp2_subscribed()
                && let Some(p) = protover
            {
                if !self.in_multi {
                    self.protocol = p;
                }
                let effect = Effect {
                    protocol: Some(p),
                    ..Effect::default()
                };
                return self.queue_or_expect(effect, false);
            }
            return Expect::Replies(1);
        };
        if !syntax_ok {
            Self::blank_hello_credentials(&mut args);
            encode_command(&args, out);
            return Expect::Replies(1);
        }
        // With a refused name the server has authenticated the connection, then answers the name's error and keeps
        // the protocol: the AUTH takes effect whatever the reply.
        let protocol = if name_ok { protover } else { None };
        let (user, token) = (args[last_auth].clone(), args[last_auth + 1].clone());
        let (expect, [u, p]) = self.authenticate(&user, &token, protocol, !name_ok);
        for at in auth_at {
            args[at] = u.clone();
            args[at + 1] = p.clone();
        }
        encode_command(&args, out);
        expect
    }

    /// Replaces the arguments after any `AUTH` option of a malformed `HELLO` (the backend refuses it anyway).
    pub(super) fn blank_hello_credentials(args: &mut [Bytes]) {
        let [u, p] = Self::refused_credentials();
        let mut j = 2;
        while j < args.len() {
            if is(&args[j], "AUTH") && j + 2 < args.len() {
                args[j + 1] = u.clone();
                args[j + 2] = p.clone();
                j += 3;
            } else {
                j += 1;
            }
        }
    }
}
