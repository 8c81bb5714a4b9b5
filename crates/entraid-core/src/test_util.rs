//! Test helpers (feature `test-util`): unsigned JWTs for exercising token parsing in tests and examples. Not part
//! of the API a service uses; a production build does not compile them.

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
