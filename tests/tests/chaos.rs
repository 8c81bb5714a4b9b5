//! Chaos: what production does to an Entra ID client, automated against the testkit.
//!
//! On tokio's paused clock (the token manager over a real `entraid-identity` credential and the emulator): the
//! identity endpoint down for longer than a token's life, a 429 storm with `Retry-After`, responses slower than
//! the request timeout, and clock skew between the emulator and the client. In real time, with real redis-server
//! behind the enforcing gateway and fred through `entraid-fred`: a redis node killed and restarted in the middle of
//! a rotation, connections reset at random on the way to the gateway, and a skewed emulator in front of Redis.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed unwrap fails the test"
)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use entraid_core::{BoxFuture, Error, IdentityProvider, IdentityProviderResponse, Secret};
use entraid_fred::EntraIdAuth;
use entraid_fred::fred::prelude::*;
use entraid_fred::fred::types::RespVersion;
use entraid_fred::fred::types::config::{Config, ServerConfig};
use entraid_identity::{
    AuthorityHost, ClientSecretCredential, Env, HttpOptions, ManagedIdentityCredential,
};
use entraid_manager::{RetryOptions, TokenEvent, TokenManager, TokenManagerOptions, WallClock};
use entraid_testkit::emulator::{App, Emulator, Endpoint, Fault, ManagedIdentity};
use entraid_testkit::redis::{
    AccessPolicy, Backend, Gateway, GatewayOptions, RedisHarness, RedisServer, RedisServerOptions,
    RespValue,
};
use entraid_tests::ResetProxy;
use tokio::time::Instant;

// ---------------------------------------------------------------------------------------------------------------
// The token manager on tokio's paused clock.
// ---------------------------------------------------------------------------------------------------------------

/// An identity provider that records when each request started (tokio's clock), including requests the manager
/// abandons.
#[derive(Debug)]
struct Recorded<P> {
    inner: P,
    calls: Calls,
}

impl<P: IdentityProvider> IdentityProvider for Recorded<P> {
    fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
        self.calls.lock().unwrap().push(Instant::now());
        self.inner.request_token()
    }

    fn name(&self) -> &str {
        self.inner.name()
    }
}

type Calls = Arc<Mutex<Vec<Instant>>>;

/// A wall clock that follows tokio's (paused) clock from the real time at the start, as the emulator's does, so a
/// token's `expires_on` and the manager's checks agree with the time the test advances.
fn tokio_wall_clock() -> WallClock {
    let (wall, start) = (SystemTime::now(), Instant::now());
    WallClock::custom(move || wall + start.elapsed())
}

/// An emulator with one app (`chaos-app`, secret `chaos-secret`) whose tokens live `lifetime`, and a client-secret
/// credential for it, recorded.
async fn secret_app(
    lifetime: Duration,
    http_timeout: Duration,
) -> (Emulator, Recorded<ClientSecretCredential>, Calls) {
    let emu = Emulator::start().await.unwrap();
    emu.add_app(
        App::new("chaos-app")
            .secret("chaos-secret")
            .token_lifetime(lifetime),
    )
    .unwrap();
    let http = HttpOptions::new()
        .native_roots(false)
        .timeout(http_timeout)
        .add_root_certificates_pem(emu.ca_cert_pem().as_bytes())
        .unwrap()
        .build()
        .unwrap();
    let credential = ClientSecretCredential::builder()
        .tenant_id(emu.tenant_id())
        .client_id("chaos-app")
        .secret(Secret::new("chaos-secret"))
        .authority_host(AuthorityHost::custom(emu.https_url()).unwrap())
        .http_client(http)
        .build()
        .unwrap();
    let calls = Calls::default();
    let recorded = Recorded {
        inner: credential,
        calls: calls.clone(),
    };
    (emu, recorded, calls)
}

fn paused_options() -> TokenManagerOptions {
    TokenManagerOptions {
        wall_clock: tokio_wall_clock(),
        rng_seed: Some(12),
        ..TokenManagerOptions::default()
    }
}

