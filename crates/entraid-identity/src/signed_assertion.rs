//! [`AssertionSigner`]: the client assertions of one certificate, each reused until [`ASSERTION_REUSE_MARGIN`]
//! before it expires (a refused reused one is replaced by the token-endpoint client, `token_endpoint.rs`), and the
//! certificate settings builders share ([`CertificateSettings`], `certificate_builder_methods!`).

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use entraid_core::{Error, Secret};

use crate::certificate::{ASSERTION_LIFETIME, AssertionAlgorithm, ClientCertificate};

/// An assertion is reused until this long before it expires: 60 s.
pub const ASSERTION_REUSE_MARGIN: Duration = Duration::from_secs(60);

/// A signed assertion and the tokio instant after which it is no longer reused.
struct CachedAssertion {
    assertion: Secret,
    reuse_until: tokio::time::Instant,
}

/// Signs assertions and reuses each one until [`ASSERTION_REUSE_MARGIN`] before it expires.
pub(crate) struct AssertionSigner {
    certificate: ClientCertificate,
    algorithm: AssertionAlgorithm,
    send_chain: bool,
    cache: Mutex<Option<CachedAssertion>>,
}

impl fmt::Debug for AssertionSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssertionSigner")
            .field("certificate", &self.certificate)
            .field("algorithm", &self.algorithm)
            .field("send_chain", &self.send_chain)
            .finish_non_exhaustive()
    }
}

impl AssertionSigner {
    pub(crate) fn new(
        certificate: ClientCertificate,
        algorithm: AssertionAlgorithm,
        send_chain: bool,
    ) -> Self {
        Self {
            certificate,
            algorithm,
            send_chain,
            cache: Mutex::new(None),
        }
    }

    /// The current assertion: the cached one while it has more than 60 s left, else a new one. The flag says
    /// whether it was reused.
    pub(crate) fn assertion(
        &self,
        audience: &str,
        client_id: &str,
    ) -> Result<(Secret, bool), Error> {
        let now = tokio::time::Instant::now();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cached) = cache.as_ref().filter(|c| now < c.reuse_until) {
            return Ok((cached.assertion.clone(), true));
        }
        let assertion = self.certificate.sign_assertion(
            self.algorithm,
            self.send_chain,
            audience,
            client_id,
            SystemTime::now(),
        )?;
        *cache = Some(CachedAssertion {
            assertion: assertion.clone(),
            reuse_until: now + (ASSERTION_LIFETIME - ASSERTION_REUSE_MARGIN),
        });
        Ok((assertion, false))
    }

    /// The certificate that signs.
    pub(crate) fn certificate(&self) -> &ClientCertificate {
        &self.certificate
    }

    /// Forgets the cached assertion, so the next one is freshly signed.
    pub(crate) fn forget(&self) {
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// The certificate settings a builder collects (the certificate, the assertion's algorithm, whether `x5c` is
/// sent), set with [`certificate_builder_methods!`].
#[derive(Debug, Default)]
pub(crate) struct CertificateSettings {
    pub(crate) certificate: Option<ClientCertificate>,
    pub(crate) algorithm: AssertionAlgorithm,
    pub(crate) send_chain: bool,
}

impl CertificateSettings {
    /// The assertion signer, when a certificate was given.
    pub(crate) fn signer(self) -> Option<AssertionSigner> {
        let certificate = self.certificate?;
        Some(AssertionSigner::new(
            certificate,
            self.algorithm,
            self.send_chain,
        ))
    }
}

/// The certificate setters of a builder with a `signing: CertificateSettings` field; the literal documents
/// `certificate`.
macro_rules! certificate_builder_methods {
    ($certificate:literal) => {
        #[doc = $certificate]
        pub fn certificate(mut self, certificate: $crate::ClientCertificate) -> Self {
            self.signing.certificate = Some(certificate);
            self
        }

        /// The certificate assertion's signing algorithm. Default
        /// [`AssertionAlgorithm::Ps256`]($crate::AssertionAlgorithm::Ps256).
        pub fn algorithm(mut self, algorithm: $crate::AssertionAlgorithm) -> Self {
            self.signing.algorithm = algorithm;
            self
        }

        /// Whether the certificate assertion carries the certificate chain (`x5c`), for subject-name/issuer
        /// authentication. Default `false`.
        pub fn send_certificate_chain(mut self, send: bool) -> Self {
            self.signing.send_chain = send;
            self
        }
    };
}
pub(crate) use certificate_builder_methods;

#[cfg(test)]
mod tests {
    use super::*;

    use entraid_testkit::keys::TestKey;

    fn certificate() -> ClientCertificate {
        let key = TestKey::client_app();
        let pair = rcgen::KeyPair::from_pem(key.private_key_pem()).unwrap();
        let params = rcgen::CertificateParams::new(vec!["client-app".to_owned()]).unwrap();
        let pem = format!(
            "{}{}",
            params.self_signed(&pair).unwrap().pem(),
            key.private_key_pem()
        );
        ClientCertificate::from_pem(pem.as_bytes()).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn assertions_are_reused_until_60_s_before_expiry() {
        let cert = certificate();
        let signer = AssertionSigner::new(cert, AssertionAlgorithm::Ps256, false);
        let (first, reused) = signer.assertion("aud", "client").unwrap();
        assert!(!reused);
        tokio::time::advance(Duration::from_secs(8 * 60)).await;
        assert_eq!(
            signer.assertion("aud", "client").unwrap(),
            (first.clone(), true)
        );
        tokio::time::advance(Duration::from_secs(59)).await; // 8:59 in: 61 s left
        assert_eq!(
            signer.assertion("aud", "client").unwrap(),
            (first.clone(), true)
        );
        tokio::time::advance(Duration::from_secs(1)).await; // 9:00 in: 60 s left
        let (second, reused) = signer.assertion("aud", "client").unwrap();
        assert!(!reused);
        assert_ne!(second, first);
        assert_eq!(signer.assertion("aud", "client").unwrap().0, second);
        signer.forget();
        let (third, reused) = signer.assertion("aud", "client").unwrap();
        assert!(!reused && third != second);
    }
}
