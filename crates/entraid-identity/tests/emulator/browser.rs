//! The interactive browser flow with a test "browser" (the injected opener): it follows the authorization URL on
//! the emulator, then the emulator's redirect to the credential's loopback listener. PKCE S256 and `state` are
//! checked by the emulator and the listener; the refresh token serves later requests; a forged `state`, a refused
//! sign-in, a redeemed code (AADSTS54005) and a browser that never comes back are errors.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use entraid_core::{Error, IdentityProvider};
use entraid_identity::{InteractiveBrowserCredential, InteractiveBrowserCredentialBuilder};
use entraid_testkit::emulator::{AuthorizePolicy, Emulator, Endpoint, HttpResponse, User};

use crate::common::{Ctx, token_of};

/// What the test browser does with the emulator's redirect before following it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tamper {
    None,
    /// Sends a forged `state` first, then the real redirect.
    ForgedStateFirst,
    /// Sends only a forged `state`.
    OnlyForgedState,
    /// Replaces the code with the first code it ever saw (already redeemed).
    ReplayFirstCode,
}

#[derive(Default)]
struct Seen {
    opened: Vec<String>,
    listener_statuses: Vec<u16>,
    first_code: Option<String>,
}

fn replace_param(url: &str, name: &str, value: &str) -> String {
    let (base, query) = url.split_once('?').unwrap();
    let params: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k == name => format!("{k}={value}"),
            _ => kv.to_owned(),
        })
        .collect();
    format!("{base}?{}", params.join("&"))
}

fn param(url: &str, name: &str) -> Option<String> {
    url.split_once('?')?.1.split('&').find_map(|kv| {
        kv.split_once('=')
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
    })
}

async fn follow(emu: &Emulator, url: &str) -> HttpResponse {
    // The listener is on 127.0.0.1; the redirect URI says localhost.
    emu.client()
        .get(&url.replace("//localhost:", "//127.0.0.1:"), &[])
        .await
        .unwrap()
}

fn builder(
    ctx: &Ctx,
    tamper: Tamper,
    seen: &Arc<Mutex<Seen>>,
) -> InteractiveBrowserCredentialBuilder {
    let emu = ctx.emu.clone();
    let seen = seen.clone();
    InteractiveBrowserCredential::builder()
        .tenant_id(ctx.emu.tenant_id())
        .authority_host(ctx.host())
        .http_client(ctx.http.clone())
        .browser_opener(move |url: String| {
            let emu = emu.clone();
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().opened.push(url.clone());
                tokio::spawn(async move {
                    let authorize = emu.client().get(&url, &[]).await.unwrap();
                    assert_eq!(authorize.status, 302, "{}", authorize.text());
                    let mut location = authorize.header("location").unwrap().to_owned();
                    if param(&location, "code").is_some() {
                        let mut s = seen.lock().unwrap();
                        let code = param(&location, "code").unwrap();
                        let first = s.first_code.get_or_insert(code).clone();
                        if tamper == Tamper::ReplayFirstCode {
                            location = replace_param(&location, "code", &first);
                        }
                    }
                    if matches!(tamper, Tamper::ForgedStateFirst | Tamper::OnlyForgedState) {
                        let forged = replace_param(&location, "state", "forged-state");
                        let status = follow(&emu, &forged).await.status;
                        seen.lock().unwrap().listener_statuses.push(status);
                        if tamper == Tamper::OnlyForgedState {
                            return;
                        }
                    }
                    let status = follow(&emu, &location).await.status;
                    seen.lock().unwrap().listener_statuses.push(status);
                });
                Ok::<_, std::io::Error>(())
            }
        })
}

async fn start() -> (Ctx, String) {
    let ctx = Ctx::start().await;
    let alice = ctx
        .emu
        .add_user(User::new("alice@contoso.com", "pw"))
        .unwrap();
    (ctx, alice.oid)
}

