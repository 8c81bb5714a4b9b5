//! The device code flow on tokio's paused clock: the callback's message, pending then success, `slow_down` (+5 s),
//! declined, expired (AADSTS70019), and the refresh token used by later requests (and the flow run again when it
//! is revoked).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use entraid_core::{Error, IdentityProvider};
use entraid_identity::{AZURE_CLI_CLIENT_ID, DeviceCodeCredential, DeviceCodeInfo};
use entraid_testkit::emulator::{DeviceCodeOutcome, DeviceCodePolicy, Endpoint, User};

use crate::common::{Ctx, token_of};

fn credential(ctx: &Ctx, seen: &Arc<Mutex<Vec<DeviceCodeInfo>>>) -> DeviceCodeCredential {
    let seen = seen.clone();
    DeviceCodeCredential::builder()
        .tenant_id(ctx.emu.tenant_id())
        .authority_host(ctx.host())
        .http_client(ctx.http.clone())
        .callback(move |info| seen.lock().unwrap().push(info.clone()))
        .build()
        .unwrap()
}

fn grants(ctx: &Ctx) -> Vec<String> {
    ctx.emu
        .requests_to(Endpoint::Token)
        .iter()
        .map(|r| r.param("grant_type").unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn pending_slow_down_then_success_and_the_refresh_token_afterwards() {
    let ctx = Ctx::start().await;
    let alice = ctx
        .emu
        .add_user(User::new("alice@contoso.com", "pw"))
        .unwrap();
    ctx.emu.set_device_code_policy(DeviceCodePolicy {
        slow_down_polls: 1,
        ..DeviceCodePolicy::approve_after(3, "alice@contoso.com")
    });
    let seen = Arc::new(Mutex::new(Vec::new()));
    let credential = credential(&ctx, &seen);
    let started = tokio::time::Instant::now();
    let token = token_of(credential.request_token().await.unwrap());
    // Polls at 5 s (slow_down: the interval becomes 10 s), 15 s and 25 s (pending), 35 s (approved).
    assert_eq!(started.elapsed(), Duration::from_secs(35));
    assert_eq!(
        ctx.emu.verifier().verify(&token).unwrap().claims.oid(),
        Some(alice.oid.as_str())
    );
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        let info = &seen[0];
        assert_eq!(info.user_code.len(), 9);
        assert_eq!(info.verification_uri, "https://microsoft.com/devicelogin");
        assert!(info.message.contains(&info.user_code), "{}", info.message);
        assert_eq!(info.expires_in, Duration::from_secs(900));
        assert_eq!(info.interval, Duration::from_secs(5));
    }
    let start = &ctx.emu.requests_to(Endpoint::DeviceCode)[0];
    assert_eq!(start.param("client_id"), Some(AZURE_CLI_CLIENT_ID));
    assert_eq!(
        start.param("scope"),
        Some("https://redis.azure.com/.default openid profile offline_access")
    );
    let polls = ctx.emu.requests_to(Endpoint::Token);
    assert_eq!(polls.len(), 4);
    assert!(
        polls
            .iter()
            .all(|p| p.param("scope").is_none() && p.param("device_code").is_some())
    );

    // The next request redeems the refresh token: no new code for the user.
    let again = token_of(credential.request_token().await.unwrap());
    assert_eq!(
        ctx.emu.verifier().verify(&again).unwrap().claims.oid(),
        Some(alice.oid.as_str())
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(
        grants(&ctx).last().map(String::as_str),
        Some("refresh_token")
    );

    // Revoked: the refresh grant is refused (AADSTS50173) and the user is asked again.
    ctx.emu.revoke_refresh_tokens(&alice.oid);
    ctx.emu
        .set_device_code_policy(DeviceCodePolicy::approve_after(1, "alice@contoso.com"));
    token_of(credential.request_token().await.unwrap());
    assert_eq!(seen.lock().unwrap().len(), 2);
    let tail: Vec<String> = grants(&ctx).into_iter().rev().take(2).collect();
    assert_eq!(
        tail,
        [
            "urn:ietf:params:oauth:grant-type:device_code",
            "refresh_token"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn declined_is_final() {
    let ctx = Ctx::start().await;
    ctx.emu
        .add_user(User::new("alice@contoso.com", "pw"))
        .unwrap();
    ctx.emu.set_device_code_policy(DeviceCodePolicy {
        outcome: DeviceCodeOutcome::DeclineAfterPolls { polls: 2 },
        ..DeviceCodePolicy::default()
    });
    let seen = Arc::new(Mutex::new(Vec::new()));
    let err = credential(&ctx, &seen).request_token().await.unwrap_err();
    assert!(matches!(err, Error::AuthenticationFailed { .. }), "{err}");
    assert_eq!(err.entra_error().unwrap().error, "authorization_declined");
    assert_eq!(ctx.emu.requests_to(Endpoint::Token).len(), 2);
}

#[tokio::test(start_paused = true)]
async fn manual_decline_and_an_expired_code() {
    let ctx = Ctx::start().await;
    ctx.emu
        .add_user(User::new("alice@contoso.com", "pw"))
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    // The test declines as the user would, while the credential polls.
    let emu = ctx.emu.clone();
    let watcher = seen.clone();
    let decliner = tokio::spawn(async move {
        loop {
            let code = watcher
                .lock()
                .unwrap()
                .first()
                .map(|i: &DeviceCodeInfo| i.user_code.clone());
            if let Some(code) = code {
                tokio::time::sleep(Duration::from_secs(12)).await;
                emu.decline_device_code(&code).unwrap();
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let err = credential(&ctx, &seen).request_token().await.unwrap_err();
    assert_eq!(
        err.entra_error().unwrap().error,
        "authorization_declined",
        "{err}"
    );
    decliner.await.unwrap();

    // Nobody signs in: at 30 s the code has expired and Entra says AADSTS70019.
    ctx.emu.set_device_code_policy(DeviceCodePolicy {
        expires_in: Duration::from_secs(30),
        ..DeviceCodePolicy::default()
    });
    let started = tokio::time::Instant::now();
    let err = credential(&ctx, &seen).request_token().await.unwrap_err();
    assert!(matches!(err, Error::AuthenticationFailed { .. }), "{err}");
    assert!(err.entra_error().unwrap().has_code(70019), "{err}");
    assert_eq!(err.entra_error().unwrap().error, "expired_token");
    assert_eq!(started.elapsed(), Duration::from_secs(30));
}

/// Absurd durations from the device authorization answer (an `interval` of u64::MAX seconds, an `expires_in` of
/// billions of years, then a `slow_down`) are clamped, not added into an overflow panic: the interval is cut to
/// 5 minutes and the wait to the credential's 15-minute timeout.
#[tokio::test(start_paused = true)]
async fn absurd_intervals_and_lifetimes_are_clamped() {
    let ctx = Ctx::start().await;
    let alice = ctx
        .emu
        .add_user(User::new("alice@contoso.com", "pw"))
        .unwrap();
    ctx.emu.set_device_code_policy(DeviceCodePolicy {
        expires_in: Duration::from_secs(u64::MAX),
        interval: Duration::from_secs(u64::MAX),
        slow_down_polls: 1,
        ..DeviceCodePolicy::approve_after(1, "alice@contoso.com")
    });
    let seen = Arc::new(Mutex::new(Vec::new()));
    let started = tokio::time::Instant::now();
    let token = token_of(credential(&ctx, &seen).request_token().await.unwrap());
    assert_eq!(
        ctx.emu.verifier().verify(&token).unwrap().claims.oid(),
        Some(alice.oid.as_str())
    );
    // Polls at 300 s (slow_down), 600 s (approved).
    assert_eq!(started.elapsed(), Duration::from_secs(600));
    let info = seen.lock().unwrap()[0].clone();
    assert_eq!(info.interval, Duration::from_secs(300));
    assert_eq!(info.expires_in, Duration::from_secs(900));

    // Nobody signs in: the wait ends at the credential's timeout, not in a billion years.
    ctx.emu.set_device_code_policy(DeviceCodePolicy {
        expires_in: Duration::from_secs(u64::MAX),
        ..DeviceCodePolicy::default()
    });
    let started = tokio::time::Instant::now();
    let err = DeviceCodeCredential::builder()
        .tenant_id(ctx.emu.tenant_id())
        .authority_host(ctx.host())
        .http_client(ctx.http.clone())
        .callback(|_| {})
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
        .request_token()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AuthenticationFailed { .. }), "{err}");
    assert!(err.to_string().contains("expired after 60 s"), "{err}");
    assert_eq!(started.elapsed(), Duration::from_secs(60));
}

#[test]
fn the_device_code_flow_tells_a_token_manager_it_needs_a_person() {
    let credential = DeviceCodeCredential::builder()
        .tenant_id("contoso.onmicrosoft.com")
        .build()
        .unwrap();
    let hint = credential.request_hint();
    assert!(hint.is_interactive());
    assert!(hint.max_duration().unwrap() >= Duration::from_secs(900));
}
