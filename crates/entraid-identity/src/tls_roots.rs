//! The roots an [`HttpClient`](crate::HttpClient) trusts, loaded at its first HTTPS handshake ([`LazyVerifier`]),
//! the operating system's once per process, and the shared ring crypto provider.

use std::fmt;
use std::sync::{Arc, OnceLock};

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;

/// The roots a client trusts, completed at its first HTTPS handshake.
#[derive(Debug)]
pub(crate) struct LazyRoots {
    pub(crate) native: bool,
    pub(crate) webpki: bool,
    pub(crate) extra: RootCertStore,
}

impl LazyRoots {
    fn load(self) -> RootCertStore {
        let mut roots = self.extra;
        if self.native {
            // Unreadable system certificates are skipped, as every TLS client does.
            let _ = roots.add_parsable_certificates(native_roots().iter().cloned());
        }
        #[cfg(feature = "webpki-roots")]
        if self.webpki {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        #[cfg(not(feature = "webpki-roots"))]
        let _ = self.webpki; // always false without the feature
        roots
    }
}

/// A certificate verifier that builds rustls's own WebPKI verifier, with the roots, at the first handshake.
///
/// Signature checks need no roots, so only chain verification waits for them; everything is delegated to
/// [`rustls::client::WebPkiServerVerifier`], so the checks are rustls's own.
pub(crate) struct LazyVerifier {
    roots: std::sync::Mutex<Option<LazyRoots>>,
    verifier: OnceLock<Result<Arc<rustls::client::WebPkiServerVerifier>, String>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl fmt::Debug for LazyVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyVerifier")
            .field("loaded", &self.verifier.get().is_some())
            .finish_non_exhaustive()
    }
}

impl LazyVerifier {
    pub(crate) fn new(roots: LazyRoots, provider: Arc<rustls::crypto::CryptoProvider>) -> Self {
        Self {
            roots: std::sync::Mutex::new(Some(roots)),
            verifier: OnceLock::new(),
            provider,
        }
    }

    /// Whether the roots have been loaded (at the first handshake).
    #[cfg(test)]
    pub(crate) fn loaded(&self) -> bool {
        self.verifier.get().is_some()
    }

    fn verifier(&self) -> Result<&Arc<rustls::client::WebPkiServerVerifier>, rustls::Error> {
        self.verifier
            .get_or_init(|| {
                let roots = self
                    .roots
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take()
                    .map(LazyRoots::load)
                    .unwrap_or_else(RootCertStore::empty);
                if roots.is_empty() {
                    return Err("no root certificate is trusted".to_owned());
                }
                rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    self.provider.clone(),
                )
                .build()
                .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| rustls::Error::General(e.clone()))
    }
}

impl rustls::client::danger::ServerCertVerifier for LazyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls_pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        self.verifier()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The operating system's root certificates, loaded once per process.
fn native_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let loaded = rustls_native_certs::load_native_certs();
        if !loaded.errors.is_empty() {
            tracing::debug!(
                errors = loaded.errors.len(),
                "some system root certificates could not be read"
            );
        }
        loaded.certs
    })
}

/// The ring crypto provider, shared.
pub(crate) fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}
