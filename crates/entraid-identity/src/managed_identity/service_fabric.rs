//! Service Fabric: its managed identity endpoint is reached over TLS with a certificate pinned by thumbprint
//! (`IDENTITY_SERVER_THUMBPRINT`), not issued by a public CA.

use std::sync::Arc;

use entraid_core::Error;

use super::NAME;
use crate::http::HttpClient;

/// An HTTP client for Service Fabric: the server's certificate must have the given SHA-1 thumbprint.
pub(super) fn pinned_client(
    thumbprint: &str,
    timeout: std::time::Duration,
) -> Result<HttpClient, Error> {
    let hex: String = thumbprint
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect();
    if hex.len() != 40 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::configuration(format!(
            "{NAME}: IDENTITY_SERVER_THUMBPRINT must be a SHA-1 thumbprint (40 hex digits)"
        )));
    }
    let mut sha1 = [0u8; 20];
    for (i, byte) in sha1.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| Error::configuration(format!("{NAME}: bad IDENTITY_SERVER_THUMBPRINT")))?;
    }
    let provider = crate::http::crypto_provider();
    let verifier = Arc::new(PinnedThumbprint {
        sha1,
        provider: provider.clone(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::configuration(format!("TLS configuration: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    HttpClient::from_rustls(config, timeout)
}

/// Accepts exactly the server certificate whose SHA-1 thumbprint is pinned (Service Fabric's own certificate is
/// not issued by a public CA); handshake signatures are still verified.
#[derive(Debug)]
struct PinnedThumbprint {
    sha1: [u8; 20],
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for PinnedThumbprint {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, end_entity);
        if digest.as_ref() == self.sha1 {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the server certificate's thumbprint is not IDENTITY_SERVER_THUMBPRINT".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
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
        cert: &rustls::pki_types::CertificateDer<'_>,
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
