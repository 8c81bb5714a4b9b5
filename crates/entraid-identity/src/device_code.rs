//! [`DeviceCodeCredential`]: the device code flow, for a user signing in on another device.
//!
//! `POST {authority}/oauth2/v2.0/devicecode` (client id, scope) answers a user code, a verification URI, a
//! message, `expires_in` and `interval`. The callback gets that [`DeviceCodeInfo`] to show; then the token
//! endpoint is polled every `interval` (5 s when absent) with the device code grant: `authorization_pending` waits,
//! `slow_down` adds 5 s to the interval, every other answer is final (`authorization_declined`, `expired_token`,
//! ...), and polling stops when the code expires. Waiting runs on tokio's clock. Once a response carried a refresh
//! token, later requests redeem it first and only ask the user again when it is refused.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use entraid_core::{
    BoxFuture, Error, IdentityProvider, IdentityProviderResponse, Secret, TokenResponse,
};
use serde::Deserialize;

use crate::confidential::{
    ClientCredential, ClientKind, CommonBuilder, ConfidentialClient, Grant, common_builder_methods,
};
use crate::form::Form;
use crate::http::Request;
use crate::refresh::RefreshTokens;

const NAME: &str = "DeviceCode";

/// The polling interval when the device authorization answer names none: 5 s.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// How much `slow_down` adds to the polling interval: 5 s.
pub const SLOW_DOWN_INCREMENT: Duration = Duration::from_secs(5);

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
    client: ConfidentialClient,
    callback: Arc<Callback>,
    tokens: RefreshTokens,
}

impl fmt::Debug for DeviceCodeCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCodeCredential")
            .field("client", &self.client)
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
        let expires_in = Duration::from_secs(authorization.expires_in.unwrap_or(900));
        let mut interval = authorization
            .interval
            .filter(|i| *i > 0)
            .map_or(DEFAULT_POLL_INTERVAL, Duration::from_secs);
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
        let deadline = tokio::time::Instant::now() + expires_in;
        let device_code = authorization.device_code;
        loop {
            tokio::time::sleep(interval).await;
            if tokio::time::Instant::now() > deadline {
                return Err(Error::authentication_failed(
                    NAME,
                    format!(
                        "the device code expired after {} s before the user signed in",
                        expires_in.as_secs()
                    ),
                ));
            }
            let result = self
                .client
                .request_grant(
                    Grant::DeviceCode {
                        device_code: &device_code,
                    },
                    crate::confidential::ClientAuth::None,
                )
                .await;
            match result {
                Err(error) => match error.entra_error().map(|e| e.error.as_str()) {
                    Some("authorization_pending") => {
                        tracing::debug!("device code: waiting for the user");
                    }
                    Some("slow_down") => {
                        interval += SLOW_DOWN_INCREMENT;
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

impl IdentityProvider for DeviceCodeCredential {
    fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
        Box::pin(
            self.tokens
                .acquire(&self.client, &ClientCredential::None, || self.sign_in()),
        )
    }

    fn name(&self) -> &str {
        NAME
    }
}

/// Builds a [`DeviceCodeCredential`]. Defaults: tenant `organizations`, the Azure CLI's public client id, the
/// Redis scope, and a callback that writes the message to standard error.
#[derive(Default)]
pub struct DeviceCodeCredentialBuilder {
    common: CommonBuilder,
    callback: Option<Arc<Callback>>,
}

impl fmt::Debug for DeviceCodeCredentialBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCodeCredentialBuilder")
            .field("common", &self.common)
            .field("callback", &self.callback.is_some())
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

    /// Builds the credential, checking every setting.
    pub fn build(self) -> Result<DeviceCodeCredential, Error> {
        Ok(DeviceCodeCredential {
            client: self.common.build_for(NAME, ClientKind::PublicUser)?,
            callback: self.callback.unwrap_or_else(|| Arc::new(print_message)),
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
