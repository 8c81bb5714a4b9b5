//! [`DeviceCodeCredential`]: the device code flow, for a user signing in on another device.
//!
//! `POST {authority}/oauth2/v2.0/devicecode` (client id, scope) answers a user code, a verification URI, a
//! message, `expires_in` and `interval`. The callback gets that [`DeviceCodeInfo`] to show; then the token
//! endpoint is polled every `interval` (5 s when absent) with the device code grant: `authorization_pending` waits,
//! `slow_down` adds 5 s to the interval, every other answer is final (`authorization_declined`, `expired_token`,
//! ...), and polling stops when the code expires or the credential's timeout (15 minutes by default) has passed,
//! whichever comes first. Waiting runs on tokio's clock, and every duration the server sends is clamped, so no
//! answer can overflow the arithmetic. Once a response carried a refresh token, later requests redeem it first and
//! only ask the user again when it is refused. The credential's [`RequestHint`] is interactive: a token manager
//! waits the whole sign-in and does not repeat a declined or expired one into a new code.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use entraid_core::{Error, Secret, TokenResponse};
use serde::Deserialize;
use tokio::time::Instant;

use crate::form::Form;
use crate::http::Request;
use crate::refresh_token::{InteractiveFlow, RefreshTokens, interactive_identity_provider};
use crate::token_endpoint::{
    ClientProfile, CommonBuilder, Grant, TokenEndpointClient, common_builder_methods,
};

const NAME: &str = "DeviceCode";

/// The polling interval when the device authorization answer names none: 5 s.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// How much `slow_down` adds to the polling interval: 5 s.
pub const SLOW_DOWN_INCREMENT: Duration = Duration::from_secs(5);

/// How long the user has to enter the code by default: 15 minutes (Entra's own device code lifetime). A code
/// that expires sooner ends the wait sooner.
pub(crate) const DEVICE_CODE_TIMEOUT: Duration = Duration::from_secs(900);

/// The longest polling interval honoured (a larger `interval` or `slow_down` total is cut to this): 5 minutes.
pub(crate) const MAX_POLL_INTERVAL: Duration = Duration::from_secs(300);

/// How long the user is given: the code's `expires_in` (900 s when absent), at most `timeout`.
fn user_wait(expires_in: Option<u64>, timeout: Duration) -> Duration {
    Duration::from_secs(expires_in.unwrap_or(900)).min(timeout)
}

/// The polling interval the server asked for (5 s when absent or zero), at most 5 minutes.
fn poll_interval(interval: Option<u64>) -> Duration {
    interval
        .filter(|i| *i > 0)
        .map_or(DEFAULT_POLL_INTERVAL, Duration::from_secs)
        .min(MAX_POLL_INTERVAL)
}

/// The interval after a `slow_down`: 5 s more, at most 5 minutes.
fn slowed_down(interval: Duration) -> Duration {
    interval
        .saturating_add(SLOW_DOWN_INCREMENT)
        .min(MAX_POLL_INTERVAL)
}

/// `now + wait`, or the furthest instant tokio can represent when that overflows.
fn deadline_after(now: Instant, wait: Duration) -> Instant {
    now.checked_add(wait)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365))
}

/// What to show the user: where to go and which code to enter.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeviceCodeInfo {
    /// The code the user enters.
    pub user_code: String,
    /// Where the user enters it.
    pub verification_uri: String,
    /// Entra's ready-made sentence with both.
    pub message: String,
    /// How long the code is valid.
    pub expires_in: Duration,
    /// The polling interval Entra asked for.
    pub interval: Duration,
}

type Callback = dyn Fn(&DeviceCodeInfo) + Send + Sync;

/// The device authorization answer.
#[derive(Deserialize)]
struct DeviceAuthorization {
    user_code: String,
    device_code: Secret,
    #[serde(alias = "verification_url")]
    verification_uri: String,
    #[serde(default, deserialize_with = "seconds")]
    expires_in: Option<u64>,
    #[serde(default, deserialize_with = "seconds")]
    interval: Option<u64>,
    #[serde(default)]
    message: Option<String>,
}

