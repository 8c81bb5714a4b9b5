//! [`TokenResponse`], the full OAuth 2.0 token response, and [`TokenResponse::from_json`], which reads every
//! token-response shape Entra ID and its neighbours send: the v2 token endpoint (numbers), managed identity
//! (strings, `expires_on` as unix seconds or a date), the Azure CLI (`accessToken`/`expiresOn`) and the Azure
//! Developer CLI (`token`/`expiresOn`).

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::Value;

use crate::Error;
use crate::secret::Secret;

/// The longest lifetime a token may have, from receipt: 365 days (it is [`Token::MAX_LIFETIME`](crate::Token::MAX_LIFETIME)).
pub(crate) const MAX_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

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
    /// Absolute expiry. [`TokenResponse::from_json`] also reads the CLIs' `expiresOn` date into it when
    /// `expires_on` is absent (the Azure CLI sends both).
    #[serde(default, deserialize_with = "de::opt_time")]
    pub expires_on: Option<SystemTime>,
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
    /// The time fields [`TokenResponse::from_json`] found but could not read (left `None` above).
    #[serde(skip)]
    unreadable: Vec<UnreadableField>,
}

/// A time field of a token response that was present but could not be read: of a wrong type, in no known date
/// form, or out of range (a lifetime over [`Token::MAX_LIFETIME`](crate::Token::MAX_LIFETIME), a date after
/// 9999). The field is then left out, and [`Token::from_response`](crate::Token::from_response) falls back on the
/// token's own `exp` claim. Names the field and the rule, never the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnreadableField {
    /// The JSON field, for example `expires_on`.
    pub field: &'static str,
    /// Why it could not be read.
    pub reason: &'static str,
}

