//! Any text as a JWT, and any bytes as a JWT's payload: `Claims::from_jwt`, every accessor, and
//! `Token::from_response` for a raw token. Never a panic; no error quotes the token.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use entraid_core::{Claims, IdentityProviderResponse, Token, base64url_encode};
use libfuzzer_sys::fuzz_target;

fn exercise(jwt: &str) {
    if let Ok(claims) = Claims::from_jwt(jwt) {
        let _ = (
            claims.oid(),
            claims.tid(),
            claims.aud(),
            claims.iss(),
            claims.sub(),
        );
        let _ = (
            claims.exp(),
            claims.iat(),
            claims.nbf(),
            claims.app_id(),
            claims.idtyp(),
        );
    }
    let received = UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    if let Err(e) = Token::from_response(IdentityProviderResponse::raw_token(jwt), received) {
        let shown = format!("{e} {e:?}");
        assert!(
            jwt.len() < 8 || !shown.contains(jwt),
            "the error quotes the token"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    exercise(&String::from_utf8_lossy(data));
    exercise(&format!(
        "eyJhbGciOiJub25lIn0.{}.sig",
        base64url_encode(data)
    ));
});
