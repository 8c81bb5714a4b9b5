//! What an identity provider returns: [`IdentityProviderResponse`], in one of three kinds, as the go-redis-entraid
//! README has them: a raw token string, an access token with its expiry, or a full OAuth token response.
//!
//! [`TokenResponse::from_json`] reads every token-response shape Entra ID and its neighbours send: the v2 token
//! endpoint (numbers), managed identity (strings, `expires_on` as unix seconds or a date), the Azure CLI
//! (`accessToken`/`expiresOn`) and the Azure Developer CLI (`token`/`expiresOn`).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::Value;

use crate::Error;
use crate::secret::Secret;

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

/// A full OAuth 2.0 token response.
///
/// Times are as sent: `expires_in`, `ext_expires_in` and `refresh_in` relative to receipt, `expires_on` absolute.
/// `Debug` shows no token.
#[derive(Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct TokenResponse {
    /// The access token.
    #[serde(alias = "accessToken", alias = "token")]
    pub access_token: Secret,
    /// Usually `Bearer`.
    #[serde(default, alias = "tokenType")]
    pub token_type: Option<String>,
    /// Seconds until expiry, from receipt.
    #[serde(default, deserialize_with = "de::opt_seconds")]
    pub expires_in: Option<u64>,
    /// Absolute expiry.
    #[serde(default, deserialize_with = "de::opt_time")]
    pub expires_on: Option<SystemTime>,
    /// The CLIs' `expiresOn` date; folded into `expires_on` when that is absent (the Azure CLI sends both).
    #[serde(default, rename = "expiresOn", deserialize_with = "de::opt_time")]
    expires_on_date: Option<SystemTime>,
    /// Seconds until the extended expiry (used by Entra during outages).
    #[serde(default, deserialize_with = "de::opt_seconds")]
    pub ext_expires_in: Option<u64>,
    /// Seconds until the issuer recommends refreshing.
    #[serde(default, deserialize_with = "de::opt_seconds")]
    pub refresh_in: Option<u64>,
    /// The granted scopes.
    #[serde(default)]
    pub scope: Option<String>,
    /// A refresh token (user flows).
    #[serde(default)]
    pub refresh_token: Option<Secret>,
    /// An OpenID Connect id token (user flows).
    #[serde(default)]
    pub id_token: Option<Secret>,
    /// The resource (managed identity).
    #[serde(default)]
    pub resource: Option<String>,
    /// The client id (user-assigned managed identity).
    #[serde(default)]
    pub client_id: Option<String>,
}

impl TokenResponse {
    /// The largest body [`TokenResponse::from_json`] reads: 1 MiB.
    pub const MAX_BODY_BYTES: usize = 1024 * 1024;

    /// A response holding only an access token.
    pub fn new(access_token: impl Into<Secret>) -> Self {
        Self {
            access_token: access_token.into(),
            ..Self::default()
        }
    }

    /// Parses a token-response body.
    ///
    /// Numbers may be JSON numbers or strings; `expires_on` may be unix seconds (number or string) or a date
    /// (`01/02/2006 15:04:05 +00:00`, `2006-01-02 15:04:05[.ffffff]`, RFC 3339); dates without an offset are read
    /// as UTC. Errors never contain the body, which may hold a token.
    ///
    /// ```
    /// use entraid_core::TokenResponse;
    ///
    /// let body = br#"{"access_token":"eyJ...","expires_in":"3599","expires_on":"1750156200","token_type":"Bearer"}"#;
    /// let response = TokenResponse::from_json(body).unwrap();
    /// assert_eq!(response.expires_in, Some(3599));
    /// assert_eq!(response.token_type.as_deref(), Some("Bearer"));
    /// ```
    pub fn from_json(body: &[u8]) -> Result<Self, Error> {
        if body.len() > Self::MAX_BODY_BYTES {
            return Err(Error::invalid_response(format!(
                "body of {} bytes is over the {} byte limit",
                body.len(),
                Self::MAX_BODY_BYTES
            )));
        }
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            let start = body.iter().copied().find(|b| !b.is_ascii_whitespace());
            let what = match start {
                None => "an empty body".to_owned(),
                Some(b'<') => "an HTML or XML page".to_owned(),
                _ => format!(
                    "malformed JSON ({} at line {} column {})",
                    classify(&e),
                    e.line(),
                    e.column()
                ),
            };
            Error::invalid_response(format!("expected a JSON token response, got {what}"))
        })?;
        let Value::Object(map) = &value else {
            return Err(Error::invalid_response("expected a JSON object"));
        };
        if !["access_token", "accessToken", "token"]
            .iter()
            .any(|k| map.get(*k).is_some_and(Value::is_string))
        {
            let mut keys: Vec<&str> = map.keys().map(String::as_str).collect();
            keys.sort_unstable();
            return Err(Error::invalid_response(format!(
                "no string `access_token` in the response (fields: {})",
                keys.join(", ")
            )));
        }
        // serde_json's messages may quote the offending value, so only the field path is kept.
        let mut response = serde_json::from_value::<TokenResponse>(value).map_err(|e| {
            Error::invalid_response(format!("unreadable field: {}", field_of(&e.to_string())))
        })?;
        response.expires_on = response.expires_on.or(response.expires_on_date.take());
        Ok(response)
    }

    /// The absolute expiry: `expires_on` when sent, else `received_at + expires_in`.
    pub fn expires_at(&self, received_at: SystemTime) -> Option<SystemTime> {
        self.expires_on.or_else(|| {
            self.expires_in
                .map(|s| received_at + Duration::from_secs(s))
        })
    }
}

