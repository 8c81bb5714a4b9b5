//! JWT payload parsing without signature verification, and the [`Claims`] a token carries.
//!
//! The client never needs to verify the signature of its own access token (Redis does that); it only needs the
//! `oid` claim for the username and `exp` for timing. Parsing is strict about shape and size so that a bad token
//! gives a clear [`JwtError`] instead of a confusing `AUTH` failure later.

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};

/// The largest JWT payload (decoded) that [`Claims::from_jwt`] accepts: 64 KiB.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// base64url that accepts input with or without `=` padding.
const BASE64URL_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a JWT could not be read. Never contains any part of the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// A compact JWS has exactly three `.`-separated segments.
    #[error("a JWT has 3 segments separated by '.', this one has {found}")]
    WrongSegmentCount {
        /// How many segments were found.
        found: usize,
    },
    /// The payload segment is not valid base64url.
    #[error("the JWT payload is not valid base64url")]
    InvalidBase64,
    /// The payload is larger than [`MAX_PAYLOAD_BYTES`].
    #[error("the JWT payload is {size} bytes, over the {max} byte limit")]
    PayloadTooLarge {
        /// The payload size (encoded length for an encoded payload over the limit).
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The payload is not a JSON object.
    #[error("the JWT payload is not a JSON object")]
    NotJson,
}

/// The claims of an access token.
///
/// The well-known Entra claims have accessors; [`Claims::get`] and [`Claims::all`] give every claim as JSON.
/// Claims are not secret: they name the principal and the token's lifetime, which is safe to log.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    all: Map<String, Value>,
}

