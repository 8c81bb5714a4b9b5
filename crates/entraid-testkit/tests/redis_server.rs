//! The redis-server runner: start-up, password, logs, the missing-program error, and that no process survives
//! its owner (dropped normally, dropped while a test panics, or owned by a whole harness).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed step is a failed test"
)]

use std::path::Path;
use std::time::Duration;

use entraid_testkit::redis::{
    Error, RedisHarness, RedisServer, RedisServerOptions, RespClient, RespValue, free_port,
};

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn starts_requires_its_password_and_logs() {
    let server = RedisServer::start().await.unwrap();
    assert!(alive(server.pid()));
    assert_eq!(server.addr().ip().to_string(), "127.0.0.1");
    let major: u32 = server.version().split('.').next().unwrap().parse().unwrap();
    assert!(major >= 6, "{}", server.version());
    let mut anonymous = RespClient::connect(server.addr()).await.unwrap();
    let reply = anonymous.command(&["PING"]).await.unwrap();
    assert_eq!(reply.as_error(), Some("NOAUTH Authentication required."));
    let mut client = server.connect().await.unwrap();
    assert_eq!(
        client.command(&["PING"]).await.unwrap(),
        RespValue::Simple("PONG".into())
    );
    // No persistence configured.
    let save = client.command(&["CONFIG", "GET", "save"]).await.unwrap();
    assert_eq!(save.as_items().unwrap()[1].as_text().as_deref(), Some(""));
    let aof = client
        .command(&["CONFIG", "GET", "appendonly"])
        .await
        .unwrap();
    assert_eq!(aof.as_items().unwrap()[1].as_text().as_deref(), Some("no"));
    assert!(server.log_tail(50).contains("Ready to accept connections"));
    assert!(server.dir().starts_with(std::env::temp_dir()));
    assert!(!format!("{server:?}").contains(server.password().expose_secret()));
}

#[tokio::test]
async fn the_process_and_its_directory_are_gone_after_drop() {
    let server = RedisServer::start().await.unwrap();
    let (pid, dir) = (server.pid(), server.dir().to_path_buf());
    assert!(alive(pid));
    drop(server);
    assert!(!alive(pid), "redis-server {pid} survived its drop");
    assert!(!dir.exists());
}

#[tokio::test]
async fn the_process_is_killed_when_its_test_panics_and_the_log_is_kept() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let server = RedisServer::start().await.unwrap();
        tx.send((server.pid(), server.dir().to_path_buf())).unwrap();
        panic!("a failing test owning a redis-server");
    });
    let err = task.await.unwrap_err();
    assert!(err.is_panic());
    let (pid, dir) = rx.await.unwrap();
    assert!(!alive(pid), "redis-server {pid} survived a panic");
    // The directory is kept for the failing test's author.
    assert!(
        std::fs::read_to_string(dir.join("redis.log"))
            .unwrap()
            .contains("Ready to accept connections")
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_missing_program_is_named_with_how_to_install_it() {
    let options = RedisServerOptions {
        program: "/nonexistent/redis-server".into(),
        ..RedisServerOptions::default()
    };
    let err = RedisServer::start_with(options).await.unwrap_err();
    assert!(matches!(err, Error::RedisServerMissing { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("/nonexistent/redis-server"), "{message}");
    assert!(
        message.contains("apt-get install -y redis-server"),
        "{message}"
    );
}

#[tokio::test]
async fn a_bad_config_reports_the_servers_own_error() {
    let options = RedisServerOptions {
        extra_config: vec!["no-such-directive yes".into()],
        ..RedisServerOptions::default()
    };
    let err = RedisServer::start_with(options).await.unwrap_err();
    assert!(matches!(err, Error::Exited { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-directive"), "{err}");
}

#[tokio::test]
async fn the_port_is_free_and_below_the_cluster_bus_range() {
    let port = free_port().unwrap();
    assert!(port < 55535);
    std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
}

#[tokio::test]
async fn a_harness_leaves_no_process_behind() {
    let harness = RedisHarness::standalone().await.unwrap();
    let pid = harness.servers()[0].pid();
    let gateway = harness.addr();
    // A live client connection does not keep anything alive.
    let _client = harness.connect().await.unwrap();
    drop(harness);
    assert!(!alive(pid));
    // The gateway stops listening once its aborted task is dropped by the runtime.
    tokio::time::timeout(Duration::from_secs(5), async {
        while tokio::net::TcpStream::connect(gateway).await.is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the gateway still accepts connections");
}

/// Set in the environment of a child test process that holds a server until it is killed.
const HOLD_ENV: &str = "ENTRAID_TESTKIT_HOLD_REDIS";

/// Starts a redis-server in a child process (this same test, run again by its own binary in holder mode), kills
/// that child with SIGKILL and asserts the server dies with it.
///
/// In holder mode (`HOLD_ENV` set to the pid of the parent that spawned it) the test starts a server, prints its
/// pid and waits to be killed: it never returns, so it cannot pass on its own. With `HOLD_ENV` set by anything but
/// its parent, it fails instead of waiting.
#[tokio::test]
async fn no_process_survives_a_killed_test_process() {
    if let Some(parent) = std::env::var_os(HOLD_ENV) {
        assert_eq!(
            parent.to_str().and_then(|p| p.parse::<u32>().ok()),
            Some(std::os::unix::process::parent_id()),
            "{HOLD_ENV} is set, but not by the parent test that spawned this holder"
        );
        let server = RedisServer::start().await.unwrap();
        println!("REDIS_PID {}", server.pid());
        std::future::pending::<()>().await;
        unreachable!("the holder waits until it is killed");
    }
    use tokio::io::AsyncBufReadExt as _;
    let mut holder = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "no_process_survives_a_killed_test_process",
            "--nocapture",
        ])
        .env(HOLD_ENV, std::process::id().to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(holder.stdout.take().unwrap()).lines();
    let pid: u32 = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("the holder printed its pid");
            if let Some(pid) = line.strip_prefix("REDIS_PID ") {
                return pid.trim().parse().unwrap();
            }
        }
    })
    .await
    .unwrap();
    assert!(pid > 0 && alive(pid));
    // SIGKILL: no destructor runs in the holder.
    holder.kill().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        while alive(pid) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("redis-server outlived the process that started it");
}