/// Waits for the next new token on `events`, returning the errors seen before it.
async fn next_token(
    events: &mut entraid_manager::Subscription,
) -> (Arc<entraid_core::Token>, Vec<Arc<Error>>) {
    let mut errors = Vec::new();
    loop {
        match events.recv().await.expect("manager stopped") {
            TokenEvent::Token(token) => return (token, errors),
            TokenEvent::Error(e) => errors.push(e),
            _ => {}
        }
    }
}

#[tokio::test(start_paused = true)]
async fn identity_endpoint_down_longer_than_a_token_life_then_back() {
    let lifetime = Duration::from_secs(5);
    let (emu, credential, calls) = secret_app(lifetime, Duration::from_secs(5)).await;
    let manager = TokenManager::start(credential, paused_options()).unwrap();
    let first = manager.token().await.unwrap();
    let mut events = manager.subscribe();

    // The endpoint goes down (503 to everything) right away, and stays down for three token lifetimes.
    emu.faults(Endpoint::Token)
        .push_n(Fault::Status(503), 100_000);
    let down = Instant::now();
    let outage = 3 * lifetime;
    tokio::time::sleep(lifetime + Duration::from_secs(1)).await;

    // After expiry: no token is served, and callers get a typed error at once (not a hang, not a panic).
    assert!(manager.current().is_none(), "an expired token was served");
    let asked = Instant::now();
    let err = manager.token().await.unwrap_err();
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "token() waited {:?} during the outage",
        asked.elapsed()
    );
    assert!(
        matches!(*err, Error::Http { status: 503, .. }),
        "expected the endpoint's 503, got {err:?}"
    );
    assert!(err.is_retryable());

    tokio::time::sleep_until(down + outage).await;
    let during = calls.lock().unwrap().len() - 1;
    // It kept trying (at least every ~2 s once no valid token was held), without hammering the endpoint.
    assert!(
        (5..=20).contains(&during),
        "{during} requests in a {outage:?} outage"
    );

    // Back: the next token comes within 2 s.
    emu.faults(Endpoint::Token).clear();
    let back = Instant::now();
    let (token, errors) = next_token(&mut events).await;
    assert!(
        back.elapsed() <= Duration::from_secs(2),
        "recovery took {:?}",
        back.elapsed()
    );
    assert!(!errors.is_empty(), "the outage was reported to subscribers");
    assert_ne!(
        token.access_token().expose_secret(),
        first.access_token().expose_secret()
    );
    assert!(
        emu.verifier()
            .verify(token.access_token().expose_secret())
            .is_ok()
    );
    assert!(manager.token().await.is_ok());
    assert!(manager.current().is_some());
}

#[tokio::test(start_paused = true)]
async fn a_429_storm_with_retry_after_is_honoured() {
    let lifetime = Duration::from_secs(10);
    let (emu, credential, calls) = secret_app(lifetime, Duration::from_secs(5)).await;
    let manager = TokenManager::start(credential, paused_options()).unwrap();
    manager.token().await.unwrap();
    let mut events = manager.subscribe();
    let storm = 6;
    emu.faults(Endpoint::Token)
        .push_n(Fault::Status(429).retry_after(4), storm);
    let (token, errors) = next_token(&mut events).await;
    assert!(
        emu.verifier()
            .verify(token.access_token().expose_secret())
            .is_ok()
    );

    let calls = calls.lock().unwrap().clone();
    // The first token, six 429s, then the token: nothing more, so no request was sent inside a Retry-After.
    assert_eq!(calls.len(), 1 + storm + 1, "{calls:?}");
    assert_eq!(errors.len(), storm);
    for e in &errors {
        assert!(
            matches!(**e, Error::Http { status: 429, retry_after: Some(d), .. } if d == Duration::from_secs(4)),
            "{e:?}"
        );
    }
    for pair in calls[1..].windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_secs(4),
            "a request {gap:?} after a 429 with Retry-After: 4"
        );
    }
    // The storm (6 x 4 s) outlasted the token (10 s, refreshed at 7 s): meanwhile callers got the typed 429.
    assert!(calls[storm + 1] - calls[1] > lifetime);
}

