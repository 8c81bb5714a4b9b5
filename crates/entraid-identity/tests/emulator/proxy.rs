//! HTTPS proxies: token-endpoint traffic goes through the proxy (an explicit option, or `HTTPS_PROXY` read
//! through the injected `Env`), `NO_PROXY` is honoured, and managed identity traffic never goes through it, even
//! with a proxied client and every proxy variable set.
//!
//! The proxy is a small `CONNECT` proxy on 127.0.0.1 (a tokio task) that records the head of every request it
//! receives, so a test can count what went through it.

use std::sync::{Arc, Mutex};

use entraid_core::Error;
use entraid_identity::{
    ClientSecretCredential, Env, HttpOptions, ManagedIdentityCredential, ManagedIdentitySource,
    ProxyOptions,
};
use entraid_testkit::emulator::{App, Endpoint, ManagedIdentity};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::common::{Ctx, TIMEOUT, expect_error};

/// One request the proxy received: its request line and whether it carried `Proxy-Authorization`.
#[derive(Debug, Clone)]
struct Seen {
    line: String,
    proxy_authorization: Option<String>,
}

/// A `CONNECT` proxy on 127.0.0.1 that tunnels to whatever it is asked for and records every request head.
/// Anything but `CONNECT` is answered `502` (and recorded).
struct ConnectProxy {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ConnectProxy {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, record.clone()));
            }
        });
        Self { url, seen, task }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn serve(mut client: TcpStream, seen: Arc<Mutex<Vec<Seen>>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 || client.read(&mut byte).await.unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or("").to_owned();
    let proxy_authorization = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("proxy-authorization"))
        .map(|(_, value)| value.trim().to_owned());
    seen.lock().unwrap().push(Seen {
        line: line.clone(),
        proxy_authorization,
    });
    let mut parts = line.split(' ');
    let (Some("CONNECT"), Some(target)) = (parts.next(), parts.next()) else {
        let _ = client
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    };
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        let _ = client
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    };
    if client
        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .await
        .is_err()
    {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// The emulator's HTTPS listener as `host:port` (what a `CONNECT` to it names).
fn https_authority(ctx: &Ctx) -> String {
    ctx.emu
        .https_url()
        .trim_start_matches("https://")
        .to_owned()
}

/// An HTTP client trusting the emulator's CA, with `proxy`.
fn client_with(ctx: &Ctx, proxy: ProxyOptions) -> entraid_identity::HttpClient {
    HttpOptions::new()
        .native_roots(false)
        .timeout(TIMEOUT)
        .add_root_certificates_pem(ctx.emu.ca_cert_pem().as_bytes())
        .unwrap()
        .proxy(proxy)
        .build()
        .unwrap()
}

fn secret_credential(ctx: &Ctx) -> entraid_identity::ClientSecretCredentialBuilder {
    ClientSecretCredential::builder()
        .tenant_id(ctx.emu.tenant_id())
        .client_id("proxied-app")
        .secret("s".into())
        .authority_host(ctx.host())
}

async fn ctx_with_app() -> (Ctx, String) {
    let ctx = Ctx::start().await;
    let app = ctx
        .emu
        .add_app(App::new("proxied-app").secret("s"))
        .unwrap();
    (ctx, app.oid)
}

#[tokio::test]
async fn token_requests_go_through_an_explicit_proxy() {
    let (ctx, oid) = ctx_with_app().await;
    let proxy = ConnectProxy::start().await;
    let http = client_with(&ctx, ProxyOptions::https(&proxy.url).unwrap());
    assert!(http.uses_proxy());
    let c = secret_credential(&ctx).http_client(http).build().unwrap();
    ctx.expect_token(&c, &oid).await;
    ctx.expect_token(&c, &oid).await;
    let seen = proxy.seen();
    // One tunnel (the connection is kept alive for the second request), to the token endpoint's host.
    assert!(!seen.is_empty(), "nothing went through the proxy");
    for s in &seen {
        assert_eq!(
            s.line,
            format!("CONNECT {} HTTP/1.1", https_authority(&ctx))
        );
        assert_eq!(s.proxy_authorization, None);
    }
    assert_eq!(ctx.emu.requests_to(Endpoint::Token).len(), 2);
}

#[tokio::test]
async fn proxy_credentials_in_the_url_are_sent_and_never_shown() {
    let (ctx, oid) = ctx_with_app().await;
    let proxy = ConnectProxy::start().await;
    let with_user = proxy
        .url
        .replace("http://", "http://proxyuser:proxy-pass-123@");
    let options = ProxyOptions::https(&with_user).unwrap();
    let shown = format!("{options:?}");
    assert!(
        !shown.contains("proxy-pass-123") && !shown.contains("proxyuser"),
        "{shown}"
    );
    assert!(shown.contains("credentials: true"), "{shown}");
    let c = secret_credential(&ctx)
        .http_client(client_with(&ctx, options))
        .build()
        .unwrap();
    ctx.expect_token(&c, &oid).await;
    let seen = proxy.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    // Basic base64("proxyuser:proxy-pass-123")
    assert_eq!(
        seen[0].proxy_authorization.as_deref(),
        Some("Basic cHJveHl1c2VyOnByb3h5LXBhc3MtMTIz")
    );
}

/// `HTTPS_PROXY` in the injected `Env` (not the process environment) puts the proxy on the credential's own
/// client. That client trusts only the system's roots, so the TLS handshake with the emulator fails, but the
/// tunnel was asked of the proxy: the request went through it.
#[tokio::test]
async fn https_proxy_from_the_env_is_used_by_the_default_client() {
    let (ctx, _) = ctx_with_app().await;
    let proxy = ConnectProxy::start().await;
    let c = secret_credential(&ctx)
        .env(Env::from_map([("HTTPS_PROXY", proxy.url.as_str())]))
        .build()
        .unwrap();
    let err = expect_error(&c).await;
    assert!(matches!(err, Error::Transport { .. }), "{err}");
    let seen = proxy.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        seen[0].line,
        format!("CONNECT {} HTTP/1.1", https_authority(&ctx))
    );
    // Lower case works too, and the builder's explicit option turns the variable off.
    let lower = ConnectProxy::start().await;
    let c = secret_credential(&ctx)
        .env(Env::from_map([("https_proxy", lower.url.as_str())]))
        .build()
        .unwrap();
    let _ = expect_error(&c).await;
    assert_eq!(lower.seen().len(), 1);
    let c = secret_credential(&ctx)
        .env(Env::from_map([("HTTPS_PROXY", proxy.url.as_str())]))
        .proxy(ProxyOptions::none())
        .build()
        .unwrap();
    let _ = expect_error(&c).await;
    assert_eq!(
        proxy.seen().len(),
        1,
        "ProxyOptions::none() still used the proxy"
    );
    // No variable: no proxy (the process environment is not read).
    let c = secret_credential(&ctx)
        .env(Env::from_map::<&str, &str>([]))
        .build()
        .unwrap();
    let _ = expect_error(&c).await;
    assert_eq!(proxy.seen().len(), 1);
}

