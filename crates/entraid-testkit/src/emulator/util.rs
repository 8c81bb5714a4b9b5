//! Small helpers for the emulator: URL encoding (through form_urlencoded and percent-encoding), ordered JSON
//! bodies, UTC timestamps, random strings.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// Decodes `application/x-www-form-urlencoded` (also query strings): `+` is a space, `%XX` a byte; invalid escapes
/// are kept as they are.
pub(crate) fn parse_urlencoded(input: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(input.as_bytes())
        .into_owned()
        .collect()
}

/// Percent-decodes one form-encoded component (`+` as space), as Basic client credentials are sent. Invalid escapes
/// are kept as they are.
pub(crate) fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// What [`percent_encode`] leaves as it is: the unreserved characters of RFC 3986 (`A-Z a-z 0-9 - . _ ~`).
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one component: everything but unreserved characters (`A-Z a-z 0-9 - . _ ~`).
pub fn percent_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, UNRESERVED).to_string()
}

/// Encodes pairs as `application/x-www-form-urlencoded`.
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// A JSON object whose fields keep the order they were added in (as Entra's responses do).
#[derive(Debug, Clone, Default)]
pub(crate) struct OrderedJson(pub(crate) Vec<(String, Value)>);

impl OrderedJson {
    pub(crate) fn new() -> Self {
        Self(Vec::new())
    }

    pub(crate) fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.0.push((key.to_owned(), value.into()));
        self
    }

    pub(crate) fn push(&mut self, key: &str, value: impl Into<Value>) {
        self.0.push((key.to_owned(), value.into()));
    }

    #[cfg(test)]
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub(crate) fn to_json_string(&self) -> String {
        let fields: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), v))
            .collect();
        format!("{{{}}}", fields.join(","))
    }
}

/// Formats unix seconds as `YYYY-MM-DD HH:MM:SSZ` (the format of Entra's `timestamp`), by the workspace's one
/// calendar ([`entraid_core::date`]).
pub(crate) fn utc_timestamp(unix: i64) -> String {
    entraid_core::date::format_utc(unix)
}

/// A random opaque string of `bytes` random bytes, base64url.
pub(crate) fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    crate::keys::random_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// A random user code like Entra's (9 characters, upper-case letters and digits).
pub(crate) fn random_user_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut buf = [0u8; 9];
    crate::keys::random_bytes(&mut buf);
    buf.iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_round_trips() {
        let pairs = [
            ("scope", "https://redis.azure.com/.default openid"),
            ("a b", "x+y&z=%"),
        ];
        let encoded = form_encode(&pairs);
        assert_eq!(
            parse_urlencoded(&encoded),
            pairs
                .iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect::<Vec<_>>()
        );
        assert_eq!(percent_decode("a+b%2Fc%zz%"), "a b/c%zz%");
        assert_eq!(percent_encode("a b~/é"), "a%20b~%2F%C3%A9");
        assert_eq!(form_encode(&[("a b", "~")]), "a+b=%7E");
        assert_eq!(
            parse_urlencoded("a=1&&b&c=%zz"),
            [("a", "1"), ("b", ""), ("c", "%zz")].map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn timestamps_and_ordered_json() {
        assert_eq!(utc_timestamp(0), "1970-01-01 00:00:00Z");
        assert_eq!(utc_timestamp(1_750_156_200), "2025-06-17 10:30:00Z");
        assert_eq!(utc_timestamp(951_782_400), "2000-02-29 00:00:00Z");
        let body = OrderedJson::new().with("z", 1).with("a", "x");
        assert_eq!(body.to_json_string(), r#"{"z":1,"a":"x"}"#);
        assert_eq!(random_user_code().len(), 9);
    }
}