fn seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::Number(n)) => Ok(n.as_u64()),
        Some(serde_json::Value::String(s)) => Ok(s.trim().parse().ok()),
        _ => Ok(None),
    }
}

/// A user signing in with a code on another device (a phone, a laptop's browser).
///
/// ```
/// use entraid_identity::DeviceCodeCredential;
///
/// let credential = DeviceCodeCredential::builder()
///     .tenant_id("contoso.onmicrosoft.com")
///     .callback(|info| {
///         // Show it to the user, for example in your UI or on the terminal.
///         let _ = (&info.user_code, &info.verification_uri, &info.message);
///     })
///     .build()
///     .unwrap();
/// # let _ = credential;
/// ```
pub struct DeviceCodeCredential {
    client: TokenEndpointClient,
    callback: Arc<Callback>,
    timeout: Duration,
    tokens: RefreshTokens,
}

impl fmt::Debug for DeviceCodeCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCodeCredential")
            .field("client", &self.client)
            .field("timeout", &self.timeout)
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

impl DeviceCodeCredential {
    /// A builder.
    pub fn builder() -> DeviceCodeCredentialBuilder {
        DeviceCodeCredentialBuilder::default()
    }

    async fn sign_in(&self) -> Result<TokenResponse, Error> {
        let endpoint = self.client.device_code_endpoint().await?;
        let form = Form::new()
            .field("client_id", self.client.client_id())
            .field("scope", self.client.scope());
        let response = self
            .client
            .http()
            .send(Request::post_form(NAME, endpoint, form))
            .await?;
        if !response.is_success() {
            return Err(response.error(NAME));
        }
        let authorization: DeviceAuthorization =
            serde_json::from_slice(&response.body).map_err(|e| {
                Error::invalid_response(format!(
                    "{NAME}: the device authorization answer is not the expected JSON (line {} column {})",
                    e.line(),
                    e.column()
                ))
            })?;
        let expires_in = user_wait(authorization.expires_in, self.timeout);
        let mut interval = poll_interval(authorization.interval);
        let info = DeviceCodeInfo {
            message: authorization.message.clone().unwrap_or_else(|| {
                format!(
                    "To sign in, use a web browser to open the page {} and enter the code {} to authenticate.",
                    authorization.verification_uri, authorization.user_code
                )
            }),
            user_code: authorization.user_code,
            verification_uri: authorization.verification_uri,
            expires_in,
            interval,
        };
        (self.callback)(&info);
        let deadline = deadline_after(Instant::now(), expires_in);
        let device_code = authorization.device_code;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::authentication_failed(
                    NAME,
                    format!(
                        "the device code expired after {} s before the user signed in",
                        expires_in.as_secs()
                    ),
                ));
            }
            // The last poll comes at the deadline, not an interval after it.
            tokio::time::sleep_until(deadline_after(now, interval).min(deadline)).await;
            let result = self
                .client
                .request_grant(
                    Grant::DeviceCode {
                        device_code: &device_code,
                    },
                    crate::token_endpoint::ClientProof::None,
                )
                .await;
            match result {
                Err(error) => match error.entra_error().map(|e| e.error.as_str()) {
                    Some("authorization_pending") => {
                        tracing::debug!("device code: waiting for the user");
                    }
                    Some("slow_down") => {
                        interval = slowed_down(interval);
                        tracing::debug!(
                            interval_s = interval.as_secs(),
                            "device code: slowing down"
                        );
                    }
                    _ => return Err(error),
                },
                Ok(response) => return Ok(response),
            }
        }
    }
}

impl DeviceCodeCredential {
    /// The flow as an identity provider: the person has the credential's timeout (default 15 minutes).
    fn flow(&self) -> InteractiveFlow<'_> {
        InteractiveFlow {
            client: &self.client,
            tokens: &self.tokens,
            person_time: self.timeout,
        }
    }
}

interactive_identity_provider!(DeviceCodeCredential);

