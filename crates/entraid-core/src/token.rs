//! [`Token`]: a validated access token with its claims and timing, ready to send as Redis credentials.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::Error;
use crate::jwt::Claims;
use crate::response::IdentityProviderResponse;
use crate::secret::Secret;

/// A validated access token: the secret JWT, its claims, and when it was received, expires and should be refreshed.
///
/// A `Token` always has a string `oid` claim (its Redis username) and had not expired when it was received.
/// `Debug` shows no secret.
///
/// ```
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use entraid_core::{IdentityProviderResponse, Token, unsigned_jwt};
///
/// let now = SystemTime::now();
/// let exp = now.duration_since(UNIX_EPOCH).unwrap().as_secs() + 3600;
/// let jwt = unsigned_jwt(&serde_json::json!({"oid": "0000-1111", "exp": exp}));
/// let token = Token::from_response(IdentityProviderResponse::raw_token(jwt), now).unwrap();
/// assert_eq!(token.username(), "0000-1111");
/// assert!(token.lifetime() > Duration::from_secs(3590));
/// ```
#[derive(Debug, Clone)]
pub struct Token {
    access_token: Secret,
    claims: Claims,
    username: String,
    received_at: SystemTime,
    expires_on: SystemTime,
    refresh_on: Option<SystemTime>,
}

impl Token {
    /// Builds a token from an identity-provider response received at `received_at` (wall-clock time).
    ///
    /// Expiry comes from, in order: the response's absolute expiry, its `expires_in` (relative to receipt), the
    /// JWT's `exp` claim. The refresh-on time comes from the response's `refresh_on` / `refresh_in`, when given.
    ///
    /// # Errors
    /// [`Error::InvalidToken`] when the access token is not a JWT, [`Error::MissingClaim`] without a string `oid`
    /// (or without any expiry), [`Error::TokenExpired`] when it expired before `received_at`.
    pub fn from_response(
        response: IdentityProviderResponse,
        received_at: SystemTime,
    ) -> Result<Self, Error> {
        let (access_token, expires_on, refresh_on) = match response {
            IdentityProviderResponse::RawToken(token) => (token, None, None),
            IdentityProviderResponse::AccessToken(at) => {
                (at.token, Some(at.expires_on), at.refresh_on)
            }
            IdentityProviderResponse::TokenResponse(r) => {
                let expires_on = r.expires_at(received_at);
                let refresh_on = r.refresh_in.map(|s| received_at + Duration::from_secs(s));
                (r.access_token, expires_on, refresh_on)
            }
        };
        let claims = Claims::from_jwt(access_token.expose_secret())?;
        let username = claims
            .oid()
            .ok_or(Error::MissingClaim { claim: "oid" })?
            .to_owned();
        let expires_on = match expires_on {
            Some(t) => t,
            None => {
                let exp = claims.exp().ok_or(Error::MissingClaim { claim: "exp" })?;
                UNIX_EPOCH + Duration::from_secs(u64::try_from(exp).unwrap_or(0))
            }
        };
        if expires_on <= received_at {
            let seconds_ago = received_at
                .duration_since(expires_on)
                .unwrap_or_default()
                .as_secs();
            return Err(Error::TokenExpired { seconds_ago });
        }
        Ok(Self {
            access_token,
            claims,
            username,
            received_at,
            expires_on,
            refresh_on,
        })
    }

    /// The Redis username: the token's `oid` claim.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The access token, the Redis password.
    ///
    /// # Security
    /// This is the secret itself: send it in `AUTH` and nowhere else; never log it.
    pub fn access_token(&self) -> &Secret {
        &self.access_token
    }

    /// The token's claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// When the token was received (wall clock).
    pub fn received_at(&self) -> SystemTime {
        self.received_at
    }

    /// When the token expires (wall clock).
    pub fn expires_on(&self) -> SystemTime {
        self.expires_on
    }

    /// When the issuer recommends refreshing, if it said.
    pub fn refresh_on(&self) -> Option<SystemTime> {
        self.refresh_on
    }

    /// How long the token was valid for when received: `expires_on - received_at`.
    pub fn lifetime(&self) -> Duration {
        self.expires_on
            .duration_since(self.received_at)
            .unwrap_or_default()
    }

    /// How long after receipt the issuer recommends refreshing, if it said.
    pub fn refresh_in(&self) -> Option<Duration> {
        self.refresh_on
            .map(|t| t.duration_since(self.received_at).unwrap_or_default())
    }

    /// Time left at `now`; zero once expired.
    pub fn remaining(&self, now: SystemTime) -> Duration {
        self.expires_on.duration_since(now).unwrap_or_default()
    }

