//! Token verification: what makes an Entra token acceptable to the gateway (signature, `aud`, `exp`, `nbf`, user =
//! `oid`), why one is refused, and the tokio instant at which an accepted one expires.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use super::registry::Shared;

/// Why the gateway refused a token (for logs; the client sees the server's `WRONGPASS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    NotUtf8,
    Signature,
    Audience,
    NoExpiry,
    Expired,
    NotYetValid,
    NoOid,
    UserMismatch,
    /// A valid token, but redis-server refuses AUTH in RESP2 subscriber mode.
    SubscriberContext,
    /// A re-AUTH on an authenticated connection, refused by the test's script ([`Gateway::set_refuse_reauth`]).
    Scripted,
}

pub(super) struct ValidToken {
    pub(super) oid: String,
    pub(super) exp: i64,
}

pub(super) fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

impl Shared {
    pub(super) fn check_token(&self, user: &[u8], token: &[u8]) -> Result<ValidToken, Refusal> {
        let user = std::str::from_utf8(user).map_err(|_| Refusal::NotUtf8)?;
        let token = std::str::from_utf8(token).map_err(|_| Refusal::NotUtf8)?;
        let verified = self
            .options
            .verifier
            .verify(token)
            .map_err(|_| Refusal::Signature)?;
        let claims = verified.claims;
        let audience_ok = match claims.get("aud") {
            Some(serde_json::Value::String(aud)) => self.options.audiences.contains(aud),
            Some(serde_json::Value::Array(auds)) => auds
                .iter()
                .filter_map(serde_json::Value::as_str)
                .any(|a| self.options.audiences.iter().any(|x| x == a)),
            _ => false,
        };
        if !audience_ok {
            return Err(Refusal::Audience);
        }
        let now = unix_now();
        let now_secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        let exp = claims.exp().ok_or(Refusal::NoExpiry)?;
        if exp <= now_secs {
            return Err(Refusal::Expired);
        }
        if let Some(nbf) = claims.nbf() {
            let leeway = i64::try_from(self.options.nbf_leeway.as_secs()).unwrap_or(i64::MAX);
            if nbf > now_secs.saturating_add(leeway) {
                return Err(Refusal::NotYetValid);
            }
        }
        let oid = claims.oid().ok_or(Refusal::NoOid)?;
        if oid != user {
            return Err(Refusal::UserMismatch);
        }
        Ok(ValidToken {
            oid: oid.to_owned(),
            exp,
        })
    }
}

/// The tokio instant at which a token expiring at `exp` (unix seconds) expires.
pub(super) fn deadline_for(exp: i64) -> Instant {
    let exp = Duration::from_secs(u64::try_from(exp).unwrap_or(0));
    Instant::now() + exp.saturating_sub(unix_now())
}
