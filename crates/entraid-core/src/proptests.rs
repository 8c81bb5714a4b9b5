//! Property tests of every parser in the crate, on arbitrary input: JWT claims, token responses of every shape,
//! every `expires_on` form, and `Token::from_response`. None may panic; what they accept round-trips; no error
//! quotes the input. Case counts are modest, so the suite stays fast (the fuzz targets in `fuzz/` go further).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use crate::test_util::unsigned_jwt;
use crate::{Claims, Error, IdentityProviderResponse, Token, TokenResponse, parse_expires_on};

const MAX_UNIX: u64 = 253_402_300_799;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 192,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Any JSON value, a few levels deep, with numbers of every kind (huge, negative, fractional).
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,24}".prop_map(Value::from),
        time_text().prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Text that looks like a time in some form, or nearly: digits, separators, offsets, AM/PM, odd characters.
fn time_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        "[0-9]{1,22}(\\.[0-9]{0,4})?",
        "[0-9]{1,5}[-/][0-9]{1,3}[-/][0-9]{1,12}[T ][0-9]{1,3}:[0-9]{1,3}:[0-9]{1,3}(\\.[0-9]{0,7})?( ?(AM|PM|am|XM))?( ?([+-][0-9:é]{0,6}|Z))?",
        "\\PC{0,30}",
    ]
}

