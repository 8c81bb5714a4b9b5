//! [`InteractiveBrowserCredential`]: the user signs in with a browser (authorization code flow with PKCE S256).
//!
//! A listener is bound on `127.0.0.1`, port 0 (or the port you choose); the redirect URI is
//! `http://localhost:<port>`. The authorization URL carries a fresh `state` (16 random bytes) and the S256
//! challenge of a fresh verifier (32 random bytes from the operating system, base64url). The browser is opened
//! with the platform's opener, run without a shell (`xdg-open` on Linux and the BSDs, `open` on macOS, `rundll32
//! url.dll,FileProtocolHandler` on Windows, which, unlike `cmd /c start`, does not interpret the `&`s of the URL),
//! or with an opener you give; when none can be started, the URL is written to standard error for the user to
//! open. The listener answers every request: a redirect whose `state` does not match is refused (and waiting goes
//! on), one with `error` ends the flow with Entra's error, one with `code` is redeemed with the verifier. The whole
//! wait is bounded by a timeout (5 minutes by default, on tokio's clock). Later requests redeem the refresh token of
//! the last answer first. The credential's [`RequestHint`] is interactive: a token manager waits for the whole
//! sign-in and does not open a new browser tab in a loop after a declined or timed-out one.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use entraid_core::{BoxError, BoxFuture, EntraError, Error, Secret, TokenResponse};
use reqwest::Url;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::http::random_bytes;
use crate::refresh_token::{InteractiveFlow, RefreshTokens, interactive_identity_provider};
use crate::token_endpoint::{
    ClientProfile, CommonBuilder, Grant, TokenEndpointClient, common_builder_methods,
};

const NAME: &str = "InteractiveBrowser";

/// How long the user has to sign in by default: 5 minutes.
pub const BROWSER_TIMEOUT: Duration = Duration::from_secs(300);

/// The largest request head the listener reads.
const MAX_REQUEST: usize = 16 * 1024;

/// How long one connection to the listener may take to send its request.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the platform's browser opener may take.
const OPENER_TIMEOUT: Duration = Duration::from_secs(10);

type Opener = dyn Fn(String) -> BoxFuture<'static, Result<(), BoxError>> + Send + Sync;

/// What the redirect brought back.
enum Outcome {
    Code(Secret),
    Refused(EntraError),
}

/// A user signing in with a browser.
///
/// ```no_run
/// use entraid_core::IdentityProvider;
/// use entraid_identity::InteractiveBrowserCredential;
///
/// # async fn run() -> Result<(), entraid_core::Error> {
/// let credential = InteractiveBrowserCredential::builder()
///     .tenant_id("contoso.onmicrosoft.com")
///     .login_hint("alice@contoso.com")
///     .build()?;
/// let token = credential.request_token().await?; // opens the browser
/// # Ok(()) }
/// ```
pub struct InteractiveBrowserCredential {
    client: TokenEndpointClient,
    opener: Option<Arc<Opener>>,
    port: u16,
    timeout: Duration,
    login_hint: Option<String>,
    tokens: RefreshTokens,
}

impl fmt::Debug for InteractiveBrowserCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InteractiveBrowserCredential")
            .field("client", &self.client)
            .field("custom_opener", &self.opener.is_some())
            .field("port", &self.port)
            .field("timeout", &self.timeout)
            .field("login_hint", &self.login_hint)
            .field("tokens", &self.tokens)
            .finish()
    }
}

impl InteractiveBrowserCredential {
    /// A builder.
    pub fn builder() -> InteractiveBrowserCredentialBuilder {
        InteractiveBrowserCredentialBuilder::default()
    }