/// Builds a [`DeviceCodeCredential`]. Defaults: tenant `organizations`, the Azure CLI's public client id, the
/// Redis scope, a callback that writes the message to standard error, and a 15-minute timeout.
#[derive(Default)]
pub struct DeviceCodeCredentialBuilder {
    common: CommonBuilder,
    callback: Option<Arc<Callback>>,
    timeout: Option<Duration>,
}

impl fmt::Debug for DeviceCodeCredentialBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCodeCredentialBuilder")
            .field("common", &self.common)
            .field("callback", &self.callback.is_some())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl DeviceCodeCredentialBuilder {
    common_builder_methods!(user);

    /// Called with the code to show, each time the user must sign in. Default: writes the message to standard
    /// error.
    pub fn callback(mut self, callback: impl Fn(&DeviceCodeInfo) + Send + Sync + 'static) -> Self {
        self.callback = Some(Arc::new(callback));
        self
    }

    /// How long the user has to enter the code. Default 15 minutes; a code that
    /// expires sooner ends the wait sooner.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Builds the credential, checking every setting.
    pub fn build(self) -> Result<DeviceCodeCredential, Error> {
        Ok(DeviceCodeCredential {
            client: self.common.build_for(NAME, ClientProfile::PublicUser)?,
            callback: self.callback.unwrap_or_else(|| Arc::new(print_message)),
            timeout: self.timeout.unwrap_or(DEVICE_CODE_TIMEOUT),
            tokens: RefreshTokens::default(),
        })
    }
}

#[allow(
    clippy::print_stderr,
    reason = "the default callback's job is to show the user the code"
)]
fn print_message(info: &DeviceCodeInfo) {
    eprintln!("{}", info.message);
}

#[cfg(test)]
mod tests {
    use super::*;
    use entraid_core::IdentityProvider as _;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn server_durations_are_clamped() {
        assert_eq!(user_wait(None, DEVICE_CODE_TIMEOUT), S(900));
        assert_eq!(user_wait(Some(120), DEVICE_CODE_TIMEOUT), S(120));
        assert_eq!(user_wait(Some(u64::MAX), DEVICE_CODE_TIMEOUT), S(900));
        assert_eq!(user_wait(Some(u64::MAX), Duration::MAX), S(u64::MAX));
        assert_eq!(poll_interval(None), S(5));
        assert_eq!(poll_interval(Some(0)), S(5));
        assert_eq!(poll_interval(Some(7)), S(7));
        assert_eq!(poll_interval(Some(u64::MAX)), MAX_POLL_INTERVAL);
        assert_eq!(slowed_down(S(5)), S(10));
        assert_eq!(slowed_down(Duration::MAX), MAX_POLL_INTERVAL);
        assert_eq!(slowed_down(MAX_POLL_INTERVAL), MAX_POLL_INTERVAL);
    }

    #[test]
    fn deadlines_never_overflow() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let now = Instant::now();
            assert_eq!(deadline_after(now, S(30)), now + S(30));
            assert!(deadline_after(now, Duration::MAX) > now + S(86_400));
            assert!(deadline_after(now, S(u64::MAX)) > now);
        });
    }

    #[test]
    fn the_hint_is_interactive_and_covers_the_whole_wait() {
        let credential = DeviceCodeCredential::builder()
            .tenant_id("contoso.onmicrosoft.com")
            .build()
            .unwrap();
        let hint = credential.request_hint();
        assert!(hint.is_interactive());
        assert_eq!(hint.max_duration(), Some(S(900 + 4 * 30)));
        let short = DeviceCodeCredential::builder()
            .tenant_id("contoso.onmicrosoft.com")
            .timeout(S(60))
            .build()
            .unwrap();
        assert_eq!(short.request_hint().max_duration(), Some(S(60 + 4 * 30)));
        let huge = DeviceCodeCredential::builder()
            .tenant_id("contoso.onmicrosoft.com")
            .timeout(Duration::MAX)
            .build()
            .unwrap();
        assert_eq!(huge.request_hint().max_duration(), Some(Duration::MAX));
    }
}
