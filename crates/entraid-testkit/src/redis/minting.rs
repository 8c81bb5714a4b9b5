//! [`MintingProvider`]: an [`IdentityProvider`] for the adapters' end-to-end tests that mints tokens the gateway
//! accepts, a new `oid` each time (so a stale or wrong username is refused), and can play an outage.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use entraid_core::{BoxFuture, Error, IdentityProvider, IdentityProviderResponse};

/// Mints gateway-valid tokens ([`token`](super::token): RS256 by the emulator's key) with `oid` = `{prefix}-{n}`
/// for the `n`-th request, counting requests. While [`set_failing`](Self::set_failing) is on it answers with a
/// retryable transport error (an outage); the request still counts.
#[derive(Debug)]
pub struct MintingProvider {
    prefix: String,
    lifetime: Duration,
    calls: AtomicU64,
    failing: AtomicBool,
}

impl MintingProvider {
    /// A provider minting tokens valid for `lifetime`, with `oid`s `{prefix}-1`, `{prefix}-2`, ...
    pub fn new(prefix: &str, lifetime: Duration) -> Arc<Self> {
        Arc::new(Self {
            prefix: prefix.to_owned(),
            lifetime,
            calls: AtomicU64::new(0),
            failing: AtomicBool::new(false),
        })
    }

    /// Token requests so far (failed ones included).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Starts (`true`) or ends (`false`) a scripted outage.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

impl IdentityProvider for MintingProvider {
    fn request_token(&self) -> BoxFuture<'_, Result<IdentityProviderResponse, Error>> {
        Box::pin(async move {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            if self.failing.load(Ordering::SeqCst) {
                return Err(Error::transport("MintingProvider", "scripted outage", None));
            }
            let jwt = super::token(&format!("{}-{n}", self.prefix), self.lifetime);
            Ok(IdentityProviderResponse::raw_token(jwt))
        })
    }

    fn name(&self) -> &str {
        "MintingProvider"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::decode_unverified;

    async fn oid_of(provider: &MintingProvider) -> String {
        let IdentityProviderResponse::RawToken(jwt) = provider.request_token().await.unwrap()
        else {
            panic!("not a raw token");
        };
        let (_, claims, ..) = decode_unverified(jwt.expose_secret()).unwrap();
        claims.oid().unwrap().to_owned()
    }

    #[tokio::test]
    async fn mints_a_new_oid_per_request_and_counts_outages() {
        let provider = MintingProvider::new("case", Duration::from_secs(60));
        assert_eq!(oid_of(&provider).await, "case-1");
        assert_eq!(oid_of(&provider).await, "case-2");
        provider.set_failing(true);
        let err = provider.request_token().await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
        provider.set_failing(false);
        assert_eq!(oid_of(&provider).await, "case-4");
        assert_eq!(provider.calls(), 4);
    }
}