#[tokio::test]
async fn the_builders_proxy_option_is_used() {
    let (ctx, _) = ctx_with_app().await;
    let proxy = ConnectProxy::start().await;
    let c = secret_credential(&ctx)
        .env(Env::from_map::<&str, &str>([]))
        .proxy(ProxyOptions::https(&proxy.url).unwrap())
        .build()
        .unwrap();
    let _ = expect_error(&c).await;
    assert_eq!(proxy.seen().len(), 1, "{:?}", proxy.seen());
}

#[tokio::test]
async fn no_proxy_is_honoured() {
    let (ctx, oid) = ctx_with_app().await;
    let proxy = ConnectProxy::start().await;
    for no_proxy in ["127.0.0.1", "127.0.0.0/8", "*", "example.com, 127.0.0.1"] {
        let env = Env::from_map([("HTTPS_PROXY", proxy.url.as_str()), ("NO_PROXY", no_proxy)]);
        let http = client_with(&ctx, ProxyOptions::from_env(&env).unwrap());
        let c = secret_credential(&ctx).http_client(http).build().unwrap();
        ctx.expect_token(&c, &oid).await;
        assert!(
            proxy.seen().is_empty(),
            "NO_PROXY={no_proxy}: {:?}",
            proxy.seen()
        );
    }
    // A list that does not name the host: through the proxy (lower-case `no_proxy` read too).
    let env = Env::from_map([
        ("HTTPS_PROXY", proxy.url.as_str()),
        ("no_proxy", "example.com"),
    ]);
    let c = secret_credential(&ctx)
        .http_client(client_with(&ctx, ProxyOptions::from_env(&env).unwrap()))
        .build()
        .unwrap();
    ctx.expect_token(&c, &oid).await;
    assert_eq!(proxy.seen().len(), 1);
}

/// Managed identity over the emulator's HTTPS listener (so an HTTPS proxy would apply to it), with a proxied
/// client and every proxy variable set: the request goes directly.
#[tokio::test]
async fn managed_identity_never_uses_the_proxy() {
    let ctx = Ctx::start().await;
    let system = ctx
        .emu
        .add_managed_identity(ManagedIdentity::system_assigned())
        .unwrap();
    let proxy = ConnectProxy::start().await;
    let endpoint = format!("{}/msi/token", ctx.emu.https_url());
    let env = Env::from_map([
        ("IDENTITY_ENDPOINT", endpoint.as_str()),
        ("IDENTITY_HEADER", ctx.emu.app_service_secret()),
        ("HTTPS_PROXY", proxy.url.as_str()),
        ("HTTP_PROXY", proxy.url.as_str()),
        ("ALL_PROXY", proxy.url.as_str()),
    ]);
    let http = client_with(&ctx, ProxyOptions::from_env(&env).unwrap());
    assert!(http.uses_proxy());
    let c = ManagedIdentityCredential::builder()
        .env(env)
        .http_client(http.clone())
        .build()
        .unwrap();
    assert_eq!(c.source(), ManagedIdentitySource::AppService);
    ctx.expect_token(&c, &system.oid).await;
    assert!(proxy.seen().is_empty(), "{:?}", proxy.seen());
    assert_eq!(ctx.emu.requests_to(Endpoint::AppService).len(), 1);
    // The same client does use the proxy for a token endpoint (so the check above can fail).
    let app = ctx
        .emu
        .add_app(App::new("proxied-app").secret("s"))
        .unwrap();
    let c = secret_credential(&ctx).http_client(http).build().unwrap();
    ctx.expect_token(&c, &app.oid).await;
    assert_eq!(proxy.seen().len(), 1);
}

#[test]
fn bad_proxy_urls_are_refused_without_repeating_them() {
    for bad in ["socks5://u:hunter2@proxy:1080", "http://", "::::hunter2"] {
        let err = ProxyOptions::https(bad).unwrap_err();
        assert!(matches!(err, Error::Configuration { .. }), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
    let env = Env::from_map([("HTTPS_PROXY", "ftp://u:hunter2@proxy")]);
    let err = ProxyOptions::from_env(&env).unwrap_err();
    assert!(err.to_string().contains("HTTPS_PROXY"), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    // `host:port` means http://host:port.
    assert!(
        ProxyOptions::https("proxy.contoso.com:3128")
            .unwrap()
            .is_enabled()
    );
}