#[tokio::test(start_paused = true)]
async fn responses_slower_than_the_request_timeout_are_abandoned_and_retried() {
    let lifetime = Duration::from_secs(60);
    // The HTTP client would wait 10 minutes: the manager's 3 s request_timeout is what ends a slow request.
    let (emu, credential, calls) = secret_app(lifetime, Duration::from_secs(600)).await;
    let options = TokenManagerOptions {
        request_timeout: Duration::from_secs(3),
        ..paused_options()
    };
    let manager = TokenManager::start(credential, options).unwrap();
    let first = manager.token().await.unwrap();
    let mut events = manager.subscribe();
    emu.faults(Endpoint::Token)
        .push_n(Fault::Delay(Duration::from_secs(3600)), 3);
    let started = Instant::now();
    let refreshed = manager.refresh_now();
    // Meanwhile the valid token is served at once.
    let served = manager.token().await.unwrap();
    assert_eq!(
        served.access_token().expose_secret(),
        first.access_token().expose_secret()
    );
    assert!(started.elapsed() < Duration::from_millis(100));
    let err = refreshed.await.unwrap_err();
    assert!(
        matches!(*err, Error::Timeout { after, .. } if after == Duration::from_secs(3)),
        "{err:?}"
    );
    let (token, errors) = next_token(&mut events).await;
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors.iter().all(|e| matches!(**e, Error::Timeout { .. })));
    assert!(
        emu.verifier()
            .verify(token.access_token().expose_secret())
            .is_ok()
    );
    // Three abandoned requests of 3 s each and the retries between them: well within the token's life.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(calls.lock().unwrap().len(), 1 + 3 + 1);
}

#[tokio::test(start_paused = true)]
async fn clock_skew_between_emulator_and_client() {
    let lifetime = Duration::from_secs(5);
    let (emu, credential, calls) = secret_app(lifetime, Duration::from_secs(5)).await;
    let clock = tokio_wall_clock();
    let options = TokenManagerOptions {
        wall_clock: clock.clone(),
        refresh_jitter: entraid_manager::RefreshJitter::NONE,
        ..paused_options()
    };
    let manager = TokenManager::start(credential, options).unwrap();
    manager.token().await.unwrap();
    let mut events = manager.subscribe();
    // The token endpoint answers `expires_in` (relative): whatever the emulator's clock says, a token lives its 5 s
    // from receipt on the client's clock and is refreshed at 70 % of that, on time.
    for skew in [-2, -10, 3600, -3600, 0] {
        emu.set_clock_skew(skew);
        let (token, errors) = next_token(&mut events).await;
        assert!(errors.is_empty(), "skew {skew}: {errors:?}");
        assert_eq!(token.lifetime(), lifetime, "skew {skew}");
        let exp = token.claims().exp().unwrap();
        assert!(
            (exp - emu.now_unix() - 5).abs() <= 1,
            "skew {skew}: the JWT is on the emulator's clock"
        );
    }
    let calls = calls.lock().unwrap().clone();
    for pair in calls[1..].windows(2) {
        assert_eq!(pair[1] - pair[0], Duration::from_millis(3500), "{calls:?}");
    }
    drop(manager);

    // A source answering an absolute `expires_on` (IMDS), with the emulator's clock 10 s behind the client's: its
    // 5 s tokens are expired by the client's clock when they arrive. A typed error, no expired token served, no
    // panic. `TokenExpired` is not retryable (trying again cannot help while the clocks disagree), so the manager
    // tries again at its non-retryable cadence (`max_delay`, 10 s) and recovers within it once they agree.
    let identity = emu
        .add_managed_identity(ManagedIdentity::system_assigned().token_lifetime(lifetime))
        .unwrap();
    let imds = ManagedIdentityCredential::builder()
        .env(Env::from_map(std::iter::empty::<(String, String)>()))
        .imds_endpoint(emu.imds_endpoint())
        .build()
        .unwrap();
    emu.set_clock_skew(-10);
    let options = TokenManagerOptions {
        wall_clock: clock.clone(),
        ..paused_options()
    };
    let manager = TokenManager::start(imds, options).unwrap();
    let mut events = manager.subscribe();
    let err = manager.token().await.unwrap_err();
    assert!(
        matches!(*err, Error::TokenExpired { seconds_ago: 5 }),
        "{err:?}"
    );
    assert!(manager.current().is_none());
    emu.set_clock_skew(0);
    let back = Instant::now();
    let (token, errors) = next_token(&mut events).await;
    assert!(
        back.elapsed() <= RetryOptions::default().max_delay,
        "{:?}",
        back.elapsed()
    );
    assert!(
        errors
            .iter()
            .all(|e| matches!(**e, Error::TokenExpired { .. })),
        "{errors:?}"
    );
    assert_eq!(token.username(), identity.oid);
    assert!(manager.token().await.is_ok());
}

