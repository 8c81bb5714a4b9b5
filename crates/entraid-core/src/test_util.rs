//! Test helpers (feature `test-util`): unsigned JWTs for exercising token parsing in tests and examples, and a
//! reference calendar the date parsers are checked against. Not part of the API a service uses; a production build
//! does not compile them.

use base64::Engine as _;
use base64::engine::general_purpose;
use serde_json::Value;

/// Encodes bytes as unpadded base64url, as JWTs use. Handy for building test tokens and assertions.
pub fn base64url_encode(bytes: impl AsRef<[u8]>) -> String {
    general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Builds an unsigned JWT (`alg: none`) from a JSON payload, for tests and examples.
///
/// The signature segment is a fixed placeholder. Redis behind a verifying gateway refuses such tokens; they are
/// for exercising parsing only.
pub fn unsigned_jwt(payload: &Value) -> String {
    let header = base64url_encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = base64url_encode(payload.to_string());
    format!("{header}.{body}.unsigned")
}

/// Year, month, day, hours, minutes, seconds and weekday (0 = Thursday, as 1970-01-01 was) of unix seconds.
///
/// A reference for property tests of date parsers, written differently from the parsers' days-from-civil
/// arithmetic: it walks year by year (after whole 400-year cycles) and month by month.
pub fn civil_reference(unix: u64) -> (u64, u64, u64, u64, u64, u64, u64) {
    let (days, secs) = (unix / 86_400, unix % 86_400);
    let leap = |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    // Whole 400-year cycles (146097 days) first, so this stays quick.
    let (mut year, mut left) = (1970 + 400 * (days / 146_097), days % 146_097);
    loop {
        let len = if leap(year) { 366 } else { 365 };
        if left < len {
            break;
        }
        left -= len;
        year += 1;
    }
    let february = if leap(year) { 29 } else { 28 };
    let months = [31, february, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let mut month = 0;
    while let Some(&len) = months.get(month) {
        if left < len {
            break;
        }
        left -= len;
        month += 1;
    }
    (
        year,
        month as u64 + 1,
        left + 1,
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        days % 7,
    )
}
