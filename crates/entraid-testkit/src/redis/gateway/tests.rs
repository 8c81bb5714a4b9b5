//! Unit tests of the gateway over in-memory streams and a stand-in backend.

use super::io::*;
use super::registry::*;
use super::replies::*;
use super::session::*;
use super::verify::*;
use super::*;
use crate::redis::resp::is;
use bytes::{Bytes, BytesMut};
use entraid_core::Secret;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::redis::resp::{encode_command, parse_request};
use crate::redis::{RespClient, RespValue, token};

const HOUR: Duration = Duration::from_secs(3600);

/// A stand-in for redis-server that knows AUTH (backend credentials only), blocks forever on `BLPOP` and
/// answers `+PONG` to the rest.
async fn fake_backend(stream: tokio::io::DuplexStream) {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut buf = BytesMut::new();
    loop {
        if rd.read_buf(&mut buf).await.unwrap_or(0) == 0 {
            return;
        }
        loop {
            let view = buf.clone().freeze();
            let Ok(Some((request, used))) = parse_request(&view) else {
                break;
            };
            let _ = buf.split_to(used);
            if is(&request.args[0], "BLPOP") {
                // Blocked for good: like redis-server, nothing behind it is executed.
                std::future::pending::<()>().await;
            }
            let reply: &[u8] = if is(&request.args[0], "AUTH") {
                if request.args[1] == "default" && request.args[2] == "backend-pw" {
                    b"+OK\r\n"
                } else {
                    b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
                }
            } else {
                b"+PONG\r\n"
            };
            if wr.write_all(reply).await.is_err() {
                return;
            }
        }
    }
}

fn gateway() -> Arc<Shared> {
    Shared::new(
        Backend {
            addr: SocketAddr::from(([127, 0, 0, 1], 1)),
            username: "default".into(),
            password: Secret::new("backend-pw"),
        },
        GatewayOptions::default(),
    )
}

fn connect(shared: &Arc<Shared>) -> RespClient {
    let (client, gateway_side) = tokio::io::duplex(64 * 1024);
    let (gateway_backend, backend) = tokio::io::duplex(64 * 1024);
    let id = shared.register(None);
    tokio::spawn(serve_connection(
        shared.clone(),
        id,
        gateway_side,
        gateway_backend,
    ));
    tokio::spawn(fake_backend(backend));
    RespClient::from_stream(client)
}

/// AUTH as `o` with a token valid for an hour, which the gateway accepts.
async fn auth_for_an_hour(client: &mut RespClient) {
    let reply = client
        .command(&["AUTH", "o", &token("o", HOUR)])
        .await
        .unwrap();
    assert_eq!(reply, RespValue::Simple("OK".into()));
}

fn pong() -> RespValue {
    RespValue::Simple("PONG".into())
}

#[tokio::test(start_paused = true)]
async fn the_connection_closes_when_the_token_expires() {
    let shared = gateway();
    let mut client = connect(&shared);
    let start = Instant::now();
    auth_for_an_hour(&mut client).await;
    tokio::time::sleep(HOUR - Duration::from_secs(5)).await;
    assert_eq!(client.command(&["PING"]).await.unwrap(), pong());
    // Nothing else to do: paused time runs to the deadline and the gateway closes the connection.
    client.read_until_closed().await.unwrap();
    let closed_after = start.elapsed();
    assert!(
        closed_after > HOUR - Duration::from_secs(3) && closed_after <= HOUR,
        "{closed_after:?}"
    );
    let stats = shared.stats();
    assert_eq!(stats.closed_by_expiry, 1);
    let expired = stats.expired().next().unwrap();
    assert_eq!(expired.user.as_deref(), Some("o"));
    assert!(
        expired.age > HOUR - Duration::from_secs(3),
        "{:?}",
        expired.age
    );
    assert_eq!(stats.open_now, 0);
}