// ---------------------------------------------------------------------------------------------------------------
// Real redis-server behind the enforcing gateway, in real time.
// ---------------------------------------------------------------------------------------------------------------

const LIFETIME: Duration = Duration::from_secs(3);

fn manager_options() -> TokenManagerOptions {
    TokenManagerOptions {
        retry: RetryOptions {
            initial_delay: Duration::from_millis(50),
            ..RetryOptions::default()
        },
        ..TokenManagerOptions::default()
    }
}

/// The emulator with a system-assigned managed identity of `lifetime` tokens, and an adapter on its IMDS endpoint.
async fn managed_identity(lifetime: Duration) -> (Emulator, String, EntraIdAuth) {
    let emu = Emulator::start().await.unwrap();
    let identity = emu
        .add_managed_identity(ManagedIdentity::system_assigned().token_lifetime(lifetime))
        .unwrap();
    let credential = ManagedIdentityCredential::builder()
        .env(Env::from_map(std::iter::empty::<(String, String)>()))
        .imds_endpoint(emu.imds_endpoint())
        .build()
        .unwrap();
    let auth = EntraIdAuth::from_provider(credential, manager_options()).unwrap();
    (emu, identity.oid, auth)
}

fn standalone_config(addr: std::net::SocketAddr) -> Config {
    Config {
        server: ServerConfig::new_centralized(addr.ip().to_string(), addr.port()),
        version: RespVersion::RESP3,
        ..Config::default()
    }
}

/// The `exp` of a token.
fn exp(token: &entraid_core::Token) -> i64 {
    token.claims().exp().unwrap()
}

/// Waits until every live gateway connection authenticated as `oid` holds a token expiring at `exp` or later.
async fn all_hold_at_least(gateway: &Gateway, oid: &str, exp: i64, timeout: Duration) {
    let wait = async {
        loop {
            let conns = gateway.connections();
            let ours: Vec<_> = conns
                .iter()
                .filter(|c| c.user.as_deref() == Some(oid))
                .collect();
            if !ours.is_empty() && ours.iter().all(|c| c.expires_at.is_some_and(|e| e >= exp)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(timeout, wait)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "not every connection holds a token expiring at {exp} or later: {:?}",
                gateway.connections()
            )
        });
}