/// The reference calendar the parser is checked against (year by year from 1970), without the weekday.
fn civil(unix: u64) -> (u64, u64, u64, u64, u64, u64) {
    let (y, mo, d, h, mi, s, _) = crate::test_util::civil_reference(unix);
    (y, mo, d, h, mi, s)
}

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn from_json_never_panics_on_bytes(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = TokenResponse::from_json(&body);
    }

    /// Token responses of every shape: any of the known fields, each of any JSON type, plus unknown ones. Parsing
    /// never panics, and a token built from it expires after receipt and within the lifetime cap.
    #[test]
    fn token_responses_of_every_shape(
        fields in prop::collection::btree_map(
            prop_oneof![
                Just("expires_in"), Just("expires_on"), Just("expiresOn"), Just("ext_expires_in"),
                Just("refresh_in"), Just("token_type"), Just("tokenType"), Just("scope"), Just("resource"),
                Just("client_id"), Just("refresh_token"), Just("id_token"), Just("not_before"), Just("extra"),
            ],
            any_json(),
            0..8,
        ),
        key in prop_oneof![Just("access_token"), Just("accessToken"), Just("token")],
        exp in prop::option::of(prop_oneof![
            any::<i64>().prop_map(Value::from),
            (0u64..4_000_000_000).prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            time_text().prop_map(Value::from),
        ]),
        received in 0u64..=MAX_UNIX,
    ) {
        let mut claims = Map::new();
        claims.insert("oid".into(), json!("user-oid"));
        claims.insert("marker".into(), json!("TOKEN-PAYLOAD-MARKER"));
        if let Some(exp) = exp {
            claims.insert("exp".into(), exp);
        }
        let jwt = unsigned_jwt(&Value::Object(claims));
        let mut body: Map<String, Value> = fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        body.insert(key.to_owned(), json!(jwt));
        let body = Value::Object(body).to_string();
        let response = match TokenResponse::from_json(body.as_bytes()) {
            Ok(response) => response,
            Err(e) => {
                // Only the non-time fields may refuse a body (a token_type that is not a string, ...).
                prop_assert!(matches!(e, Error::InvalidResponse { .. }), "{e:?}");
                prop_assert!(!e.to_string().contains(&jwt));
                return Ok(());
            }
        };
        for unreadable in response.unreadable() {
            prop_assert!(!unreadable.to_string().contains(&jwt));
        }
        let received = at(received);
        match Token::from_response(response.into(), received) {
            Ok(token) => {
                prop_assert!(token.expires_on() > received);
                prop_assert!(token.lifetime() <= Token::MAX_LIFETIME);
                prop_assert_eq!(token.username(), "user-oid");
            }
            Err(e) => {
                let shown = format!("{e} {e:?}");
                prop_assert!(!shown.contains(jwt.split('.').nth(1).unwrap_or_default()), "{}", shown);
            }
        }
    }

    #[test]
    fn expires_on_never_panics_and_stays_in_range(text in time_text()) {
        if let Some(t) = parse_expires_on(&text) {
            prop_assert!(t <= at(MAX_UNIX));
        }
        let body = json!({"access_token": "t", "expires_on": text}).to_string();
        let response = TokenResponse::from_json(body.as_bytes()).unwrap();
        prop_assert_eq!(response.expires_on, parse_expires_on(&text));
        prop_assert_eq!(response.unreadable().is_empty(), response.expires_on.is_some() || text.trim().is_empty());
    }

    /// Every date form round-trips: a time written in the form is read back as that time.
    #[test]
    fn every_expires_on_form_round_trips(unix in 0u64..=MAX_UNIX - 86_400, offset_minutes in -(23 * 60 + 59)..=(23i64 * 60 + 59)) {
        let (y, mo, d, h, mi, s) = civil(unix);
        let h12 = match h % 12 { 0 => 12, h => h };
        let meridiem = if h < 12 { "AM" } else { "PM" };
        for text in [
            unix.to_string(),
            format!("{unix}.25"),
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"),
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.123456Z"),
            format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.000000"),
            format!("{mo:02}/{d:02}/{y:04} {h:02}:{mi:02}:{s:02} +00:00"),
            format!("{mo}/{d}/{y} {h}:{mi:02}:{s:02}"),
            format!("{mo:02}/{d:02}/{y:04} {h12:02}:{mi:02}:{s:02} {meridiem} +00:00"),
            format!("{mo}/{d}/{y} {h12}:{mi:02}:{s:02} {}", meridiem.to_lowercase()),
        ] {
            prop_assert_eq!(parse_expires_on(&text), Some(at(unix)), "{}", text);
        }
        // With an offset: the same wall-clock reading, moved.
        let sign = if offset_minutes < 0 { '-' } else { '+' };
        let (oh, om) = (offset_minutes.abs() / 60, offset_minutes.abs() % 60);
        let text = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{sign}{oh:02}:{om:02}");
        let expected = i64::try_from(unix).unwrap() - offset_minutes * 60;
        prop_assert_eq!(
            parse_expires_on(&text),
            u64::try_from(expected).ok().map(at),
            "{}", text
        );
    }

    #[test]
    fn claims_never_panic_on_text(jwt in "\\PC{0,64}|[A-Za-z0-9_=-]{0,20}\\.[A-Za-z0-9_=+/-]{0,40}\\.[a-z]{0,4}") {
        if let Ok(claims) = Claims::from_jwt(&jwt) {
            let _ = (claims.oid(), claims.aud(), claims.exp(), claims.iat(), claims.nbf(), claims.app_id());
        }
        let err = Token::from_response(IdentityProviderResponse::raw_token(jwt.clone()), at(1_000));
        if let Err(e) = err && jwt.len() >= 8 {
            let shown = format!("{e} {e:?}");
            prop_assert!(!shown.contains(&jwt), "{}", shown);
        }
    }

    /// Any JSON object payload round-trips through a JWT, and its time claims never panic.
    #[test]
    fn claims_round_trip(payload in prop::collection::btree_map("[a-z]{1,6}", any_json(), 0..6)) {
        let payload: Map<String, Value> = payload.into_iter().collect();
        let jwt = unsigned_jwt(&Value::Object(payload.clone()));
        let claims = Claims::from_jwt(&jwt).unwrap();
        // As serde_json reads its own output back (its float printing is not exact at the last digit).
        let expected: Map<String, Value> =
            serde_json::from_str(&Value::Object(payload).to_string()).unwrap();
        prop_assert_eq!(claims.all(), &expected);
        let _ = (claims.exp(), claims.iat(), claims.nbf(), claims.aud());
    }

    /// Any payload bytes (not only JSON): decoded, then refused or read, never a panic.
    #[test]
    fn claims_of_any_payload_bytes(payload in prop::collection::vec(any::<u8>(), 0..128)) {
        let jwt = format!("eyJhbGciOiJub25lIn0.{}.sig", crate::base64url_encode(&payload));
        let _ = Claims::from_jwt(&jwt);
    }

    /// Access tokens with any expiry at any receipt time: never a panic, never a token past the cap.
    #[test]
    fn access_tokens_with_any_expiry(expires in any::<u32>(), scale in 0u32..4, received in 0u64..=MAX_UNIX, exp in any::<i64>()) {
        let expires = UNIX_EPOCH.checked_add(Duration::from_secs(u64::from(expires) << (8 * scale)));
        let Some(expires) = expires else { return Ok(()); };
        let jwt = unsigned_jwt(&json!({"oid": "u", "exp": exp}));
        let received = at(received);
        let response = crate::AccessToken::new(jwt, expires).with_refresh_on(expires);
        if let Ok(token) = Token::from_response(response.into(), received) {
            prop_assert!(token.expires_on() > received && token.lifetime() <= Token::MAX_LIFETIME);
        }
    }
}

#[test]
fn the_reference_calendar_agrees_with_known_dates() {
    assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
    assert_eq!(civil(1_709_164_800), (2024, 2, 29, 0, 0, 0));
    assert_eq!(civil(1_750_170_600), (2025, 6, 17, 14, 30, 0));
    assert_eq!(civil(MAX_UNIX), (9999, 12, 31, 23, 59, 59));
}