#[tokio::test(start_paused = true)]
async fn a_valid_reauth_moves_the_deadline() {
    let shared = gateway();
    let mut client = connect(&shared);
    let start = Instant::now();
    auth_for_an_hour(&mut client).await;
    tokio::time::sleep(Duration::from_secs(3000)).await;
    // The wall clock has not moved: this token's exp is 2 h of tokio time from now.
    let reply = client
        .command(&["AUTH", "o", &token("o", 2 * HOUR)])
        .await
        .unwrap();
    assert_eq!(reply, RespValue::Simple("OK".into()));
    // A refused re-AUTH does not move it back.
    let reply = client.command(&["AUTH", "o", "garbage"]).await.unwrap();
    assert!(reply.as_error().unwrap().starts_with("WRONGPASS"));
    tokio::time::sleep(HOUR).await;
    assert_eq!(client.command(&["PING"]).await.unwrap(), pong());
    let live = shared.connections();
    assert_eq!(live[0].reauths, 1);
    client.read_until_closed().await.unwrap();
    let closed_after = start.elapsed();
    let expected = Duration::from_secs(3000) + 2 * HOUR;
    assert!(
        closed_after > expected - Duration::from_secs(3) && closed_after <= expected,
        "{closed_after:?}"
    );
    let stats = shared.stats();
    assert_eq!((stats.auth_ok, stats.auth_failed, stats.reauths), (2, 1, 1));
    assert_eq!(stats.expired().next().unwrap().reauths, 1);
}

#[tokio::test(start_paused = true)]
async fn unauthenticated_and_reset_connections_have_no_deadline() {
    let shared = gateway();
    let mut client = connect(&shared);
    tokio::time::sleep(24 * HOUR).await;
    assert_eq!(client.command(&["PING"]).await.unwrap(), pong());
    auth_for_an_hour(&mut client).await;
    client.command(&["RESET"]).await.unwrap();
    tokio::time::sleep(2 * HOUR).await;
    assert_eq!(client.command(&["PING"]).await.unwrap(), pong());
    assert_eq!(shared.stats().closed_by_expiry, 0);
}

#[tokio::test(start_paused = true)]
async fn an_auth_behind_a_blocked_command_does_not_move_the_deadline() {
    let shared = gateway();
    let mut client = connect(&shared);
    let start = Instant::now();
    auth_for_an_hour(&mut client).await;
    client.send(&["BLPOP", "q", "0"]).await.unwrap();
    client
        .send(&["AUTH", "o", &token("o", 5 * HOUR)])
        .await
        .unwrap();
    // The gateway read the AUTH (its token was verified) but the server never ran it.
    assert_eq!(client.read_until_closed().await.unwrap(), 0);
    let closed_after = start.elapsed();
    assert!(
        closed_after > HOUR - Duration::from_secs(3) && closed_after <= HOUR,
        "{closed_after:?}"
    );
    let stats = shared.stats();
    assert_eq!(
        (stats.auth_ok, stats.reauths, stats.closed_by_expiry),
        (1, 0, 1)
    );
}

/// A session and its tracker, driven without sockets: requests in, reply bytes in.
struct Harness {
    shared: Arc<Shared>,
    session: Session,
    tracker: Tracker,
}

impl Harness {
    fn new() -> Self {
        let shared = gateway();
        let id = shared.register(None);
        Self {
            session: Session::new(shared.clone(), id),
            tracker: Tracker::new(shared.clone(), id, watch::channel(None).0),
            shared,
        }
    }

    fn send(&mut self, commands: &[&[&str]]) {
        let mut wire = BytesMut::new();
        for command in commands {
            encode_command(command, &mut wire);
        }
        self.send_raw(&wire);
    }

    fn send_raw(&mut self, wire: &[u8]) {
        let mut view = Bytes::copy_from_slice(wire);
        let mut out = BytesMut::new();
        let mut expects = Vec::new();
        while let Some((request, used)) = parse_request(&view).unwrap() {
            let raw = view.split_to(used);
            self.session.handle(request, &raw, &mut out, &mut expects);
        }
        assert!(view.is_empty());
        for expect in expects {
            self.tracker.expect(expect);
        }
    }

    /// Feeds reply bytes in pieces of `piece` bytes.
    fn reply_in_pieces(&mut self, wire: &[u8], piece: usize) {
        for chunk in wire.chunks(piece) {
            self.tracker.on_bytes(chunk);
        }
    }

    fn reply(&mut self, wire: &[u8]) {
        self.reply_in_pieces(wire, wire.len().max(1));
    }

    /// (`auth_ok`, `reauths`) so far.
    fn auths(&self) -> (u64, u64) {
        let stats = self.shared.stats();
        (stats.auth_ok, stats.reauths)
    }