fn classify(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Eof => "truncated",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected data",
        serde_json::error::Category::Io => "read error",
    }
}

/// serde messages look like "invalid type: string \"...\", expected u64": keep only what follows "expected".
fn field_of(message: &str) -> String {
    match message.find("expected") {
        Some(i) => message[i..].to_owned(),
        None => "unexpected value".to_owned(),
    }
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &self.access_token)
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("expires_on", &self.expires_on)
            .field("ext_expires_in", &self.ext_expires_in)
            .field("refresh_in", &self.refresh_in)
            .field("scope", &self.scope)
            .field("refresh_token", &self.refresh_token)
            .field("id_token", &self.id_token)
            .field("resource", &self.resource)
            .field("client_id", &self.client_id)
            .finish()
    }
}

/// Parses an expiry given as unix seconds or as a date string (see [`TokenResponse::from_json`]).
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use entraid_core::parse_expires_on;
///
/// let t = UNIX_EPOCH + Duration::from_secs(1_750_156_200);
/// assert_eq!(parse_expires_on("1750156200"), Some(t));
/// assert_eq!(parse_expires_on("2025-06-17T10:30:00Z"), Some(t));
/// assert_eq!(parse_expires_on("2025-06-17 10:30:00.000000"), Some(t));
/// assert_eq!(parse_expires_on("06/17/2025 10:30:00 +00:00"), Some(t));
/// ```
pub fn parse_expires_on(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(UNIX_EPOCH + Duration::from_secs(seconds));
    }
    if let Ok(seconds) = text.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0)
            .then(|| UNIX_EPOCH + Duration::from_secs_f64(seconds));
    }
    let unix = dates::parse(text)?;
    u64::try_from(unix)
        .ok()
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

mod de {
    //! Lenient deserializers: numbers as numbers or strings, times as unix seconds or dates.

    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use serde::Deserializer;
    use serde::de::Error as _;
    use serde_json::Value;

    pub(super) fn opt_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        match <Option<Value> as serde::Deserialize>::deserialize(d)? {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| *f >= 0.0 && f.is_finite())
                        .map(|f| f as u64)
                })
                .map(Some)
                .ok_or_else(|| D::Error::custom("expected a non-negative number of seconds")),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => s.trim().parse::<u64>().map(Some).map_err(|_| {
                D::Error::custom("expected a number of seconds (as number or string)")
            }),
            Some(_) => Err(D::Error::custom("expected a number of seconds")),
        }
    }

    pub(super) fn opt_time<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SystemTime>, D::Error> {
        match <Option<Value> as serde::Deserialize>::deserialize(d)? {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(|s| Some(UNIX_EPOCH + Duration::from_secs(s)))
                .ok_or_else(|| D::Error::custom("expected unix seconds")),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => super::parse_expires_on(&s)
                .map(Some)
                .ok_or_else(|| D::Error::custom("expected unix seconds or a date for expires_on")),
            Some(_) => Err(D::Error::custom(
                "expected unix seconds or a date for expires_on",
            )),
        }
    }
}

mod dates {
    //! Just enough date parsing for token expiries, without a date crate.