/// The ACL users of a server as `ACL SETUSER` argument lists (`default` left out): what Azure's control plane
/// keeps across a node restart, and redis-server does not persist by itself.
async fn acl_users(server: &RedisServer) -> Vec<Vec<String>> {
    let mut admin = server.connect().await.unwrap();
    let RespValue::Array(lines) = admin.command(&["ACL", "LIST"]).await.unwrap() else {
        panic!("ACL LIST is an array")
    };
    lines
        .iter()
        .filter_map(RespValue::as_text)
        .filter_map(|line| {
            let mut words = line.split_whitespace().map(str::to_owned);
            let (Some(_), Some(name)) = (words.next(), words.next()) else {
                return None;
            };
            (name != "default").then(|| {
                ["ACL".to_owned(), "SETUSER".to_owned(), name]
                    .into_iter()
                    .chain(words)
                    .collect()
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_node_killed_and_restarted_mid_rotation_loses_no_acknowledged_write() {
    let mut server = RedisServer::start_with(RedisServerOptions {
        // Every acknowledged write is on disk before its reply, so it survives SIGKILL.
        extra_config: vec!["appendonly yes".into(), "appendfsync always".into()],
        ..RedisServerOptions::default()
    })
    .await
    .unwrap();
    let gateway = Gateway::start(
        Backend {
            addr: server.addr(),
            username: "default".into(),
            password: server.password().clone(),
        },
        GatewayOptions {
            access_policy: Some(AccessPolicy::DataContributor),
            ..GatewayOptions::default()
        },
    )
    .await
    .unwrap();
    let (_emu, oid, auth) = managed_identity(LIFETIME).await;
    let client = auth
        .fred_builder(standalone_config(gateway.addr()))
        .build()
        .unwrap();
    client.init().await.unwrap();
    let _attachment = auth.attach(&client);

    let acked = Arc::new(Mutex::new(Vec::<u64>::new()));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (client, acked, failed, stop) =
            (client.clone(), acked.clone(), failed.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let write = client.set::<(), _, _>(format!("chaos:{n}"), n, None, None, false);
                match tokio::time::timeout(Duration::from_secs(1), write).await {
                    Ok(Ok(())) => acked.lock().unwrap().push(n),
                    _ => {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let acked_now = || acked.lock().unwrap().len();

    // Mid-rotation: the moment a new token is published (the adapter is pushing it to the connection), the node
    // dies. It stays down for two more rotations, so the token the connection held has expired when it returns.
    let mut events = auth.manager().subscribe();
    let _ = next_token(&mut events).await;
    tokio::time::timeout(Duration::from_secs(10), async {
        while acked_now() < 20 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    let acl = acl_users(&server).await;
    assert_eq!(acl.len(), 1, "the principal's ACL user: {acl:?}");
    let (at_kill, _) = next_token(&mut events).await;
    server.kill();
    let acked_before_restart = acked_now();
    let _ = next_token(&mut events).await;
    let _ = next_token(&mut events).await;
    assert!(
        SystemTime::now() > at_kill.expires_on(),
        "the token held at the kill has expired"
    );
    server.restart().await.unwrap();
    let mut admin = server.connect().await.unwrap();
    for user in &acl {
        let args: Vec<&str> = user.iter().map(String::as_str).collect();
        assert_eq!(
            admin.command(&args).await.unwrap(),
            RespValue::Simple("OK".into())
        );
    }
    let restarted = Instant::now();

    // fred reconnects with a fresh token and writes go through again.
    tokio::time::timeout(Duration::from_secs(20), async {
        while acked_now() < acked_before_restart + 50 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no write after the restart: {:?}", gateway.stats()));
    let newest = auth.manager().current().unwrap();
    assert!(exp(&newest) > exp(&at_kill));
    all_hold_at_least(&gateway, &oid, exp(&newest), Duration::from_secs(10)).await;
    assert!(restarted.elapsed() < Duration::from_secs(20));

    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    // Every acknowledged write is there.
    let acked = acked.lock().unwrap().clone();
    let mut missing = BTreeSet::new();
    for chunk in acked.chunks(200) {
        let keys: Vec<String> = chunk.iter().map(|n| format!("chaos:{n}")).collect();
        let mut args = vec!["MGET"];
        args.extend(keys.iter().map(String::as_str));
        let RespValue::Array(values) = admin.command(&args).await.unwrap() else {
            panic!("MGET is an array")
        };
        for (n, value) in chunk.iter().zip(values) {
            if value.as_text() != Some(n.to_string()) {
                missing.insert(*n);
            }
        }
    }
    assert!(missing.is_empty(), "acknowledged writes lost: {missing:?}");
    assert!(acked.len() > 70, "{} writes acknowledged", acked.len());
    assert!(
        failed.load(Ordering::SeqCst) > 0,
        "writes while the node was down did fail or time out"
    );
    let stats = gateway.stats();
    assert_eq!(stats.closed_by_expiry, 0, "{stats:?}");
    let _ = client.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_reset_at_random_are_reopened_with_the_current_token() {
    let harness = RedisHarness::standalone_with(AccessPolicy::DataContributor)
        .await
        .unwrap();
    let proxy = ResetProxy::start(harness.addr()).await.unwrap();
    let (_emu, oid, auth) = managed_identity(LIFETIME).await;
    let config = standalone_config(proxy.addr());
    let pool = auth.fred_builder(config.clone()).build_pool(4).unwrap();
    pool.init().await.unwrap();
    let subscriber = auth.fred_builder(config).build_subscriber_client().unwrap();
    subscriber.init().await.unwrap();
    let _resubscribe = subscriber.manage_subscriptions();
    subscriber.subscribe("chaos:events").await.unwrap();
    let _attachments = [auth.attach(&pool), auth.attach(&subscriber)];

    let ok = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for (i, client) in pool.clients().iter().enumerate() {
        let (client, ok, stop) = (client.clone(), ok.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let key = format!("chaos:reset:{i}");
                // A reset can fail the command in flight; what matters is that the client comes back.
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    client.set::<(), _, _>(&key, n, None, None, false).await?;
                    client.get::<u64, _>(&key).await
                })
                .await
                .map(|r| r.map(|_| ok.fetch_add(1, Ordering::SeqCst)));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }

    // Four rotations' worth of resets: one random connection every 150 ms.
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(150));
    while started.elapsed() < 4 * LIFETIME {
        tick.tick().await;
        proxy.reset_random();
    }
    assert!(proxy.resets() >= 40, "{} resets", proxy.resets());
    let before = ok.load(Ordering::SeqCst);

    // Calm again: every client works, and every connection holds the newest token (none left with a stale one).
    tokio::time::timeout(Duration::from_secs(10), async {
        while ok.load(Ordering::SeqCst) < before + 100 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    for client in pool.clients() {
        let _: () = client
            .set("chaos:after", 1, None, None, false)
            .await
            .unwrap();
    }
    let mut messages = subscriber.message_rx();
    let publisher = pool.next().clone();
    let received = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let _: i64 = publisher.publish("chaos:events", "after").await.unwrap();
            if let Ok(Ok(m)) =
                tokio::time::timeout(Duration::from_millis(200), messages.recv()).await
            {
                return m;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(received.value.as_str().as_deref(), Some("after"));
    let newest = auth.manager().current().unwrap();
    all_hold_at_least(
        &harness.gateways()[0],
        &oid,
        exp(&newest),
        Duration::from_secs(10),
    )
    .await;
    let stats = harness.stats();
    assert_eq!(
        stats.closed_by_expiry,
        0,
        "{:?}",
        stats.expired().collect::<Vec<_>>()
    );
    assert!(
        proxy.accepted() > 40,
        "fred reconnected after the resets ({} connections)",
        proxy.accepted()
    );
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        worker.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skewed_emulator_in_front_of_redis_rotates_without_expiry() {
    // The emulator 1 s behind the client and Redis: 4 s tokens expire 3 s after the client receives them, and the
    // gateway enforces their `exp` on its own clock. Every rotation must still land in time.
    let harness = RedisHarness::standalone_with(AccessPolicy::DataContributor)
        .await
        .unwrap();
    let emu = Emulator::builder()
        .clock_skew_secs(-1)
        .start()
        .await
        .unwrap();
    let identity = emu
        .add_managed_identity(
            ManagedIdentity::system_assigned().token_lifetime(Duration::from_secs(4)),
        )
        .unwrap();
    let credential = ManagedIdentityCredential::builder()
        .env(Env::from_map(std::iter::empty::<(String, String)>()))
        .imds_endpoint(emu.imds_endpoint())
        .build()
        .unwrap();
    let auth = EntraIdAuth::from_provider(credential, manager_options()).unwrap();
    let pool = auth
        .fred_builder(standalone_config(harness.addr()))
        .build_pool(2)
        .unwrap();
    pool.init().await.unwrap();
    let _attachment = auth.attach(&pool);
    let mut events = auth.manager().subscribe();
    let started = Instant::now();
    let mut failed = 0u64;
    let mut rotations = 0;
    while rotations < 4 {
        tokio::select! {
            event = events.recv() => {
                if let Some(TokenEvent::Token(token)) = event {
                    rotations += 1;
                    let left = token.expires_on().duration_since(SystemTime::now()).unwrap_or_default();
                    assert!(left <= Duration::from_secs(3), "{left:?}");
                }
            }
            r = pool.next().set::<(), _, _>("chaos:skew", 1, None, None, false) => {
                if r.is_err() {
                    failed += 1;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    assert!(started.elapsed() < Duration::from_secs(4 * 3 + 2));
    assert_eq!(failed, 0);
    let stats = harness.stats();
    assert_eq!(stats.closed_by_expiry, 0, "{stats:?}");
    assert_eq!(stats.auth_failed, 0, "{stats:?}");
    assert!(
        harness
            .connections()
            .iter()
            .all(|c| c.user.as_deref() == Some(identity.oid.as_str()))
    );
}