impl fmt::Display for UnreadableField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` {}", self.field, self.reason)
    }
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
        let Value::Object(mut map) = value else {
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
        // The time fields are read here, leniently: one that cannot be read is left out and noted, so that the
        // token's own `exp` can stand in for it.
        let mut unreadable = Vec::new();
        let mut seconds = |name: &'static str| match map.remove(name) {
            None => None,
            Some(v) => de::seconds(&v).unwrap_or_else(|reason| {
                unreadable.push(UnreadableField {
                    field: name,
                    reason,
                });
                None
            }),
        };
        let (expires_in, ext_expires_in, refresh_in) = (
            seconds("expires_in"),
            seconds("ext_expires_in"),
            seconds("refresh_in"),
        );
        let mut time = |name: &'static str| match map.remove(name) {
            None => None,
            Some(v) => de::time(&v).unwrap_or_else(|reason| {
                unreadable.push(UnreadableField {
                    field: name,
                    reason,
                });
                None
            }),
        };
        let (expires_on, expires_on_date) = (time("expires_on"), time("expiresOn"));
        // serde_json's messages may quote the offending value, so only the field path is kept.
        let mut response =
            serde_json::from_value::<TokenResponse>(Value::Object(map)).map_err(|e| {
                Error::invalid_response(format!("unreadable field: {}", field_of(&e.to_string())))
            })?;
        response.expires_in = expires_in;
        response.ext_expires_in = ext_expires_in;
        response.refresh_in = refresh_in;
        response.expires_on = expires_on.or(expires_on_date);
        response.unreadable = unreadable;
        Ok(response)
    }

    /// The time fields [`TokenResponse::from_json`] found but could not read, in the order read.
    ///
    /// ```
    /// use entraid_core::TokenResponse;
    ///
    /// let r = TokenResponse::from_json(br#"{"access_token":"t","expires_in":1e300}"#).unwrap();
    /// assert_eq!(r.expires_in, None);
    /// assert_eq!(r.unreadable()[0].field, "expires_in");
    /// ```
    pub fn unreadable(&self) -> &[UnreadableField] {
        &self.unreadable
    }

    /// The absolute expiry: `expires_on` when sent, else `received_at + expires_in`; `None` when neither was
    /// sent or the sum is past what a [`SystemTime`] can hold.
    pub fn expires_at(&self, received_at: SystemTime) -> Option<SystemTime> {
        self.expires_on.or_else(|| {
            self.expires_in
                .and_then(|s| received_at.checked_add(Duration::from_secs(s)))
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
            .field("unreadable", &self.unreadable)
            .finish()
    }
}

mod de {
    //! Lenient readers: numbers as numbers or strings, times as unix seconds or dates. Each works on any JSON
    //! value and says why it could not read one in a static message, never quoting it.

    use std::time::SystemTime;

    use serde::Deserializer;
    use serde::de::Error as _;
    use serde_json::Value;

    /// A number of seconds, at most [`MAX_LIFETIME`](super::MAX_LIFETIME); `None` for null or an empty string.
    pub(super) fn seconds(value: &Value) -> Result<Option<u64>, &'static str> {
        const TOO_LONG: &str = "is more than the longest token lifetime (365 days)";
        let max = super::MAX_LIFETIME.as_secs();
        let seconds = match value {
            Value::Null => return Ok(None),
            Value::Number(n) => match (n.as_u64(), n.as_f64()) {
                (Some(s), _) => s,
                (None, Some(f)) if f.is_finite() && f >= 0.0 => {
                    if f > max as f64 {
                        return Err(TOO_LONG);
                    }
                    f as u64
                }
                _ => return Err("is not a non-negative number of seconds"),
            },
            Value::String(s) if s.trim().is_empty() => return Ok(None),
            Value::String(s) => s
                .trim()
                .parse::<u64>()
                .map_err(|_| "is not a number of seconds (as number or string)")?,
            _ => return Err("is not a number of seconds"),
        };
        if seconds > max {
            return Err(TOO_LONG);
        }
        Ok(Some(seconds))
    }

    /// An absolute time: unix seconds (number or string) or a date; `None` for null or an empty string.
    pub(super) fn time(value: &Value) -> Result<Option<SystemTime>, &'static str> {
        const OUT_OF_RANGE: &str = "is not a time between 1970 and 9999";
        match value {
            Value::Null => Ok(None),
            Value::Number(n) => match (n.as_u64(), n.as_f64()) {
                (Some(s), _) => crate::date::unix_time(s).map(Some).ok_or(OUT_OF_RANGE),
                (None, Some(f))
                    if f.is_finite() && f >= 0.0 && f <= crate::date::MAX_UNIX_SECONDS as f64 =>
                {
                    crate::date::unix_time(f as u64)
                        .map(Some)
                        .ok_or(OUT_OF_RANGE)
                }
                _ => Err(OUT_OF_RANGE),
            },
            Value::String(s) if s.trim().is_empty() => Ok(None),
            Value::String(s) => crate::expires_on::parse_expires_on(s)
                .map(Some)
                .ok_or("is not unix seconds or a known date form (or is out of range)"),
            _ => Err("is not unix seconds or a date"),
        }
    }

    pub(super) fn opt_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        let value = <Option<Value> as serde::Deserialize>::deserialize(d)?;
        seconds(&value.unwrap_or(Value::Null)).map_err(|reason| {
            D::Error::custom(format!("expected a number of seconds; this one {reason}"))
        })
    }

    pub(super) fn opt_time<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SystemTime>, D::Error> {
        let value = <Option<Value> as serde::Deserialize>::deserialize(d)?;
        time(&value.unwrap_or(Value::Null))
            .map_err(|reason| D::Error::custom(format!("expected a time; this one {reason}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

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
        let cases: [(&[u8], &str); 6] = [
            (b"", "an empty body"),
            (b"<html><title>502 Bad Gateway</title></html>", "HTML"),
            (
                br#"{"access_token":"secret-token-value","expires_in":"#,
                "truncated",
            ),
            (b"{not json}", "syntax error"),
            (b"[1,2]", "JSON object"),
            (br#"{"error":"invalid_client"}"#, "fields: error"),
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

    /// The four bodies that panicked (issue 12), and every other out-of-range time: each is left out and noted,
    /// never a panic, and the note names the field, not the value.
    #[test]
    fn out_of_range_times_are_noted_not_panics() {
        let cases: [(&[u8], &str); 12] = [
            (
                br#"{"access_token":"t","expires_on":"2025-06-17T14:30:00+1\u00e91"}"#,
                "expires_on",
            ),
            (
                "{\"access_token\":\"t\",\"expires_on\":\"2025-06-17T14:30:00+1\u{e9}1\"}"
                    .as_bytes(),
                "expires_on",
            ),
            (br#"{"access_token":"t","expires_in":1e300}"#, "expires_in"),
            (
                br#"{"access_token":"t","expires_on":"99999999999999999999"}"#,
                "expires_on",
            ),
            (
                br#"{"access_token":"t","expires_on":99999999999999999999}"#,
                "expires_on",
            ),
            (br#"{"access_token":"t","expires_on":1e300}"#, "expires_on"),
            (
                br#"{"access_token":"t","expires_on":"1e300"}"#,
                "expires_on",
            ),
            (
                br#"{"access_token":"t","expires_on":"300000000000-01-01T00:00:00Z"}"#,
                "expires_on",
            ),
            (
                br#"{"access_token":"t","expires_in":"18446744073709551615"}"#,
                "expires_in",
            ),
            (br#"{"access_token":"t","refresh_in":-1}"#, "refresh_in"),
            (
                br#"{"access_token":"t","ext_expires_in":{"a":1}}"#,
                "ext_expires_in",
            ),
            (
                br#"{"access_token":"t","expiresOn":"Sun, 06 Nov 300000000000 08:49:37 GMT"}"#,
                "expiresOn",
            ),
        ];
        for (body, field) in cases {
            let r = TokenResponse::from_json(body).unwrap();
            assert_eq!(
                (r.expires_in, r.expires_on, r.refresh_in, r.ext_expires_in),
                (None, None, None, None),
                "{}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(r.unreadable().len(), 1, "{:?}", r.unreadable());
            assert_eq!(r.unreadable()[0].field, field);
            let shown = format!("{} {r:?}", r.unreadable()[0]);
            assert!(
                !shown.contains("300000") && !shown.contains("99999"),
                "{shown}"
            );
        }
        // Wrong types and unknown forms are noted the same way.
        let r = TokenResponse::from_json(
            br#"{"access_token":"t","expires_in":"soon","expires_on":"next tuesday","refresh_in":true}"#,
        )
        .unwrap();
        let fields: Vec<_> = r.unreadable().iter().map(|u| u.field).collect();
        assert_eq!(fields, ["expires_in", "refresh_in", "expires_on"]);
        assert_eq!(
            r.unreadable()[0].to_string(),
            "`expires_in` is not a number of seconds (as number or string)"
        );
        // The edges: the lifetime cap and the end of 9999 are still read.
        let max = crate::Token::MAX_LIFETIME.as_secs();
        let r = TokenResponse::from_json(
            format!(r#"{{"access_token":"t","expires_in":{max},"expires_on":253402300799}}"#)
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            (r.expires_in, r.expires_on),
            (Some(max), Some(at(253_402_300_799)))
        );
        assert!(r.unreadable().is_empty());
        let r = TokenResponse::from_json(
            format!(
                r#"{{"access_token":"t","expires_in":{},"expires_on":253402300800}}"#,
                max + 1
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(r.unreadable().len(), 2);
        // `expires_at` saturates to `None` instead of overflowing.
        let mut r = TokenResponse::new("t");
        r.expires_in = Some(u64::MAX);
        assert_eq!(r.expires_at(at(1)), None);
    }

    #[test]
    fn twelve_hour_expires_on_is_accepted() {
        // 2026-12-01T00:00:00Z is 1_796_083_200.
        for (text, seconds) in [
            (
                "12/01/2026 09:30:00 AM +00:00",
                1_796_083_200 + 9 * 3600 + 1800,
            ),
            (
                "12/01/2026 09:30:00 PM +00:00",
                1_796_083_200 + 21 * 3600 + 1800,
            ),
            ("12/01/2026 12:00:00 AM +00:00", 1_796_083_200),
            (
                "12/01/2026 12:30:00 PM +00:00",
                1_796_083_200 + 12 * 3600 + 1800,
            ),
            (
                "12/01/2026 21:30:00 +00:00",
                1_796_083_200 + 21 * 3600 + 1800,
            ),
            ("1/2/2006 15:04:05 PM +00:00", 1_136_214_245),
        ] {
            let body = format!(r#"{{"access_token":"t","expires_on":"{text}"}}"#);
            let r = TokenResponse::from_json(body.as_bytes()).unwrap();
            assert_eq!(r.expires_on, Some(at(seconds)), "{text}");
            assert!(r.unreadable().is_empty());
        }
    }

    #[test]
    fn serde_derive_reads_times_strictly_without_panicking() {
        let r: TokenResponse = serde_json::from_str(
            r#"{"access_token":"t","expires_in":"5","expires_on":"1750156200"}"#,
        )
        .unwrap();
        assert_eq!(
            (r.expires_in, r.expires_on),
            (Some(5), Some(at(1_750_156_200)))
        );
        for bad in [
            r#"{"access_token":"t","expires_in":1e300}"#,
            r#"{"access_token":"t","expires_on":"99999999999999999999"}"#,
            r#"{"access_token":"t","expires_on":"2025-06-17T14:30:00+1é1"}"#,
        ] {
            let err = serde_json::from_str::<TokenResponse>(bad)
                .unwrap_err()
                .to_string();
            assert!(err.contains("expected a"), "{err}");
        }
    }
}