impl Claims {
    /// Parses the payload of a compact JWT (`header.payload.signature`) without verifying the signature.
    ///
    /// The payload may be base64url with or without padding; it must decode to a JSON object of at most
    /// [`MAX_PAYLOAD_BYTES`].
    ///
    /// ```
    /// use entraid_core::Claims;
    ///
    /// // {"oid":"1234","exp":1700000000}
    /// let jwt = "eyJhbGciOiJub25lIn0.eyJvaWQiOiIxMjM0IiwiZXhwIjoxNzAwMDAwMDAwfQ.sig";
    /// let claims = Claims::from_jwt(jwt).unwrap();
    /// assert_eq!(claims.oid(), Some("1234"));
    /// assert_eq!(claims.exp(), Some(1_700_000_000));
    /// ```
    pub fn from_jwt(jwt: &str) -> Result<Self, JwtError> {
        let segments: Vec<&str> = jwt.trim().split('.').collect();
        if segments.len() != 3 {
            return Err(JwtError::WrongSegmentCount {
                found: segments.len(),
            });
        }
        let payload = segments[1];
        // base64 expands 3 bytes into 4 characters: reject before decoding anything huge.
        let max_encoded = MAX_PAYLOAD_BYTES.div_ceil(3) * 4;
        if payload.len() > max_encoded {
            return Err(JwtError::PayloadTooLarge {
                size: payload.len(),
                max: MAX_PAYLOAD_BYTES,
            });
        }
        let bytes = BASE64URL_LENIENT
            .decode(payload)
            .map_err(|_| JwtError::InvalidBase64)?;
        if bytes.len() > MAX_PAYLOAD_BYTES {
            return Err(JwtError::PayloadTooLarge {
                size: bytes.len(),
                max: MAX_PAYLOAD_BYTES,
            });
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(all)) => Ok(Self { all }),
            _ => Err(JwtError::NotJson),
        }
    }

    /// Claims from a JSON object (for tests and custom providers).
    pub fn from_map(all: Map<String, Value>) -> Self {
        Self { all }
    }

    /// Every claim, as JSON.
    pub fn all(&self) -> &Map<String, Value> {
        &self.all
    }

    /// One claim by name, as JSON.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.all.get(name)
    }

    fn str_claim(&self, name: &str) -> Option<&str> {
        self.all.get(name).and_then(Value::as_str)
    }

    fn time_claim(&self, name: &str) -> Option<i64> {
        match self.all.get(name)? {
            Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// `oid`: the object id of the principal, the Redis username.
    pub fn oid(&self) -> Option<&str> {
        self.str_claim("oid")
    }

    /// `tid`: the tenant id.
    pub fn tid(&self) -> Option<&str> {
        self.str_claim("tid")
    }

    /// `aud`: the audience. When `aud` is an array, its first entry.
    pub fn aud(&self) -> Option<&str> {
        match self.all.get("aud")? {
            Value::String(s) => Some(s),
            Value::Array(values) => values.first().and_then(Value::as_str),
            _ => None,
        }
    }

    /// `iss`: the issuer.
    pub fn iss(&self) -> Option<&str> {
        self.str_claim("iss")
    }

    /// `sub`: the subject.
    pub fn sub(&self) -> Option<&str> {
        self.str_claim("sub")
    }

    /// `exp`: expiry, unix seconds.
    pub fn exp(&self) -> Option<i64> {
        self.time_claim("exp")
    }

    /// `iat`: issued at, unix seconds.
    pub fn iat(&self) -> Option<i64> {
        self.time_claim("iat")
    }

    /// `nbf`: not before, unix seconds.
    pub fn nbf(&self) -> Option<i64> {
        self.time_claim("nbf")
    }

    /// `appid` (v1 tokens) or `azp` (v2 tokens): the client application id.
    pub fn app_id(&self) -> Option<&str> {
        self.str_claim("appid").or_else(|| self.str_claim("azp"))
    }

    /// `idtyp`: `app` or `user` when present.
    pub fn idtyp(&self) -> Option<&str> {
        self.str_claim("idtyp")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{base64url_encode, unsigned_jwt};
    use serde_json::json;

    #[test]
    fn parses_unpadded_and_padded_payloads() {
        // Pick a filler length whose encoding needs `=` padding.
        let (payload, jwt) = (0..3)
            .map(|n| {
                let payload = json!({"oid": "o", "tid": "t", "aud": "https://redis.azure.com", "iss": "i",
                    "exp": 10, "iat": 1, "nbf": 2, "appid": "a", "sub": "s", "idtyp": "app", "extra": [1, 2],
                    "fill": "f".repeat(n)});
                let jwt = unsigned_jwt(&payload);
                (payload, jwt)
            })
            .find(|(_, jwt)| !jwt.split('.').nth(1).unwrap().len().is_multiple_of(4))
            .unwrap();
        assert_eq!(payload["oid"], "o");
        let claims = Claims::from_jwt(&jwt).unwrap();
        assert_eq!(claims.oid(), Some("o"));
        assert_eq!(claims.tid(), Some("t"));
        assert_eq!(claims.aud(), Some("https://redis.azure.com"));
        assert_eq!(claims.iss(), Some("i"));
        assert_eq!(claims.sub(), Some("s"));
        assert_eq!(
            (claims.exp(), claims.iat(), claims.nbf()),
            (Some(10), Some(1), Some(2))
        );
        assert_eq!(claims.app_id(), Some("a"));
        assert_eq!(claims.idtyp(), Some("app"));
        assert_eq!(claims.get("extra"), Some(&json!([1, 2])));
        assert_eq!(claims.all().len(), 12);

        // The same payload with `=` padding restored decodes the same way.
        let mut parts: Vec<String> = jwt.split('.').map(str::to_owned).collect();
        while !parts[1].len().is_multiple_of(4) {
            parts[1].push('=');
        }
        assert!(
            parts[1].ends_with('='),
            "the fixture must actually need padding"
        );
        assert_eq!(Claims::from_jwt(&parts.join(".")).unwrap(), claims);
    }

    #[test]
    fn azp_stands_in_for_appid_and_aud_may_be_an_array() {
        let claims =
            Claims::from_jwt(&unsigned_jwt(&json!({"azp": "z", "aud": ["x", "y"]}))).unwrap();
        assert_eq!(claims.app_id(), Some("z"));
        assert_eq!(claims.aud(), Some("x"));
        assert_eq!(claims.oid(), None);
    }

    #[test]
    fn numeric_claims_accept_floats_and_strings() {
        let claims = Claims::from_jwt(&unsigned_jwt(
            &json!({"exp": 12.7, "iat": "5", "nbf": true}),
        ))
        .unwrap();
        assert_eq!(claims.exp(), Some(12));
        assert_eq!(claims.iat(), Some(5));
        assert_eq!(claims.nbf(), None);
    }

    #[test]
    fn wrong_segment_counts() {
        assert_eq!(
            Claims::from_jwt("abc"),
            Err(JwtError::WrongSegmentCount { found: 1 })
        );
        assert_eq!(
            Claims::from_jwt("a.b"),
            Err(JwtError::WrongSegmentCount { found: 2 })
        );
        assert_eq!(
            Claims::from_jwt("a.b.c.d.e"),
            Err(JwtError::WrongSegmentCount { found: 5 })
        );
        assert_eq!(
            Claims::from_jwt(""),
            Err(JwtError::WrongSegmentCount { found: 1 })
        );
    }

    #[test]
    fn bad_base64() {
        assert_eq!(Claims::from_jwt("a.!!!!.c"), Err(JwtError::InvalidBase64));
        // Standard (non-URL) alphabet characters are not base64url.
        assert_eq!(Claims::from_jwt("a.ab+/.c"), Err(JwtError::InvalidBase64));
    }

    #[test]
    fn not_json_or_not_an_object() {
        let not_json = base64url_encode("this is not json");
        assert_eq!(
            Claims::from_jwt(&format!("a.{not_json}.c")),
            Err(JwtError::NotJson)
        );
        let array = base64url_encode("[1,2,3]");
        assert_eq!(
            Claims::from_jwt(&format!("a.{array}.c")),
            Err(JwtError::NotJson)
        );
    }

    #[test]
    fn oversized_payload_is_refused() {
        let big = json!({"oid": "o", "pad": "x".repeat(MAX_PAYLOAD_BYTES)});
        let err = Claims::from_jwt(&unsigned_jwt(&big)).unwrap_err();
        assert!(
            matches!(
                err,
                JwtError::PayloadTooLarge {
                    max: MAX_PAYLOAD_BYTES,
                    ..
                }
            ),
            "{err:?}"
        );

        // Just under the limit is accepted.
        let ok = json!({"oid": "o", "pad": "x".repeat(MAX_PAYLOAD_BYTES - 100)});
        assert!(Claims::from_jwt(&unsigned_jwt(&ok)).is_ok());
    }

    #[test]
    fn errors_never_echo_the_token() {
        let jwt = "secretheader.c2VjcmV0cGF5bG9hZA.secretsig";
        let err = Claims::from_jwt(jwt).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("secret"), "{shown}");
    }
}
