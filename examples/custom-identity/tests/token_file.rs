//! The custom provider end to end: a token file rewritten with fresh tokens, a fred client through the enforcing
//! gateway, no connection closed by expiry.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::time::Duration;

use entraid_example_custom_identity::TokenFileProvider;
use entraid_fred::EntraIdAuth;
use entraid_fred::fred::prelude::*;
use entraid_fred::fred::types::config::{Config, ServerConfig};
use entraid_manager::{TokenEvent, TokenManager, TokenManagerOptions};
use entraid_testkit::redis::{RedisHarness, token};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_token_file_keeps_the_client_authenticated() {
    let harness = RedisHarness::standalone().await.unwrap();
    let dir = std::env::temp_dir().join(format!("entraid-token-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("token");
    std::fs::write(&path, token("file-1", Duration::from_secs(3))).unwrap();

    let manager = TokenManager::start(
        TokenFileProvider::new(&path),
        TokenManagerOptions::default(),
    )
    .unwrap();
    let mut events = manager.subscribe();
    let auth = EntraIdAuth::new(manager.clone());
    let addr = harness.addr();
    let config = Config {
        server: ServerConfig::new_centralized(addr.ip().to_string(), addr.port()),
        ..Config::default()
    };
    let client = auth.fred_builder(config).build().unwrap();
    client.init().await.unwrap();
    let _attached = auth.attach(&client);

    // The "sidecar": writes a fresh token (new oid) after each one the manager picks up.
    let mut seen = Vec::new();
    for n in 2..=4 {
        std::fs::write(&path, token(&format!("file-{n}"), Duration::from_secs(3))).unwrap();
        loop {
            match tokio::time::timeout(Duration::from_secs(10), events.recv())
                .await
                .unwrap()
            {
                // The first token (file-1) may be delivered too, depending on timing: skip it.
                Some(TokenEvent::Token(t)) if t.username() == "file-1" => {}
                Some(TokenEvent::Token(t)) => {
                    seen.push(t.username().to_owned());
                    break;
                }
                Some(_) => {}
                None => panic!("manager stopped"),
            }
        }
        // Every command after a rotation runs on the re-authenticated connection.
        let pong: String = client.ping(None).await.unwrap();
        assert_eq!(pong, "PONG");
    }
    assert_eq!(seen, ["file-2", "file-3", "file-4"]);
    // Wait for the adapter to finish pushing the last token.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let pushed = auth.pushed_token().map(|t| t.username().to_owned());
        let stats = auth.stats();
        if pushed.as_deref() == Some("file-4") && stats.fanouts_completed == stats.rotations {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{stats:?}, pushed {pushed:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let users: Vec<_> = harness
        .connections()
        .into_iter()
        .filter_map(|c| c.user)
        .collect();
    assert!(users.contains(&"file-4".to_owned()), "{users:?}");
    let stats = harness.stats();
    assert_eq!(stats.closed_by_expiry, 0, "{stats:?}");
    assert_eq!(stats.auth_failed, 0, "{stats:?}");
    client.quit().await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
