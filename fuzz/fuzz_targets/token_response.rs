//! Any bytes as a token-response body: `TokenResponse::from_json`, then `Token::from_response` at a few receipt
//! times (ordinary, the epoch, near the end of what `SystemTime` holds). Never a panic; a token that is built
//! expires after receipt and within the lifetime cap; no error quotes the body.
#![no_main]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use entraid_core::{Token, TokenResponse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(response) = TokenResponse::from_json(data) else {
        return;
    };
    for received in [
        UNIX_EPOCH + Duration::from_secs(1_750_000_000),
        UNIX_EPOCH,
        UNIX_EPOCH + Duration::from_secs(i64::MAX as u64 / 2),
    ] {
        let _ = response.expires_at(received);
        match Token::from_response(response.clone().into(), received) {
            Ok(token) => {
                assert!(token.expires_on() > received);
                assert!(token.lifetime() <= Token::MAX_LIFETIME);
                let _ = (token.refresh_in(), token.remaining(SystemTime::now()));
            }
            Err(e) => {
                let shown = format!("{e} {e:?}");
                let secret = response.access_token.expose_secret();
                assert!(
                    secret.len() < 8 || !shown.contains(secret),
                    "the error quotes the token"
                );
            }
        }
    }
});