    fn expires_at(&self) -> Option<i64> {
        self.shared.connections()[0].expires_at
    }
}

fn exp_of(valid_for: Duration) -> i64 {
    i64::try_from((unix_now() + valid_for).as_secs()).unwrap()
}

#[test]
fn auth_takes_effect_at_its_reply_in_a_pipeline_split_anywhere() {
    let (t1, t2) = (token("o", HOUR), token("o", 2 * HOUR));
    let replies = b"+PONG\r\n+OK\r\n$1\r\nx\r\n+OK\r\n*2\r\n$4\r\nkeys\r\n:7\r\n";
    for piece in [1, 2, 5, replies.len()] {
        let mut h = Harness::new();
        h.send(&[
            &["PING"],
            &["AUTH", "o", &t1],
            &["GET", "k"],
            &["AUTH", "o", &t2],
            &["HGETALL", "h"],
        ]);
        assert_eq!(h.auths(), (0, 0));
        h.reply_in_pieces(&replies[..7], piece);
        assert_eq!((h.auths(), h.expires_at()), ((0, 0), None));
        h.reply_in_pieces(&replies[7..12], piece);
        assert_eq!(h.auths(), (1, 0));
        assert!(h.tracker.authenticated);
        h.reply_in_pieces(&replies[12..19], piece);
        assert_eq!(h.auths(), (1, 0));
        h.reply_in_pieces(&replies[19..], piece);
        assert_eq!(h.auths(), (2, 1), "piece {piece}");
        assert!(!h.tracker.stopped);
        assert!(h.tracker.queue.is_empty());
    }
}

#[test]
fn a_refused_or_failed_auth_changes_nothing() {
    let mut h = Harness::new();
    h.send(&[&["AUTH", "o", "garbage"], &["AUTH", "o", &token("o", HOUR)]]);
    assert_eq!(h.shared.stats().auth_failed, 1);
    // The backend refused even the gateway's own credentials: no effect.
    h.reply(b"-WRONGPASS invalid username-password pair or user is disabled.\r\n-WRONGPASS x\r\n");
    assert_eq!((h.auths(), h.expires_at()), ((0, 0), None));
    assert!(!h.tracker.stopped);
}

#[test]
fn auth_in_multi_takes_effect_at_a_successful_exec() {
    let t = token("o", 2 * HOUR);
    let mut h = Harness::new();
    h.send(&[&["AUTH", "o", &token("o", HOUR)]]);
    h.reply(b"+OK\r\n");
    let first = h.expires_at();
    h.send(&[&["MULTI"], &["AUTH", "o", &t], &["INCR", "c"]]);
    h.reply(b"+OK\r\n+QUEUED\r\n+QUEUED\r\n");
    assert_eq!((h.auths(), h.expires_at()), ((1, 0), first));
    h.send(&[&["EXEC"]]);
    h.reply(b"*2\r\n+OK\r\n:1\r\n");
    assert_eq!(h.auths(), (2, 1));
    assert_eq!(h.expires_at(), Some(exp_of(2 * HOUR)));
    // Aborted by WATCH (a null, either protocol), by EXECABORT, or discarded: nothing.
    for (end, reply) in [
        ("EXEC", &b"*-1\r\n"[..]),
        ("EXEC", b"_\r\n"),
        (
            "EXEC",
            b"-EXECABORT Transaction discarded because of previous errors.\r\n",
        ),
        ("DISCARD", b"+OK\r\n"),
    ] {
        h.send(&[&["MULTI"], &["AUTH", "o", &t], &[end]]);
        h.reply(b"+OK\r\n+QUEUED\r\n");
        h.reply(reply);
        assert_eq!(h.auths(), (2, 1), "{reply:?}");
    }
    assert!(!h.tracker.stopped);
}

