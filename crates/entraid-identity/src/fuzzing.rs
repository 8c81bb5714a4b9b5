//! Entry points into the crate's parsers for the fuzz targets in `fuzz/` (built with `--cfg fuzzing`) and the
//! property tests. Not part of the public API: hidden, and compiled only for those two.
//!
//! Each function takes arbitrary input, runs one parser of a server's, file's or tool's bytes the way the flows do,
//! and returns what a caller would see. None may panic, and no error may quote the input.

use std::path::Path;
use std::time::{Duration, SystemTime};

use entraid_core::{Error, TokenResponse};
use reqwest::header::{HeaderMap, HeaderValue};

use crate::http::Response;

/// The `Retry-After` wait a response with these header values asks for (any header value bytes; values HTTP
/// cannot carry are left out, as the HTTP stack would refuse them).
pub fn retry_after(retry_after: &[u8], retry_after_ms: &[u8], now: SystemTime) -> Option<Duration> {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(retry_after) {
        headers.insert("retry-after", value);
    }
    if let Ok(value) = HeaderValue::from_bytes(retry_after_ms) {
        headers.insert("x-ms-retry-after-ms", value);
    }
    crate::http::retry_after(&headers, now)
}

/// An HTTP answer of an identity endpoint, read as every flow reads one: the token response of a 2xx, else the
/// error (with Entra's error body and `Retry-After`).
pub fn http_answer(status: u16, retry_after: &[u8], body: &[u8]) -> Result<TokenResponse, Error> {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(retry_after) {
        headers.insert("retry-after", value);
    }
    let response = Response {
        status,
        headers,
        body: body.to_vec(),
    };
    response.token_response("ManagedIdentity")
}

/// Azure Arc's `WWW-Authenticate` challenge, checked against a tokens folder.
#[cfg(feature = "managed-identity")]
pub fn arc_challenge(challenge: &str, tokens_dir: &Path) -> Result<std::path::PathBuf, Error> {
    crate::managed_identity::arc_key_path(challenge, tokens_dir)
}

/// Azure Arc's (and user-assigned identities') echo check of an answer body, for an identity of each kind.
#[cfg(feature = "managed-identity")]
pub fn arc_echo(body: &[u8], id: &str) -> [Result<(), Error>; 3] {
    use crate::UserAssignedId;
    [
        crate::managed_identity::check_arc_echo(body, &UserAssignedId::ClientId(id.to_owned())),
        crate::managed_identity::check_arc_echo(body, &UserAssignedId::ObjectId(id.to_owned())),
        crate::managed_identity::check_arc_echo(body, &UserAssignedId::ResourceId(id.to_owned())),
    ]
}

/// The Azure CLI's standard output, read into the token's expiry.
#[cfg(feature = "azure-cli")]
pub fn az_output(stdout: &[u8]) -> Result<SystemTime, Error> {
    crate::developer_cli::az_output(stdout)
}

/// azd's standard output, read into the token's expiry.
#[cfg(feature = "azure-developer-cli")]
pub fn azd_output(stdout: &[u8]) -> Result<SystemTime, Error> {
    crate::developer_cli::azd_output(stdout)
}

/// A failed developer tool's standard error (and exit code), classified as the credential does, for both tools.
#[cfg(all(feature = "azure-cli", feature = "azure-developer-cli"))]
pub fn cli_failure(stderr: &str, code: Option<i32>) -> [Error; 2] {
    crate::developer_cli::failures(stderr, code)
}

/// A UTC offset (`+05:30`, `-0800`, `Z`), as every date reader of the workspace reads it
/// ([`entraid_core::date::parse_utc_offset`]).
pub fn utc_offset(text: &str) -> Option<i64> {
    entraid_core::date::parse_utc_offset(text)
}

/// An OpenID Connect discovery document.
#[cfg(feature = "oidc-discovery")]
pub fn discovery(body: &[u8], tenant: &str) -> Result<crate::OpenIdConfiguration, Error> {
    crate::OpenIdConfiguration::from_json(body, tenant)
}

/// A certificate file's bytes (PEM, else PKCS#12), with an optional password.
#[cfg(feature = "client-certificate")]
pub fn certificate(data: &[u8], password: Option<&str>) -> Result<crate::ClientCertificate, Error> {
    let password = password.map(entraid_core::Secret::from);
    crate::ClientCertificate::from_bytes(data, password.as_ref())
}

