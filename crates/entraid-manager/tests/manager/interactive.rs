//! Interactive providers under the manager: a request that waits for a person is given the time the provider
//! asks for (not the manager's 30 s `request_timeout`), and a declined or timed-out sign-in is not repeated into
//! a new prompt every few seconds: it stands until a caller forces a refresh.

use std::time::Duration;

use entraid_core::{BoxFuture, Error, IdentityProvider, IdentityProviderResponse, RequestHint};
use entraid_manager::TokenManager;

use crate::support::{Fail, Fake, Script, Step, exact, next_error, next_token, secs, settle};

/// A scripted provider with a request hint.
#[derive(Debug)]
struct Hinted(Fake, RequestHint);

impl IdentityProvider for Hinted {
    fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
        self.0.request_token()
    }

    fn request_hint(&self) -> RequestHint {
        self.1
    }
}

fn browser(script: &std::sync::Arc<Script>) -> Hinted {
    Hinted(
        Fake(script.clone()),
        RequestHint::interactive(Duration::from_secs(300)),
    )
}

#[tokio::test(start_paused = true)]
async fn a_person_gets_the_time_the_provider_asks_for() {
    // The user takes two minutes to sign in: four times the manager's request_timeout.
    let script = Script::new([Step::token(3600).delayed(secs(120))], Step::token(3600));
    let manager = TokenManager::start(browser(&script), exact()).unwrap();
    let token = manager.token().await.unwrap();
    assert_eq!(token.username(), "user-1");
    assert_eq!(script.elapsed(), secs(120));
    assert_eq!(script.calls(), 1, "one sign-in, not one per 30 s");

    // Without a hint, the same request is cancelled after the manager's request_timeout (30 s).
    let hung = Script::new([Step::token(3600).delayed(secs(120))], Step::token(3600));
    let manager = TokenManager::start(Fake(hung.clone()), exact()).unwrap();
    let mut sub = manager.subscribe();
    let err = next_error(&mut sub).await;
    assert!(
        matches!(*err, Error::Timeout { after, .. } if after == secs(30)),
        "{err:?}"
    );
    assert_eq!(hung.elapsed(), secs(30));
}

#[tokio::test(start_paused = true)]
async fn a_longer_max_duration_applies_to_unattended_providers_too() {
    let script = Script::new([Step::token(3600).delayed(secs(80))], Step::token(3600));
    let slow = Hinted(
        Fake(script.clone()),
        RequestHint::unattended().with_max_duration(secs(90)),
    );
    let manager = TokenManager::start(slow, exact()).unwrap();
    assert!(manager.token().await.is_ok());
    assert_eq!(script.elapsed(), secs(80));
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_sign_in_is_not_retried_into_a_new_prompt() {
    // Nobody answers: the request is cancelled at the provider's 300 s plus 5 s of grace.
    let script = Script::new([Step::Hang], Step::token(3600));
    let manager = TokenManager::start(browser(&script), exact()).unwrap();
    let mut sub = manager.subscribe();
    let err = manager.ready().await.unwrap_err();
    assert!(
        matches!(*err, Error::Timeout { after, .. } if after == secs(305)),
        "{err:?}"
    );
    assert_eq!(script.elapsed(), secs(305));
    next_error(&mut sub).await;

    // An hour later: still one prompt, the error stands, and callers get it at once.
    tokio::time::sleep(secs(3600)).await;
    assert_eq!(script.calls(), 1, "{:?}", script.call_times());
    assert!(manager.token().await.is_err());
    assert!(manager.status().next_refresh_at.is_none());
    assert!(sub.try_recv().is_none());

    // A caller who asks again (a forced refresh) gets one new sign-in.
    let token = manager.refresh_now().await.unwrap();
    assert_eq!(token.username(), "user-2");
    assert_eq!(script.calls(), 2);
    assert_eq!(next_token(&mut sub).await.username(), "user-2");
}

#[tokio::test(start_paused = true)]
async fn a_declined_sign_in_is_not_retried_either() {
    let script = Script::new([Step::Fail(Fail::InvalidClient)], Step::token(3600));
    let manager = TokenManager::start(browser(&script), exact()).unwrap();
    let err = manager.ready().await.unwrap_err();
    assert!(
        matches!(*err, Error::AuthenticationFailed { .. }),
        "{err:?}"
    );
    tokio::time::sleep(secs(600)).await;
    settle().await;
    assert_eq!(script.calls(), 1, "{:?}", script.call_times());
    // The same provider without the hint is retried on the never-give-up cadence.
    let plain = Script::new(
        [Step::Fail(Fail::InvalidClient)],
        Step::Fail(Fail::InvalidClient),
    );
    let manager = TokenManager::start(Fake(plain.clone()), exact()).unwrap();
    assert!(manager.ready().await.is_err());
    tokio::time::sleep(secs(600)).await;
    assert!(plain.calls() > 50, "{}", plain.calls());
}

#[tokio::test(start_paused = true)]
async fn transient_failures_of_an_interactive_provider_get_one_burst_only() {
    // A network error (retryable) is retried within the burst (3 attempts), then the manager waits for a caller.
    let script = Script::new([], Step::Fail(Fail::Transport));
    let manager = TokenManager::start(browser(&script), exact()).unwrap();
    assert!(manager.ready().await.is_err());
    tokio::time::sleep(secs(3600)).await;
    assert_eq!(script.calls(), 3, "{:?}", script.call_times());
    // A scheduled refresh of a held token still happens (through the provider's refresh token, usually silent).
    let script = Script::new([], Step::token(100));
    let manager = TokenManager::start(browser(&script), exact()).unwrap();
    manager.ready().await.unwrap();
    tokio::time::sleep(secs(75)).await;
    assert_eq!(script.calls(), 2);
}