#[tokio::test]
async fn signs_in_with_pkce_and_uses_the_refresh_token_afterwards() {
    let (ctx, alice) = start().await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let credential = builder(&ctx, Tamper::None, &seen)
        .login_hint("alice@contoso.com")
        .build()
        .unwrap();
    let token = token_of(credential.request_token().await.unwrap());
    assert_eq!(
        ctx.emu.verifier().verify(&token).unwrap().claims.oid(),
        Some(alice.as_str())
    );
    let authorize = &ctx.emu.requests_to(Endpoint::Authorize)[0];
    assert_eq!(authorize.param("code_challenge_method"), Some("S256"));
    assert_eq!(authorize.param("code_challenge").map(str::len), Some(43));
    assert_eq!(authorize.param("response_type"), Some("code"));
    assert_eq!(authorize.param("login_hint"), Some("alice@contoso.com"));
    let state = authorize.param("state").unwrap();
    assert!(state.len() >= 22, "{state}");
    let redirect = authorize.param("redirect_uri").unwrap().to_owned();
    assert!(redirect.starts_with("http://localhost:"), "{redirect}");
    let redeem = &ctx.emu.requests_to(Endpoint::Token)[0];
    assert_eq!(redeem.param("grant_type"), Some("authorization_code"));
    assert_eq!(redeem.param("redirect_uri"), Some(redirect.as_str()));
    assert!(redeem.param("code_verifier").is_some());
    assert_eq!(seen.lock().unwrap().listener_statuses, [200]);

    // Later: the refresh token, no browser.
    token_of(credential.request_token().await.unwrap());
    assert_eq!(seen.lock().unwrap().opened.len(), 1);
    assert_eq!(
        ctx.emu
            .requests_to(Endpoint::Token)
            .last()
            .unwrap()
            .param("grant_type"),
        Some("refresh_token")
    );
    // Two sign-ins use two verifiers and two states.
    let other = builder(&ctx, Tamper::None, &seen).build().unwrap();
    token_of(other.request_token().await.unwrap());
    let authorizes = ctx.emu.requests_to(Endpoint::Authorize);
    assert_ne!(authorizes[0].param("state"), authorizes[1].param("state"));
    assert_ne!(
        authorizes[0].param("code_challenge"),
        authorizes[1].param("code_challenge")
    );
}

#[tokio::test]
async fn a_forged_state_is_refused_and_the_real_redirect_still_works() {
    let (ctx, alice) = start().await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let credential = builder(&ctx, Tamper::ForgedStateFirst, &seen)
        .build()
        .unwrap();
    let token = token_of(credential.request_token().await.unwrap());
    assert_eq!(
        ctx.emu.verifier().verify(&token).unwrap().claims.oid(),
        Some(alice.as_str())
    );
    assert_eq!(seen.lock().unwrap().listener_statuses, [400, 200]);

    // Only a forged one: no token, and the flow ends at its timeout.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let credential = builder(&ctx, Tamper::OnlyForgedState, &seen)
        .timeout(Duration::from_millis(1500))
        .build()
        .unwrap();
    let err = credential.request_token().await.unwrap_err();
    assert!(matches!(err, Error::AuthenticationFailed { .. }), "{err}");
    assert!(err.to_string().contains("no sign-in completed"), "{err}");
    assert_eq!(seen.lock().unwrap().listener_statuses, [400]);
    assert_eq!(
        ctx.emu.requests_to(Endpoint::Token).len(),
        1,
        "the forged redirect was never redeemed"
    );
}

#[tokio::test]
async fn a_refused_sign_in_carries_entras_error() {
    let (ctx, _) = start().await;
    ctx.emu.set_authorize_policy(AuthorizePolicy::refuse());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let err = builder(&ctx, Tamper::None, &seen)
        .build()
        .unwrap()
        .request_token()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AuthenticationFailed { .. }), "{err}");
    let entra = err.entra_error().unwrap();
    assert_eq!(entra.error, "access_denied");
    assert!(entra.has_code(65004), "{err}");
}

#[tokio::test]
async fn a_redeemed_code_is_aadsts54005() {
    let (ctx, _) = start().await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    token_of(
        builder(&ctx, Tamper::ReplayFirstCode, &seen)
            .build()
            .unwrap()
            .request_token()
            .await
            .unwrap(),
    );
    // A second sign-in whose redirect carries the first, already redeemed, code.
    let err = builder(&ctx, Tamper::ReplayFirstCode, &seen)
        .build()
        .unwrap()
        .request_token()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AuthenticationFailed { .. }), "{err}");
    assert!(err.entra_error().unwrap().has_code(54005), "{err}");
}

#[tokio::test]
async fn an_opener_that_fails_leaves_the_url_to_the_user_until_the_timeout() {
    let (ctx, _) = start().await;
    let opened = Arc::new(Mutex::new(0));
    let count = opened.clone();
    let credential = InteractiveBrowserCredential::builder()
        .tenant_id(ctx.emu.tenant_id())
        .authority_host(ctx.host())
        .http_client(ctx.http.clone())
        .timeout(Duration::from_millis(300))
        .browser_opener(move |_url: String| {
            *count.lock().unwrap() += 1;
            async { Err::<(), _>(std::io::Error::other("no browser here")) }
        })
        .build()
        .unwrap();
    let err = credential.request_token().await.unwrap_err();
    assert!(err.to_string().contains("no sign-in completed"), "{err}");
    assert_eq!(*opened.lock().unwrap(), 1);
    assert!(ctx.emu.requests_to(Endpoint::Authorize).is_empty());
}
