//! Any HTTP answer of an identity endpoint (managed identity, the token endpoint): a status, a `Retry-After` and
//! a body, read as the flows read them (token response or error with Entra's error body); the same body through
//! Azure Arc's echo check, and as a discovery document; a challenge header through Arc's key-path check. Never a
//! panic; no error quotes the body's token.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let status = 100 + u16::from_be_bytes([data[0], data[1]]) % 500;
    let header_len = usize::from(data[2] % 48).min(data.len() - 3);
    let (header, body) = data[3..].split_at(header_len);
    use entraid_identity::fuzzing as f;
    match f::http_answer(status, header, body) {
        Ok(response) => {
            let _ = format!("{response:?}");
        }
        Err(e) => {
            let _ = (
                e.to_string(),
                e.is_retryable(),
                e.retry_after(),
                e.entra_error(),
            );
        }
    }
    let _ = f::arc_echo(body, "11111111-2222-3333-4444-555555555555");
    let _ = f::discovery(body, "contoso");
    let text = String::from_utf8_lossy(body);
    let _ = f::arc_challenge(&text, Path::new("/var/opt/azcmagent/tokens"));
});