    /// Days from 1970-01-01 to the civil date (Howard Hinnant's algorithm).
    fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    fn num(s: &str) -> Option<i64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    }

    fn hms(s: &str) -> Option<i64> {
        // "15:04:05" with optional fraction ".999999".
        let s = s.split('.').next()?;
        let mut parts = s.split(':');
        let (h, m, sec) = (
            num(parts.next()?)?,
            num(parts.next()?)?,
            num(parts.next()?)?,
        );
        (parts.next().is_none() && h < 24 && m < 60 && sec <= 60).then_some(h * 3600 + m * 60 + sec)
    }

    /// A UTC offset such as `Z`, `+00:00`, `-0500`; in seconds east of UTC.
    fn offset(s: &str) -> Option<i64> {
        if s.is_empty() || s == "Z" || s == "z" {
            return Some(0);
        }
        let sign = match s.as_bytes()[0] {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let digits: String = s[1..].chars().filter(|c| *c != ':').collect();
        if digits.len() != 4 {
            return None;
        }
        Some(sign * (num(&digits[..2])? * 3600 + num(&digits[2..])? * 60))
    }

    fn date(y: i64, m: i64, d: i64) -> Option<i64> {
        ((1..=12).contains(&m) && (1..=31).contains(&d) && y >= 1970)
            .then(|| days_from_civil(y, m, d) * 86_400)
    }

    /// Splits "time[offset]" into the time and the offset text.
    fn split_offset(s: &str) -> (&str, &str) {
        if let Some(stripped) = s.strip_suffix(['Z', 'z']) {
            return (stripped, "Z");
        }
        match s.rfind(['+', '-']) {
            Some(i) => (&s[..i], &s[i..]),
            None => (s, ""),
        }
    }

    /// Unix seconds for `2006-01-02T15:04:05[.fff][Z|±hh:mm]`, `2006-01-02 15:04:05[.ffffff]`,
    /// `01/02/2006 15:04:05 [±hh:mm]`.
    pub(super) fn parse(text: &str) -> Option<i64> {
        let (day_part, rest) = text.split_once(['T', 't', ' '])?;
        let rest = rest.trim();
        let day = if day_part.contains('/') {
            let mut p = day_part.split('/');
            let (m, d, y) = (num(p.next()?)?, num(p.next()?)?, num(p.next()?)?);
            if p.next().is_some() {
                return None;
            }
            date(y, m, d)?
        } else {
            let mut p = day_part.split('-');
            let (y, m, d) = (num(p.next()?)?, num(p.next()?)?, num(p.next()?)?);
            if p.next().is_some() {
                return None;
            }
            date(y, m, d)?
        };
        let (time_text, offset_text) = match rest.split_once(' ') {
            Some((t, o)) => (t, o.trim()),
            None => split_offset(rest),
        };
        Some(day + hms(time_text)? - offset(offset_text)?)
    }

    #[cfg(test)]
    mod tests {
        use super::parse;

        #[test]
        fn formats() {
            assert_eq!(parse("1970-01-01T00:00:00Z"), Some(0));
            assert_eq!(parse("2025-06-17T14:30:00.000Z"), Some(1_750_170_600));
            assert_eq!(parse("2025-06-17T16:30:00+02:00"), Some(1_750_170_600));
            assert_eq!(parse("2025-06-17T09:30:00-0500"), Some(1_750_170_600));
            assert_eq!(parse("2025-06-17 14:30:00.000000"), Some(1_750_170_600));
            assert_eq!(parse("06/17/2025 14:30:00 +00:00"), Some(1_750_170_600));
            assert_eq!(parse("06/17/2025 14:30:00"), Some(1_750_170_600));
            assert_eq!(parse("2024-02-29T00:00:00Z"), Some(1_709_164_800));
        }

        #[test]
        fn garbage() {
            for s in [
                "",
                "tomorrow",
                "2025-13-01T00:00:00Z",
                "2025-06-17T25:00:00Z",
                "2025-06-17",
                "a-b-c d",
                "2025-06-17T14:30Z",
                "06/17/2025 14:30:00 +0",
                "1969-12-31T00:00:00Z",
            ] {
                assert_eq!(parse(s), None, "{s}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    /// Every token-response JSON shape in the seed documents (with placeholder tokens).
    #[test]
    fn every_seed_shape() {
        // v2 token endpoint, user flows: numbers, refresh and id tokens.
        let v2 = br#"{"token_type":"Bearer","scope":"https://graph.microsoft.com/.default","expires_in":3599,
            "ext_expires_in":3599,"access_token":"eyJ0eXAi.a.b","refresh_token":"AwABAAAAvPM1KaPlrEqdFSBzjqfTGAMxZGUTdM0t4B4",
            "id_token":"eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.eyJhdWQi.x"}"#;
        let r = TokenResponse::from_json(v2).unwrap();
        assert_eq!(r.access_token.expose_secret(), "eyJ0eXAi.a.b");
        assert_eq!((r.expires_in, r.ext_expires_in), (Some(3599), Some(3599)));
        assert_eq!(
            r.scope.as_deref(),
            Some("https://graph.microsoft.com/.default")
        );
        assert!(r.refresh_token.is_some() && r.id_token.is_some());
        assert_eq!(r.expires_at(at(100)), Some(at(3699)));

        // Client credentials: no refresh token.
        let cc = br#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"t"}"#;
        let r = TokenResponse::from_json(cc).unwrap();
        assert!(r.refresh_token.is_none() && r.refresh_in.is_none());

        // IMDS: strings everywhere, `expires_on` unix string, user-assigned client id echoed.
        let imds = br#"{"access_token":"t","client_id":"12345678-1234-1234-1234-123456789012","expires_in":"3599",
            "expires_on":"1750156200","ext_expires_in":"86399","not_before":"1750152300",
            "resource":"https://redis.azure.com","token_type":"Bearer"}"#;
        let r = TokenResponse::from_json(imds).unwrap();
        assert_eq!(r.expires_in, Some(3599));
        assert_eq!(r.expires_on, Some(at(1_750_156_200)));
        assert_eq!(r.ext_expires_in, Some(86399));
        assert_eq!(r.resource.as_deref(), Some("https://redis.azure.com"));
        assert_eq!(
            r.client_id.as_deref(),
            Some("12345678-1234-1234-1234-123456789012")
        );
        // `expires_on` wins over `expires_in`.
        assert_eq!(r.expires_at(at(0)), Some(at(1_750_156_200)));

        // Managed identity with a long lifetime and no expires_on (seed 002).
        let mi = br#"{"access_token":"t","expires_in":"86399","token_type":"Bearer","resource":"https://graph.microsoft.com/"}"#;
        assert_eq!(
            TokenResponse::from_json(mi).unwrap().expires_in,
            Some(86399)
        );

        // App Service 2017 form: `expires_on` as a date with offset; 2019 form: unix number.
        let app_2017 = br#"{"access_token":"t","expires_on":"06/17/2025 10:30:00 +00:00","resource":"r","token_type":"Bearer"}"#;
        assert_eq!(
            TokenResponse::from_json(app_2017).unwrap().expires_on,
            Some(at(1_750_156_200))
        );
        let app_2019 = br#"{"access_token":"t","expires_on":1750156200,"resource":"r","token_type":"Bearer","client_id":"c"}"#;
        assert_eq!(
            TokenResponse::from_json(app_2019).unwrap().expires_on,
            Some(at(1_750_156_200))
        );

        // Azure CLI: camelCase, local-time `expiresOn`, and the newer `expires_on` unix integer.
        let az =
            br#"{"accessToken":"t","expiresOn":"2025-06-17 14:30:00.000000","subscription":"s",
            "tenant":"87654321-4321-4321-4321-210987654321","tokenType":"Bearer"}"#;
        let r = TokenResponse::from_json(az).unwrap();
        assert_eq!(r.token_type.as_deref(), Some("Bearer"));
        assert_eq!(r.expires_on, Some(at(1_750_170_600)));
        let az_new = br#"{"accessToken":"t","expiresOn":"2025-06-17 14:30:00.000000","expires_on":1750170600,"tokenType":"Bearer"}"#;
        assert_eq!(
            TokenResponse::from_json(az_new).unwrap().expires_on,
            Some(at(1_750_170_600))
        );
        let az_both = br#"{"accessToken":"t","expiresOn":"2000-01-01 00:00:00.000000","expires_on":1750170600}"#;
        assert_eq!(
            TokenResponse::from_json(az_both).unwrap().expires_on,
            Some(at(1_750_170_600))
        );

        // Azure Developer CLI.
        let azd = br#"{"token":"t","expiresOn":"2025-06-17T14:30:00.000Z"}"#;
        assert_eq!(
            TokenResponse::from_json(azd).unwrap().expires_on,
            Some(at(1_750_170_600))
        );

        // refresh_in (MSAL long-lived tokens) as number or string.
        let r = TokenResponse::from_json(
            br#"{"access_token":"t","expires_in":7200,"refresh_in":"3600"}"#,
        )
        .unwrap();
        assert_eq!(r.refresh_in, Some(3600));
    }

    #[test]
    fn bad_bodies_give_clear_errors_without_the_body() {
        let cases: [(&[u8], &str); 8] = [
            (b"", "an empty body"),
            (b"<html><title>502 Bad Gateway</title></html>", "HTML"),
            (
                br#"{"access_token":"secret-token-value","expires_in":"#,
                "truncated",
            ),
            (b"{not json}", "syntax error"),
            (b"[1,2]", "JSON object"),
            (br#"{"error":"invalid_client"}"#, "fields: error"),
            (
                br#"{"access_token":"secret-token-value","expires_in":"soon"}"#,
                "number of seconds",
            ),
            (
                br#"{"access_token":"secret-token-value","expires_on":"next tuesday"}"#,
                "expires_on",
            ),
        ];
        for (body, expected) in cases {
            let err = TokenResponse::from_json(body).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(matches!(err, Error::InvalidResponse { .. }), "{shown}");
            assert!(shown.contains(expected), "{expected:?} not in {shown}");
            assert!(!shown.contains("secret-token-value"), "{shown}");
        }
        let huge = vec![b' '; TokenResponse::MAX_BODY_BYTES + 1];
        assert!(
            TokenResponse::from_json(&huge)
                .unwrap_err()
                .to_string()
                .contains("over the")
        );
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
