//! Interactive sign-in under the token manager, against the emulator on tokio's paused clock: the device code
//! flow gets the time the user needs (longer than the manager's 30 s `request_timeout`), and a declined or expired
//! code is not turned into a new code every few seconds: it stands until the application asks again.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failed unwrap fails the test"
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use entraid_core::{Error, IdentityProvider};
use entraid_identity::{AuthorityHost, DeviceCodeCredential, DeviceCodeInfo, HttpOptions};
use entraid_manager::{TokenManager, TokenManagerOptions};
use entraid_testkit::emulator::{DeviceCodePolicy, Emulator, Endpoint, User};

type Prompts = Arc<Mutex<Vec<DeviceCodeInfo>>>;

async fn device_code(emu: &Emulator) -> (DeviceCodeCredential, Prompts) {
    let http = HttpOptions::new()
        .native_roots(false)
        .timeout(Duration::from_secs(5))
        .add_root_certificates_pem(emu.ca_cert_pem().as_bytes())
        .unwrap()
        .build()
        .unwrap();
    let prompts: Prompts = Arc::default();
    let seen = Arc::clone(&prompts);
    let credential = DeviceCodeCredential::builder()
        .tenant_id(emu.tenant_id())
        .authority_host(AuthorityHost::custom(emu.https_url()).unwrap())
        .http_client(http)
        .callback(move |info| seen.lock().unwrap().push(info.clone()))
        .build()
        .unwrap();
    (credential, prompts)
}

async fn emulator() -> Emulator {
    let emu = Emulator::start().await.unwrap();
    emu.add_user(User::new("alice@contoso.com", "pw")).unwrap();
    emu
}

fn prompts(p: &Prompts) -> usize {
    p.lock().unwrap().len()
}

#[tokio::test(start_paused = true)]
async fn a_device_code_sign_in_longer_than_request_timeout_completes_under_the_manager() {
    let emu = emulator().await;
    // Polls at 5 s (slow_down: the interval becomes 10 s), 15 s, 25 s (pending), 35 s (approved).
    emu.set_device_code_policy(DeviceCodePolicy {
        slow_down_polls: 1,
        ..DeviceCodePolicy::approve_after(3, "alice@contoso.com")
    });
    let (credential, seen) = device_code(&emu).await;
    assert!(credential.request_hint().is_interactive());
    let started = tokio::time::Instant::now();
    let manager = TokenManager::start(credential, TokenManagerOptions::default()).unwrap();
    let token = manager.token().await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(35),
        "{:?}",
        started.elapsed()
    );
    assert!(
        emu.verifier()
            .verify(token.access_token().expose_secret())
            .is_ok()
    );
    assert_eq!(prompts(&seen), 1, "one code, not one per request_timeout");
    assert_eq!(emu.requests_to(Endpoint::DeviceCode).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_declined_code_is_not_followed_by_a_new_one_until_the_application_asks() {
    let emu = emulator().await;
    let (credential, seen) = device_code(&emu).await;
    let manager = TokenManager::start(credential, TokenManagerOptions::default()).unwrap();
    // The user declines 12 s after the code is shown.
    let decliner = tokio::spawn({
        let emu = emu.clone();
        let seen = Arc::clone(&seen);
        async move {
            loop {
                let code = seen.lock().unwrap().first().map(|i| i.user_code.clone());
                if let Some(code) = code {
                    tokio::time::sleep(Duration::from_secs(12)).await;
                    emu.decline_device_code(&code).unwrap();
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let err = manager.ready().await.unwrap_err();
    assert_eq!(
        err.entra_error().unwrap().error,
        "authorization_declined",
        "{err}"
    );
    decliner.await.unwrap();

    // An hour later: still the one code, and callers get the error at once.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(prompts(&seen), 1);
    assert_eq!(emu.requests_to(Endpoint::DeviceCode).len(), 1);
    assert!(manager.token().await.is_err());

    // The application asks again: one new code, and this time the user signs in.
    emu.set_device_code_policy(DeviceCodePolicy::approve_after(1, "alice@contoso.com"));
    let token = manager.refresh_now().await.unwrap();
    assert!(
        emu.verifier()
            .verify(token.access_token().expose_secret())
            .is_ok()
    );
    assert_eq!(prompts(&seen), 2);
}

#[tokio::test(start_paused = true)]
async fn an_expired_code_is_not_retried_into_a_new_prompt_loop() {
    let emu = emulator().await;
    emu.set_device_code_policy(DeviceCodePolicy {
        expires_in: Duration::from_secs(60),
        ..DeviceCodePolicy::default()
    });
    let (credential, seen) = device_code(&emu).await;
    let manager = TokenManager::start(credential, TokenManagerOptions::default()).unwrap();
    let err = manager.ready().await.unwrap_err();
    assert!(matches!(*err, Error::AuthenticationFailed { .. }), "{err}");
    tokio::time::sleep(Duration::from_secs(1800)).await;
    assert_eq!(prompts(&seen), 1, "no new code every ~30-40 s");
    assert_eq!(emu.requests_to(Endpoint::DeviceCode).len(), 1);
}