    async fn sign_in(&self) -> Result<TokenResponse, Error> {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .map_err(|e| {
                Error::custom(
                    format!(
                        "{NAME}: cannot listen on 127.0.0.1:{} for the redirect: {e}",
                        self.port
                    ),
                    false,
                )
            })?;
        let port = listener
            .local_addr()
            .map_err(|e| Error::custom(format!("{NAME}: the listener has no address: {e}"), false))?
            .port();
        let redirect_uri = format!("http://localhost:{port}");
        let verifier = Secret::new(URL_SAFE_NO_PAD.encode(random_bytes::<32>()?));
        let challenge = URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            verifier.expose_secret().as_bytes(),
        ));
        let state = URL_SAFE_NO_PAD.encode(random_bytes::<16>()?);
        let mut url = self.client.authorize_endpoint().await?;
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("client_id", self.client.client_id())
                .append_pair("response_type", "code")
                .append_pair("redirect_uri", &redirect_uri)
                .append_pair("scope", self.client.scope())
                .append_pair("state", &state)
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256")
                .append_pair("response_mode", "query")
                .append_pair("prompt", "select_account");
            if let Some(hint) = &self.login_hint {
                query.append_pair("login_hint", hint);
            }
        }
        tracing::debug!(port, "waiting for the browser's redirect");
        self.open(url).await;
        let outcome = tokio::time::timeout(self.timeout, wait_for_redirect(listener, state))
            .await
            .map_err(|_| {
                Error::authentication_failed(
                    NAME,
                    format!(
                        "no sign-in completed in the browser within {} s",
                        self.timeout.as_secs()
                    ),
                )
            })??;
        let code = match outcome {
            Outcome::Code(code) => code,
            Outcome::Refused(entra) => {
                return Err(Error::AuthenticationFailed {
                    credential: NAME.into(),
                    message: "the sign-in was refused".to_owned(),
                    status: None,
                    entra: Some(Box::new(entra)),
                });
            }
        };
        self.client
            .request_grant(
                Grant::AuthorizationCode {
                    code: &code,
                    verifier: &verifier,
                    redirect_uri: &redirect_uri,
                },
                crate::token_endpoint::ClientProof::None,
            )
            .await
    }

    /// Opens the browser; when that fails, writes the URL for the user.
    async fn open(&self, url: Url) {
        let result = match &self.opener {
            Some(opener) => opener(url.to_string()).await,
            None => open_with_platform(url.as_str()).await,
        };
        if let Err(error) = result {
            tracing::debug!(error = %error, "no browser could be opened; showing the URL");
            show_url(url.as_str());
        }
    }
}

#[allow(
    clippy::print_stderr,
    reason = "with no browser to open, the user must see the URL"
)]
fn show_url(url: &str) {
    eprintln!("Open this URL in a browser to sign in:\n{url}");
}

/// The platform's opener, run without a shell.
async fn open_with_platform(url: &str) -> Result<(), BoxError> {
    let (program, args): (&str, Vec<&str>) = if cfg!(target_os = "macos") {
        ("open", vec![url])
    } else if cfg!(windows) {
        ("rundll32", vec!["url.dll,FileProtocolHandler", url])
    } else {
        ("xdg-open", vec![url])
    };
    let status = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .status();
    match tokio::time::timeout(OPENER_TIMEOUT, status).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("{program} exited with {status}").into()),
        Ok(Err(e)) => Err(format!("{program}: {e}").into()),
        Err(_) => Err(format!("{program} did not finish").into()),
    }
}

/// Accepts connections until one brings a redirect with the expected `state`.
async fn wait_for_redirect(listener: TcpListener, state: String) -> Result<Outcome, Error> {
    let state = Arc::new(state);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = accepted.map_err(|e| {
                    Error::custom(format!("{NAME}: the redirect listener failed: {e}"), false)
                })?;
                connections.spawn(handle(stream, state.clone()));
            }
            Some(done) = connections.join_next() => {
                if let Ok(Some(outcome)) = done {
                    return Ok(outcome);
                }
            }
        }
    }
}

/// Reads one request and answers it; returns the outcome when it is the redirect with the right `state`.
async fn handle(mut stream: TcpStream, state: Arc<String>) -> Option<Outcome> {
    let target = tokio::time::timeout(CONNECTION_TIMEOUT, read_target(&mut stream))
        .await
        .ok()
        .flatten();
    let Some(target) = target else {
        respond(&mut stream, 400, "Bad request.").await;
        return None;
    };
    let params = query_params(&target);
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if get("code").is_none() && get("error").is_none() {
        respond(&mut stream, 404, "Not found.").await;
        return None;
    }
    if get("state") != Some(state.as_str()) {
        tracing::warn!("a redirect with the wrong state was refused");
        respond(
            &mut stream,
            400,
            "Sign-in failed: the response does not belong to this sign-in (state mismatch).",
        )
        .await;
        return None;
    }
    if let Some(code) = get("code").filter(|c| !c.is_empty()) {
        respond(
            &mut stream,
            200,
            "Signed in. You can close this window and go back to the application.",
        )
        .await;
        return Some(Outcome::Code(Secret::new(code)));
    }
    let entra = EntraError::from_json(
        serde_json::json!({
            "error": get("error").unwrap_or("unknown_error"),
            "error_description": get("error_description"),
        })
        .to_string()
        .as_bytes(),
    )
    .unwrap_or_default();
    respond(
        &mut stream,
        200,
        "Sign-in failed. You can close this window; the application has the details.",
    )
    .await;
    Some(Outcome::Refused(entra))
}