#[test]
fn resp3_pushes_and_attributes_are_not_counted_as_replies() {
    let mut h = Harness::new();
    h.send(&[&["HELLO", "3", "AUTH", "o", &token("o", HOUR)]]);
    h.reply(b"%1\r\n$5\r\nproto\r\n:3\r\n");
    assert_eq!((h.auths(), h.tracker.protocol), ((1, 0), 3));
    h.send(&[
        &["SUBSCRIBE", "a", "b"],
        &["PING"],
        &["AUTH", "o", &token("o", 2 * HOUR)],
    ]);
    // Confirmations, messages (one that looks like `+OK` inside), an attribute before PING's reply.
    h.reply(
        b">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n>3\r\n$7\r\nmessage\r\n$1\r\na\r\n+OK\r\n\
          >3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n|1\r\n+k\r\n+v\r\n+PONG\r\n\
          >3\r\n$7\r\nmessage\r\n$1\r\nb\r\n$2\r\nOK\r\n",
    );
    assert_eq!(h.auths(), (1, 0));
    h.reply(b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n+OK\r\n");
    assert_eq!(h.auths(), (2, 1));
    // Unsubscribe from everything: one confirmation per channel; then a PING and a RESET.
    h.send(&[&["UNSUBSCRIBE"], &["PING"], &["RESET"]]);
    h.reply(b">3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n>3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:0\r\n+PONG\r\n");
    assert!(h.tracker.authenticated);
    h.reply(b"+RESET\r\n");
    assert!(!h.tracker.authenticated);
    assert_eq!((h.tracker.protocol, h.expires_at()), (2, None));
    assert!(h.tracker.queue.is_empty() && !h.tracker.stopped);
}

#[test]
fn resp2_subscriber_frames_are_told_from_replies() {
    let mut h = Harness::new();
    h.send(&[&["AUTH", "o", &token("o", HOUR)]]);
    h.reply(b"+OK\r\n");
    h.send(&[
        &["SUBSCRIBE", "a"],
        &["PSUBSCRIBE", "p*"],
        &["PING"],
        &["AUTH", "o", &token("o", 2 * HOUR)],
    ]);
    // AUTH is refused in RESP2 subscriber mode, counted at once.
    assert_eq!(h.shared.stats().auth_failed, 1);
    h.reply(b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$3\r\nsub\r\n");
    h.reply(b"*3\r\n$10\r\npsubscribe\r\n$2\r\np*\r\n:2\r\n*4\r\n$8\r\npmessage\r\n$2\r\np*\r\n$2\r\npx\r\n$1\r\nm\r\n");
    assert_eq!((h.tracker.channels, h.tracker.patterns), (1, 1));
    h.reply(b"*2\r\n$4\r\npong\r\n$0\r\n\r\n-ERR Can't execute 'auth'\r\n");
    // The channel goes; the pattern stays (its count is the total).
    h.send(&[&["UNSUBSCRIBE"], &["PUNSUBSCRIBE", "p*"]]);
    h.reply(b"*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$4\r\nlate\r\n");
    assert_eq!((h.tracker.channels, h.tracker.patterns), (0, 1));
    h.reply(b"*3\r\n$12\r\npunsubscribe\r\n$2\r\np*\r\n:0\r\n");
    assert!(!h.tracker.subscribed());
    assert!(h.tracker.queue.is_empty());
    // Not subscribed: an array that starts with "message" is an ordinary reply again.
    let t = token("o", 3 * HOUR);
    h.send(&[&["LRANGE", "l", "0", "-1"], &["AUTH", "o", &t]]);
    h.reply(b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nb\r\n");
    assert_eq!(h.auths(), (1, 0));
    h.reply(b"+OK\r\n");
    assert_eq!(h.auths(), (2, 1));
    assert_eq!(h.expires_at(), Some(exp_of(3 * HOUR)));
}

#[test]
fn a_subscription_error_answers_the_subscription() {
    // RESP3 (in RESP2 the request side would refuse the AUTH: it counts the refused SSUBSCRIBE's channels).
    let mut h = Harness::new();
    h.send(&[&["HELLO", "3", "AUTH", "o", &token("o", HOUR)]]);
    h.reply(b"%1\r\n$5\r\nproto\r\n:3\r\n");
    h.send(&[
        &["SSUBSCRIBE", "a", "b"],
        &["SUBSCRIBE"],
        &["UNSUBSCRIBE"],
        &["PING"],
        &["AUTH", "o", &token("o", 2 * HOUR)],
    ]);
    h.reply(b"-CROSSSLOT Keys in request don't hash to the same slot\r\n");
    h.reply(b"-ERR wrong number of arguments for 'subscribe' command\r\n");
    // Unsubscribing from nothing: one confirmation with a null channel.
    h.reply(b">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n+PONG\r\n");
    assert_eq!(h.auths(), (1, 0));
    h.reply(b"+OK\r\n");
    assert_eq!(h.auths(), (2, 1));
    assert!(h.tracker.queue.is_empty() && !h.tracker.stopped);
}

#[test]
fn suppressed_replies_apply_their_auth_at_the_next_reply() {
    let mut h = Harness::new();
    h.send(&[&["AUTH", "o", &token("o", HOUR)]]);
    h.reply(b"+OK\r\n");
    h.send(&[
        &["CLIENT", "REPLY", "SKIP"],
        &["AUTH", "o", &token("o", 2 * HOUR)],
        &["PING"],
    ]);
    assert_eq!(h.auths(), (1, 0));
    h.reply(b"+PONG\r\n");
    assert_eq!(h.auths(), (2, 1));
    h.send(&[
        &["CLIENT", "REPLY", "OFF"],
        &["AUTH", "o", &token("o", 3 * HOUR)],
        &["GET", "k"],
    ]);
    // Nothing comes back while replies are off: the AUTH has not shown it ran.
    assert_eq!(h.auths(), (2, 1));
    h.send(&[&["CLIENT", "REPLY", "ON"]]);
    h.reply(b"+OK\r\n");
    assert_eq!(h.auths(), (3, 2));
    assert_eq!(h.expires_at(), Some(exp_of(3 * HOUR)));
    // An empty request uses up a SKIP, as in redis-server.
    h.send(&[&["CLIENT", "REPLY", "SKIP"]]);
    h.send_raw(b"\r\n");
    h.send(&[&["AUTH", "o", &token("o", 4 * HOUR)]]);
    h.reply(b"+OK\r\n");
    assert_eq!(h.auths(), (4, 3));
    assert!(h.tracker.queue.is_empty() && !h.tracker.stopped);
}

#[test]
fn unfollowable_replies_stop_all_later_credential_changes() {
    let t = token("o", 2 * HOUR);
    // MONITOR: its `+OK`, then a feed of simple strings.
    let mut h = Harness::new();
    h.send(&[
        &["AUTH", "o", &token("o", HOUR)],
        &["MONITOR"],
        &["AUTH", "o", &t],
    ]);
    h.reply(b"+OK\r\n+OK\r\n+1700000000.000000 [0 127.0.0.1:1] \"PING\"\r\n+OK\r\n");
    assert!(h.tracker.stopped);
    assert_eq!(h.auths(), (1, 0));
    // A transaction that subscribes.
    let mut h = Harness::new();
    h.send(&[&["AUTH", "o", &token("o", HOUR)]]);
    h.reply(b"+OK\r\n");
    h.send(&[
        &["MULTI"],
        &["SUBSCRIBE", "a"],
        &["EXEC"],
        &["AUTH", "o", &t],
    ]);
    h.reply(b"+OK\r\n+QUEUED\r\n*1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n");
    assert!(h.tracker.stopped);
    h.reply(b"+OK\r\n");
    assert_eq!(h.auths(), (1, 0));
    // A reply nobody asked for, and one that is not RESP.
    for bad in [&b"+OK\r\n+OK\r\n"[..], b"+OK\r\n?\r\n"] {
        let mut h = Harness::new();
        h.send(&[&["AUTH", "o", &token("o", HOUR)]]);
        h.reply(bad);
        assert!(h.tracker.stopped, "{bad:?}");
        h.send(&[&["AUTH", "o", &t]]);
        h.reply(b"+OK\r\n");
        assert_eq!(h.auths(), (1, 0));
        assert!(h.tracker.queue.is_empty());
    }
}

#[test]
fn the_deadline_follows_exp_on_the_tokio_clock() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let exp = i64::try_from(unix_now().as_secs()).unwrap() + 100;
        let left = deadline_for(exp).duration_since(Instant::now());
        assert!(left > Duration::from_secs(98) && left <= Duration::from_secs(100));
        assert_eq!(deadline_for(0), Instant::now());
    });
}

#[test]
fn options_and_backend_debug_hide_secrets() {
    let backend = Backend {
        addr: SocketAddr::from(([127, 0, 0, 1], 6379)),
        username: "default".into(),
        password: Secret::new("very-secret-pw"),
    };
    assert!(!format!("{backend:?}").contains("very-secret-pw"));
    let shown = format!("{:?}", GatewayOptions::default());
    assert!(shown.contains("https://redis.azure.com"), "{shown}");
}
