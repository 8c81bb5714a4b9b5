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
    /// The longest lifetime a token may have: 365 days.
    ///
    /// Entra ID access tokens live from minutes to about a day; an expiry further away than this (or a number
    /// too large for a time at all) is taken for a garbled value. A response whose own expiry is beyond the cap
    /// falls back on the token's `exp` claim; a token whose `exp` is beyond it too is refused.
    pub const MAX_LIFETIME: Duration = crate::token_response::MAX_LIFETIME;

    /// Builds a token from an identity-provider response received at `received_at` (wall-clock time).
    ///
    /// Expiry comes from, in order: the response's absolute expiry, its `expires_in` (relative to receipt), the
    /// JWT's `exp` claim. A response expiry that could not be read ([`TokenResponse::unreadable`]) or is more than
    /// [`Token::MAX_LIFETIME`] away is passed over for `exp`. The refresh-on time comes from the response's
    /// `refresh_on` / `refresh_in`, when given (and representable).
    ///
    /// # Errors
    /// [`Error::InvalidToken`] when the access token is not a JWT, [`Error::MissingClaim`] without a string `oid`
    /// (or without any expiry), [`Error::InvalidResponse`] when the only expiry is out of range (or the response's
    /// is unreadable and the token has no `exp`), [`Error::TokenExpired`] when it expired before `received_at`.
    /// No error holds any part of the token.
    ///
    /// [`TokenResponse::unreadable`]: crate::TokenResponse::unreadable
    pub fn from_response(
        response: IdentityProviderResponse,
        received_at: SystemTime,
    ) -> Result<Self, Error> {
        let (access_token, stated, refresh_on) = match response {
            IdentityProviderResponse::RawToken(token) => (token, Stated::None, None),
            IdentityProviderResponse::AccessToken(at) => (
                at.token,
                Stated::At(at.expires_on, "expires_on"),
                at.refresh_on,
            ),
            IdentityProviderResponse::TokenResponse(r) => {
                let stated = match (r.expires_on, r.expires_in) {
                    (Some(t), _) => Stated::At(t, "expires_on"),
                    (None, Some(s)) => match received_at.checked_add(Duration::from_secs(s)) {
                        Some(t) => Stated::At(t, "expires_in"),
                        None => Stated::Unusable("expires_in"),
                    },
                    // Only an unreadable expiry stands for one (not `refresh_in` or `ext_expires_in`).
                    (None, None) => match r
                        .unreadable()
                        .iter()
                        .find(|u| matches!(u.field, "expires_on" | "expires_in" | "expiresOn"))
                    {
                        Some(field) => Stated::Unusable(field.field),
                        None => Stated::None,
                    },
                };
                let refresh_on = r
                    .refresh_in
                    .and_then(|s| received_at.checked_add(Duration::from_secs(s)));
                (r.access_token, stated, refresh_on)
            }
        };
        let claims = Claims::from_jwt(access_token.expose_secret())?;
        let username = claims
            .oid()
            .ok_or(Error::MissingClaim { claim: "oid" })?
            .to_owned();
        // `None` only when `received_at` itself is near the end of time: then nothing is "too far".
        let cap = received_at.checked_add(Self::MAX_LIFETIME);
        let within_cap = |t: SystemTime| cap.is_none_or(|cap| t <= cap);
        let expires_on = match stated {
            Stated::At(t, _) if within_cap(t) => t,
            stated => {
                let exp = claims.exp().map(|exp| {
                    u64::try_from(exp)
                        .ok()
                        .and_then(|s| UNIX_EPOCH.checked_add(Duration::from_secs(s)))
                });
                match (exp, stated) {
                    (Some(Some(t)), _) if within_cap(t) => t,
                    // A negative `exp` is long past.
                    (Some(None), _) if claims.exp().is_some_and(|e| e < 0) => UNIX_EPOCH,
                    (Some(_), _) => {
                        return Err(Error::invalid_response(format!(
                            "the token's `exp` claim is more than {} days away (the lifetime cap)",
                            Self::MAX_LIFETIME.as_secs() / 86_400
                        )));
                    }
                    (None, Stated::None) => return Err(Error::MissingClaim { claim: "exp" }),
                    (None, Stated::At(_, field)) => {
                        return Err(Error::invalid_response(format!(
                            "the response's `{field}` is more than {} days away (the lifetime cap) and the \
                             token has no `exp` claim",
                            Self::MAX_LIFETIME.as_secs() / 86_400
                        )));
                    }
                    (None, Stated::Unusable(field)) => {
                        return Err(Error::invalid_response(format!(
                            "the response's `{field}` could not be read and the token has no `exp` claim"
                        )));
                    }
                }
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

/// The expiry a response states, before the checks.
enum Stated {
    /// None: the token's `exp` decides.
    None,
    /// This time, from this field.
    At(SystemTime, &'static str),
    /// The field was there but could not be read or used.
    Unusable(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response::AccessToken;
    use crate::test_util::unsigned_jwt;
    use crate::token_response::TokenResponse;
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

    fn from_body(body: &str, received: SystemTime) -> Result<Token, Error> {
        Token::from_response(TokenResponse::from_json(body.as_bytes())?.into(), received)
    }

    /// The four responses that panicked (issue 12): with an `exp` in the token they give a token that expires at
    /// `exp`; without one, a typed error that names the field and holds no part of the token.
    #[test]
    fn unreadable_or_absurd_expiries_fall_back_on_exp() {
        let now = 1_750_000_000;
        for field in [
            r#""expires_on":"2025-06-17T14:30:00+1é1""#,
            r#""expires_in":1e300"#,
            r#""expires_on":"99999999999999999999""#,
            r#""expires_on":"Sun, 06 Nov 300000000000 08:49:37 GMT""#,
            r#""expires_in":"soon""#,
            r#""expires_in":31536001"#,
            r#""expires_on":1850000000"#,
        ] {
            let with_exp = jwt(json!({"oid": "u", "exp": now + 3600}));
            let token = from_body(
                &format!(r#"{{"access_token":"{with_exp}",{field}}}"#),
                at(now),
            )
            .unwrap_or_else(|e| panic!("{field}: {e}"));
            assert_eq!(token.expires_on(), at(now + 3600), "{field}");

            let without_exp = jwt(json!({"oid": "u", "secret_marker": "TOKEN-TEXT"}));
            let err = from_body(
                &format!(r#"{{"access_token":"{without_exp}",{field}}}"#),
                at(now),
            )
            .unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(
                matches!(err, Error::InvalidResponse { .. }),
                "{field}: {shown}"
            );
            assert!(shown.contains("`expires_"), "{field}: {shown}");
            assert!(
                !shown.contains(without_exp.split('.').nth(1).unwrap()),
                "{shown}"
            );
            assert!(
                !shown.contains("99999") && !shown.contains("1e300"),
                "{shown}"
            );
        }
    }

    #[test]
    fn an_unreadable_refresh_in_is_not_taken_for_the_expiry() {
        let body = format!(
            r#"{{"access_token":"{}","refresh_in":"soon","ext_expires_in":-1}}"#,
            jwt(json!({"oid": "u"}))
        );
        let err = from_body(&body, at(10)).unwrap_err();
        assert!(
            matches!(err, Error::MissingClaim { claim: "exp" }),
            "{err:?}"
        );
    }

    #[test]
    fn lifetimes_are_capped_and_arithmetic_never_overflows() {
        let now = 1_750_000_000;
        let max = Token::MAX_LIFETIME.as_secs();
        // Exactly at the cap is fine; beyond it, from `exp` alone, is refused.
        let token = Token::from_response(
            IdentityProviderResponse::raw_token(jwt(json!({"oid": "u", "exp": now + max}))),
            at(now),
        )
        .unwrap();
        assert_eq!(token.lifetime(), Token::MAX_LIFETIME);
        for exp in [
            json!(now + max + 1),
            json!(i64::MAX),
            json!(1e300),
            json!(u64::MAX),
        ] {
            let err = Token::from_response(
                IdentityProviderResponse::raw_token(jwt(json!({"oid": "u", "exp": exp}))),
                at(now),
            )
            .unwrap_err();
            assert!(err.to_string().contains("lifetime cap"), "{exp}: {err}");
        }
        // A negative `exp` is long expired.
        let err = Token::from_response(
            IdentityProviderResponse::raw_token(jwt(json!({"oid": "u", "exp": -5}))),
            at(now),
        )
        .unwrap_err();
        assert!(matches!(err, Error::TokenExpired { .. }), "{err:?}");
        // An AccessToken with an absurd expiry falls back on `exp` too.
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX) * 100);
        let token = Token::from_response(
            AccessToken::new(jwt(json!({"oid": "u", "exp": now + 60})), far).into(),
            at(now),
        )
        .unwrap();
        assert_eq!(token.expires_on(), at(now + 60));
        // Fields set directly to huge values, past anything `from_json` lets through.
        let mut response = TokenResponse::new(jwt(json!({"oid": "u", "exp": now + 60})));
        response.expires_in = Some(u64::MAX);
        response.refresh_in = Some(u64::MAX);
        let token = Token::from_response(response.into(), at(now)).unwrap();
        assert_eq!(
            (token.expires_on(), token.refresh_on()),
            (at(now + 60), None)
        );
        // A receipt time near the end of what SystemTime holds does not overflow either.
        let late = SystemTime::UNIX_EPOCH + Duration::from_secs(i64::MAX as u64 - 10);
        let mut response = TokenResponse::new(jwt(json!({"oid": "u", "exp": 5})));
        response.expires_in = Some(3600);
        let err = Token::from_response(response.into(), late).unwrap_err();
        assert!(matches!(err, Error::TokenExpired { .. }), "{err:?}");
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