/// The request target of an HTTP/1 request (`GET /?code=... HTTP/1.1`).
async fn read_target(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_REQUEST {
            return None;
        }
    }
    let line = std::str::from_utf8(&head).ok()?.lines().next()?.to_owned();
    let mut parts = line.split(' ');
    let (method, target) = (parts.next()?, parts.next()?);
    (method == "GET").then(|| target.to_owned())
}

async fn respond(stream: &mut TcpStream, status: u16, message: &str) {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Bad Request",
    };
    let body = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Sign in</title></head><body><p>{message}</p></body></html>"
    );
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The decoded query parameters of a request target.
fn query_params(target: &str) -> Vec<(String, String)> {
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let query = query.split('#').next().unwrap_or("");
    Url::parse(&format!("http://localhost/?{query}"))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

impl InteractiveBrowserCredential {
    /// The flow as an identity provider: the person has the sign-in timeout (default 5 minutes) plus the browser
    /// opener's 10 s.
    fn flow(&self) -> InteractiveFlow<'_> {
        InteractiveFlow {
            client: &self.client,
            tokens: &self.tokens,
            person_time: self.timeout.saturating_add(OPENER_TIMEOUT),
        }
    }
}

interactive_identity_provider!(InteractiveBrowserCredential);

/// Builds an [`InteractiveBrowserCredential`]. Defaults: tenant `organizations`, the Azure CLI's public client
/// id, the Redis scope, the platform's browser opener, a random port, a 5-minute timeout, no login hint.
#[derive(Default)]
pub struct InteractiveBrowserCredentialBuilder {
    common: CommonBuilder,
    opener: Option<Arc<Opener>>,
    port: u16,
    timeout: Option<Duration>,
    login_hint: Option<String>,
}

impl fmt::Debug for InteractiveBrowserCredentialBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InteractiveBrowserCredentialBuilder")
            .field("common", &self.common)
            .field("custom_opener", &self.opener.is_some())
            .field("port", &self.port)
            .field("timeout", &self.timeout)
            .field("login_hint", &self.login_hint)
            .finish()
    }
}

impl InteractiveBrowserCredentialBuilder {
    common_builder_methods!(user);

    /// Opens the authorization URL (a test "browser", an embedded web view, a message to the user...). When it
    /// fails, the URL is written to standard error. Default: the platform's opener.
    pub fn browser_opener<F, Fut, E>(mut self, opener: F) -> Self
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.opener = Some(Arc::new(move |url| {
            let future = opener(url);
            Box::pin(async move { future.await.map_err(Into::into) })
        }));
        self
    }

    /// The loopback port to listen on. Default 0 (any free port).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// How long the user has to sign in. Default [`BROWSER_TIMEOUT`] (5 minutes).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The account to preselect (`login_hint`). Default: none.
    pub fn login_hint(mut self, username: impl Into<String>) -> Self {
        self.login_hint = Some(username.into());
        self
    }

    /// Builds the credential, checking every setting.
    pub fn build(self) -> Result<InteractiveBrowserCredential, Error> {
        Ok(InteractiveBrowserCredential {
            client: self.common.build_for(NAME, ClientProfile::PublicUser)?,
            opener: self.opener,
            port: self.port,
            timeout: self.timeout.unwrap_or(BROWSER_TIMEOUT),
            login_hint: self.login_hint,
            tokens: RefreshTokens::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use entraid_core::IdentityProvider as _;

    #[test]
    fn query_parameters_are_decoded() {
        let params =
            query_params("/?code=a%2Bb&state=x-y&error_description=AADSTS65004%3A+no#frag");
        assert_eq!(
            params,
            vec![
                ("code".to_owned(), "a+b".to_owned()),
                ("state".to_owned(), "x-y".to_owned()),
                ("error_description".to_owned(), "AADSTS65004: no".to_owned()),
            ]
        );
        assert!(query_params("/favicon.ico").is_empty());
    }

    #[test]
    fn the_hint_is_interactive_and_covers_the_whole_sign_in() {
        let credential = InteractiveBrowserCredential::builder()
            .tenant_id("contoso.onmicrosoft.com")
            .build()
            .unwrap();
        let hint = credential.request_hint();
        assert!(hint.is_interactive());
        assert_eq!(
            hint.max_duration(),
            Some(Duration::from_secs(300 + 10 + 4 * 30))
        );
        let huge = InteractiveBrowserCredential::builder()
            .tenant_id("contoso.onmicrosoft.com")
            .timeout(Duration::MAX)
            .build()
            .unwrap();
        assert_eq!(huge.request_hint().max_duration(), Some(Duration::MAX));
    }
}
