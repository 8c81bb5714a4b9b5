//! What an identity provider returns: [`IdentityProviderResponse`], in one of three kinds, as the go-redis-entraid
//! README has them: a raw token string, an access token with its expiry, or a full OAuth token response.
//!
//! The full response, [`TokenResponse`], and its JSON reader live in `token_response.rs`.

use std::time::SystemTime;

use crate::secret::Secret;
use crate::token_response::TokenResponse;

/// What an [`IdentityProvider`](crate::IdentityProvider) returns.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum IdentityProviderResponse {
    /// A raw JWT access token; its expiry comes from its `exp` claim.
    RawToken(Secret),
    /// An access token with a known expiry (as the Azure SDKs' `AccessToken`).
    AccessToken(AccessToken),
    /// A full OAuth 2.0 token response (as MSAL's `AuthResult`).
    TokenResponse(Box<TokenResponse>),
}

impl IdentityProviderResponse {
    /// A raw JWT access token.
    pub fn raw_token(token: impl Into<Secret>) -> Self {
        Self::RawToken(token.into())
    }

    /// An access token with its expiry.
    pub fn access_token(token: impl Into<Secret>, expires_on: SystemTime) -> Self {
        Self::AccessToken(AccessToken {
            token: token.into(),
            expires_on,
            refresh_on: None,
        })
    }

    /// The kind of response, as a stable name: `RawToken`, `AccessToken` or `TokenResponse`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::RawToken(_) => "RawToken",
            Self::AccessToken(_) => "AccessToken",
            Self::TokenResponse(_) => "TokenResponse",
        }
    }
}

impl From<TokenResponse> for IdentityProviderResponse {
    fn from(value: TokenResponse) -> Self {
        Self::TokenResponse(Box::new(value))
    }
}

impl From<AccessToken> for IdentityProviderResponse {
    fn from(value: AccessToken) -> Self {
        Self::AccessToken(value)
    }
}

/// An access token with its expiry.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AccessToken {
    /// The access token (a JWT).
    pub token: Secret,
    /// When it expires.
    pub expires_on: SystemTime,
    /// When the issuer recommends refreshing it, if it said.
    pub refresh_on: Option<SystemTime>,
}

impl AccessToken {
    /// An access token with its expiry.
    pub fn new(token: impl Into<Secret>, expires_on: SystemTime) -> Self {
        Self {
            token: token.into(),
            expires_on,
            refresh_on: None,
        }
    }

    /// Sets the recommended refresh time.
    pub fn with_refresh_on(mut self, refresh_on: SystemTime) -> Self {
        self.refresh_on = Some(refresh_on);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn debug_hides_every_token() {
        let body = br#"{"access_token":"AT-SECRET","refresh_token":"RT-SECRET","id_token":"ID-SECRET","expires_in":1}"#;
        let response = TokenResponse::from_json(body).unwrap();
        let shown = format!(
            "{response:?} {:?}",
            IdentityProviderResponse::from(response.clone())
        );
        assert!(!shown.contains("SECRET"), "{shown}");
        let shown = format!(
            "{:?} {:?}",
            IdentityProviderResponse::raw_token("RAW-SECRET"),
            IdentityProviderResponse::access_token("AT-SECRET", at(5))
        );
        assert!(!shown.contains("SECRET"), "{shown}");
    }

    #[test]
    fn kinds() {
        assert_eq!(IdentityProviderResponse::raw_token("t").kind(), "RawToken");
        assert_eq!(
            IdentityProviderResponse::access_token("t", at(1)).kind(),
            "AccessToken"
        );
        assert_eq!(
            IdentityProviderResponse::from(TokenResponse::new("t")).kind(),
            "TokenResponse"
        );
        let token = AccessToken::new("t", at(10)).with_refresh_on(at(5));
        assert_eq!(token.refresh_on, Some(at(5)));
    }
}
