//! The credential stream redis-rs reads, driven directly (no Redis): the current token first, each new token
//! once, refresh errors not streamed, a clear error when no token can be had, and no secret in any output.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::time::Duration;

use common::{MintingProvider, start_auth};
use entraid_core::{BoxFuture, Error, IdentityProvider, IdentityProviderResponse};
use entraid_manager::TokenManagerOptions;
use entraid_redis::EntraIdAuth;
use futures_util::StreamExt;
use redis::StreamingCredentialsProvider;

#[tokio::test]
async fn streams_the_current_token_then_each_new_one_once() {
    let provider = MintingProvider::new("stream", Duration::from_secs(300));
    let auth = start_auth(&provider);
    let mut handshake = auth.subscribe();
    let first = handshake.next().await.unwrap().unwrap();
    assert_eq!(first.username(), "stream-1");
    assert_eq!(
        first.password(),
        auth.current().unwrap().access_token().expose_secret()
    );
    drop(handshake);

    let mut task = auth.subscribe();
    assert_eq!(task.next().await.unwrap().unwrap().username(), "stream-1");
    // Nothing more until a new token arrives.
    assert!(
        tokio::time::timeout(Duration::from_millis(100), task.next())
            .await
            .is_err()
    );
    auth.manager().refresh_now().await.unwrap();
    let second = tokio::time::timeout(Duration::from_secs(5), task.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second.username(), "stream-2");
    assert_ne!(second.password(), first.password());
    let stats = auth.stats();
    assert_eq!(stats.streams_opened, 2, "{stats:?}");
    assert_eq!(stats.streams_open, 1, "{stats:?}");
    assert_eq!(stats.credentials_sent, 3, "{stats:?}");
    assert_eq!(
        stats.reauths_confirmed, 0,
        "not polled since the new token: {stats:?}"
    );

    // Polling again confirms the re-auth with stream-2 (redis-rs polls only after a successful AUTH).
    assert!(
        tokio::time::timeout(Duration::from_millis(50), task.next())
            .await
            .is_err()
    );
    assert_eq!(auth.stats().reauths_confirmed, 1);
    // A stream dropped with a new token in flight counts as a stopped task.
    auth.manager().refresh_now().await.unwrap();
    let third = tokio::time::timeout(Duration::from_secs(5), task.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(third.username(), "stream-3");
    drop(task);
    let stats = auth.stats();
    assert_eq!(stats.reauth_tasks_stopped, 1, "{stats:?}");
    assert_eq!(stats.streams_open, 0, "{stats:?}");

    // No token in Debug output (the adapter's, or redis-rs's BasicAuth).
    let shown = format!("{auth:?} {first:?} {second:?} {third:?}");
    assert!(!shown.contains("eyJ"), "{shown}");
    assert!(shown.contains("stream-3"), "{shown}");
}

#[derive(Debug)]
struct Refusing;

impl IdentityProvider for Refusing {
    fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
        // What Entra answers for a wrong client secret.
        let body = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215]}"#;
        Box::pin(async { Err(Error::from_http_status("Refusing", 401, None, body)) })
    }

    fn name(&self) -> &str {
        "Refusing"
    }
}

#[tokio::test]
async fn without_a_token_the_first_item_is_a_typed_error_then_the_stream_waits() {
    let auth = EntraIdAuth::from_provider(Refusing, TokenManagerOptions::default()).unwrap();
    let mut stream = auth.subscribe();
    let error = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(
        error.kind(),
        redis::ErrorKind::AuthenticationFailed,
        "{error}"
    );
    let shown = error.to_string();
    assert!(shown.contains("no Entra ID token"), "{shown}");
    assert!(shown.contains("AADSTS7000215"), "{shown}");
    // The manager's typed error comes back from the redis-rs error, with its code.
    let typed = entraid_redis::token_error(&error).expect("tagged");
    assert!(
        typed.entra_error().is_some_and(|e| e.has_code(7000215)),
        "{typed:?}"
    );
    assert!(!typed.is_retryable());
    // No busy loop on the manager's error: the next item waits for a token.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), stream.next())
            .await
            .is_err()
    );
}