#[cfg(test)]
mod tests {
    //! Property tests over the same entry points, in the normal suite: arbitrary input never panics, and what is
    //! read round-trips. Case counts are modest; the fuzz targets go further.

    use std::time::UNIX_EPOCH;

    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;

    const MAX_UNIX: u64 = 253_402_300_799;

    fn config(cases: u32) -> ProptestConfig {
        ProptestConfig {
            cases,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(any::<u8>(), 0..max)
    }

    /// Any JSON value a field might hold.
    fn any_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            "\\PC{0,24}".prop_map(Value::from),
            "[0-9]{1,22}".prop_map(Value::from),
            "[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,6})?[Z+-]?[0-9:é]{0,5}"
                .prop_map(Value::from),
            Just(json!({"nested": [1, "x"]})),
        ]
    }

    use entraid_core::civil_reference as civil;

    fn imf_fixdate(unix: u64) -> String {
        let (y, mo, d, h, mi, s, wd) = civil(unix);
        let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][wd as usize];
        let month = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ][mo as usize - 1];
        format!("{weekday}, {d:02} {month} {y:04} {h:02}:{mi:02}:{s:02} GMT")
    }

    #[test]
    fn the_reference_calendar_agrees_with_known_dates() {
        assert_eq!(imf_fixdate(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(imf_fixdate(MAX_UNIX), "Fri, 31 Dec 9999 23:59:59 GMT");
    }

    proptest! {
        #![proptest_config(config(192))]

        #[test]
        fn retry_after_never_panics(
            a in prop_oneof![bytes(48).boxed(), "[A-Za-z]{3}, [0-9]{1,3} [A-Za-z]{3} -?[0-9]{1,20} [0-9:]{1,12} GMT".prop_map(String::into_bytes).boxed()],
            b in prop_oneof![bytes(24).boxed(), "[0-9]{1,24}".prop_map(String::into_bytes).boxed()],
            now in 0u64..=MAX_UNIX,
        ) {
            let now = UNIX_EPOCH + Duration::from_secs(now);
            let _ = retry_after(&a, &b, now);
            let _ = retry_after(&b, &a, now);
        }

        /// An HTTP date round-trips into the wait until it.
        #[test]
        fn retry_after_dates_round_trip(date in 0u64..=MAX_UNIX, now in 0u64..=MAX_UNIX) {
            let wait = retry_after(imf_fixdate(date).as_bytes(), b"", UNIX_EPOCH + Duration::from_secs(now));
            prop_assert_eq!(wait, Some(Duration::from_secs(date.saturating_sub(now))));
            let seconds = date.to_string();
            prop_assert_eq!(retry_after(seconds.as_bytes(), b"", UNIX_EPOCH), Some(Duration::from_secs(date)));
            prop_assert_eq!(retry_after(b"", seconds.as_bytes(), UNIX_EPOCH), Some(Duration::from_millis(date)));
        }

        /// Any answer of an identity endpoint: never a panic; errors never quote the body's token.
        #[test]
        fn identity_answers_never_panic(status in 100u16..600, header in bytes(40), body in bytes(200)) {
            let _ = http_answer(status, &header, &body);
            let _ = arc_echo(&body, "11111111-2222-3333-4444-555555555555");
            let _ = discovery(&body, "contoso");
            let _ = arc_challenge(&String::from_utf8_lossy(&body), Path::new("/var/opt/azcmagent/tokens"));
        }

        /// Managed-identity bodies of every shape (IMDS, App Service, Arc, Cloud Shell, Azure ML, error bodies),
        /// with any value in any field.
        #[test]
        fn managed_identity_bodies_of_every_shape(
            fields in prop::collection::btree_map(
                prop_oneof![
                    Just("access_token"), Just("expires_in"), Just("expires_on"), Just("ext_expires_in"),
                    Just("not_before"), Just("resource"), Just("token_type"), Just("client_id"),
                    Just("object_id"), Just("msi_res_id"), Just("error"), Just("error_description"),
                    Just("error_codes"), Just("correlation_id"),
                ],
                any_value(),
                0..9,
            ),
            status in prop_oneof![Just(200u16), Just(400), Just(401), Just(404), Just(429), Just(500), Just(503), 100u16..600],
        ) {
            let mut body: serde_json::Map<String, Value> = fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            body.insert("access_token".into(), json!("SECRET-TOKEN-TEXT"));
            let body = Value::Object(body).to_string();
            match http_answer(status, b"", body.as_bytes()) {
                Ok(response) => {
                    prop_assert!((200..300).contains(&status));
                    prop_assert_eq!(response.access_token.expose_secret(), "SECRET-TOKEN-TEXT");
                }
                Err(e) => {
                    let shown = format!("{e} {e:?}");
                    prop_assert!(!shown.contains("SECRET-TOKEN-TEXT"), "{}", shown);
                }
            }
            for result in arc_echo(body.as_bytes(), "id") {
                if let Err(e) = result {
                    prop_assert!(!e.to_string().contains("SECRET-TOKEN-TEXT"));
                }
            }
        }

        /// The developer tools' output, of any shape: never a panic; a readable `expires_on` is what is used.
        #[test]
        fn cli_output_of_every_shape(
            token in prop_oneof![Just(Value::from("SECRET-CLI-TOKEN")), any_value()],
            expires_on in prop::option::of(any_value()),
            expires_on_date in prop::option::of(any_value()),
        ) {
            let mut az = json!({"accessToken": token, "tokenType": "Bearer"});
            let mut azd = json!({"token": az["accessToken"].clone()});
            if let Some(v) = &expires_on {
                az["expires_on"] = v.clone();
            }
            if let Some(v) = expires_on_date {
                az["expiresOn"] = v.clone();
                azd["expiresOn"] = v;
            }
            let az_result = az_output(az.to_string().as_bytes());
            if let (Ok(at), Some(Value::Number(n))) = (&az_result, &expires_on)
                && let Some(seconds) = n.as_u64().filter(|s| *s <= MAX_UNIX)
            {
                prop_assert_eq!(*at, UNIX_EPOCH + Duration::from_secs(seconds));
            }
            for result in [az_result, azd_output(azd.to_string().as_bytes())] {
                if let Err(e) = result {
                    prop_assert!(!e.to_string().contains("SECRET-CLI-TOKEN"));
                }
            }
        }

        #[test]
        fn cli_bytes_and_stderr_never_panic(out in bytes(160), stderr in "\\PC{0,200}", code in prop::option::of(any::<i32>())) {
            let _ = az_output(&out);
            let _ = azd_output(&out);
            for error in cli_failure(&stderr, code) {
                let _ = error.to_string();
            }
            let _ = utc_offset(&stderr);
        }

        /// UTC offsets round-trip.
        #[test]
        fn utc_offsets_round_trip(east in any::<bool>(), hours in 0i64..=14, minutes in 0i64..60, colon in any::<bool>()) {
            let sign = if east { '+' } else { '-' };
            let text = if colon { format!("{sign}{hours:02}:{minutes:02}") } else { format!("{sign}{hours:02}{minutes:02}") };
            let seconds = (hours * 3600 + minutes * 60) * if east { 1 } else { -1 };
            prop_assert_eq!(utc_offset(&text), Some(seconds));
        }
    }

    proptest! {
        #![proptest_config(config(64))]

        /// PEM and PFX loading of any bytes, and of PEM blocks with any content: an error, never a panic.
        #[test]
        fn certificates_never_panic(
            data in bytes(300),
            kind in prop_oneof![Just("CERTIFICATE"), Just("PRIVATE KEY"), Just("RSA PRIVATE KEY"), Just("EC PRIVATE KEY"), Just("ENCRYPTED PRIVATE KEY")],
            body in "[A-Za-z0-9+/=\n]{0,200}",
            blocks in 1usize..4,
        ) {
            prop_assert!(certificate(&data, None).is_err());
            prop_assert!(certificate(&data, Some("pw")).is_err());
            let block = format!("-----BEGIN {kind}-----\n{body}\n-----END {kind}-----\n");
            let _ = certificate(block.repeat(blocks).as_bytes(), None);
            let _ = certificate(format!("Bag Attributes\n{block}").as_bytes(), None);
        }
    }
}
