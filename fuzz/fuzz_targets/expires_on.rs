//! Any text as an `expires_on` value, as a JSON string and as the raw text: `parse_expires_on` never panics, and
//! what it reads is between 1970 and the end of 9999.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use entraid_core::{TokenResponse, parse_expires_on};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(at) = parse_expires_on(&text) {
        assert!(at <= UNIX_EPOCH + Duration::from_secs(253_402_300_799));
    }
    let body = serde_json::json!({"access_token": "t", "expires_on": text, "expiresOn": text});
    let response = TokenResponse::from_json(body.to_string().as_bytes()).expect("a valid body");
    assert_eq!(response.expires_on, parse_expires_on(&text));
});