    /// Whether the token has expired at `now`.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        now >= self.expires_on
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::unsigned_jwt;
    use crate::response::{AccessToken, TokenResponse};
    use serde_json::json;

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    fn jwt(claims: serde_json::Value) -> String {
        unsigned_jwt(&claims)
    }

    #[test]
    fn raw_token_uses_exp() {
        let token = Token::from_response(
            IdentityProviderResponse::raw_token(jwt(json!({"oid": "u1", "exp": 1000}))),
            at(100),
        )
        .unwrap();
        assert_eq!(token.username(), "u1");
        assert_eq!(token.expires_on(), at(1000));
        assert_eq!(token.lifetime(), Duration::from_secs(900));
        assert_eq!(token.remaining(at(400)), Duration::from_secs(600));
        assert!(!token.is_expired(at(999)) && token.is_expired(at(1000)));
        assert_eq!(token.refresh_on(), None);
        assert_eq!(token.received_at(), at(100));
        assert_eq!(token.claims().oid(), Some("u1"));
    }

    #[test]
    fn access_token_uses_its_expiry() {
        let response = AccessToken::new(jwt(json!({"oid": "u2", "exp": 99999})), at(500))
            .with_refresh_on(at(300));
        let token = Token::from_response(response.into(), at(100)).unwrap();
        assert_eq!(token.expires_on(), at(500));
        assert_eq!(token.refresh_in(), Some(Duration::from_secs(200)));
    }

    #[test]
    fn token_response_prefers_expires_on_then_expires_in_then_exp() {
        let body = format!(
            r#"{{"access_token":"{}","expires_in":100,"refresh_in":50}}"#,
            jwt(json!({"oid": "u", "exp": 9999}))
        );
        let token = Token::from_response(
            TokenResponse::from_json(body.as_bytes()).unwrap().into(),
            at(10),
        )
        .unwrap();
        assert_eq!(token.expires_on(), at(110));
        assert_eq!(token.refresh_on(), Some(at(60)));

        let body = format!(
            r#"{{"access_token":"{}","expires_on":"700","expires_in":100}}"#,
            jwt(json!({"oid": "u"}))
        );
        let token = Token::from_response(
            TokenResponse::from_json(body.as_bytes()).unwrap().into(),
            at(10),
        )
        .unwrap();
        assert_eq!(token.expires_on(), at(700));

        let body = format!(
            r#"{{"access_token":"{}"}}"#,
            jwt(json!({"oid": "u", "exp": 50}))
        );
        let token = Token::from_response(
            TokenResponse::from_json(body.as_bytes()).unwrap().into(),
            at(10),
        )
        .unwrap();
        assert_eq!(token.expires_on(), at(50));
    }

    #[test]
    fn missing_or_non_string_oid_is_an_error() {
        for claims in [
            json!({"exp": 1000}),
            json!({"oid": 42, "exp": 1000}),
            json!({"oid": null, "exp": 1000}),
        ] {
            let err = Token::from_response(IdentityProviderResponse::raw_token(jwt(claims)), at(1))
                .unwrap_err();
            assert!(
                matches!(err, Error::MissingClaim { claim: "oid" }),
                "{err:?}"
            );
        }
    }

    #[test]
    fn no_expiry_anywhere_is_an_error() {
        let err = Token::from_response(
            IdentityProviderResponse::raw_token(jwt(json!({"oid": "u"}))),
            at(1),
        )
        .unwrap_err();
        assert!(
            matches!(err, Error::MissingClaim { claim: "exp" }),
            "{err:?}"
        );
    }

    #[test]
    fn expired_token_is_refused() {
        let err = Token::from_response(
            IdentityProviderResponse::raw_token(jwt(json!({"oid": "u", "exp": 100}))),
            at(160),
        )
        .unwrap_err();
        assert!(
            matches!(err, Error::TokenExpired { seconds_ago: 60 }),
            "{err:?}"
        );
    }

    #[test]
    fn not_a_jwt_is_an_error() {
        let err = Token::from_response(IdentityProviderResponse::raw_token("opaque-secret"), at(1))
            .unwrap_err();
        assert!(matches!(err, Error::InvalidToken(_)), "{err:?}");
        assert!(!format!("{err} {err:?}").contains("opaque-secret"));
    }

    #[test]
    fn debug_shows_no_secret() {
        let raw = jwt(json!({"oid": "u", "exp": 1000}));
        let token =
            Token::from_response(IdentityProviderResponse::raw_token(raw.clone()), at(1)).unwrap();
        let shown = format!("{token:?} {token:#?}");
        let payload = raw.split('.').nth(1).unwrap();
        assert!(!shown.contains(payload), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }
}
